"""The supplier sandbox: a real HTTP server that plays parts suppliers (many tenants, faults included) per
the shared wire contract, for development, demos and tests. Start it with `atelier sandbox supplier`.

`CATALOGUE` is the parts every sandbox supplier carries, with Atelier-style SKUs, so the demo can seed
Atelier's own catalogue from it.
"""

from integrations.sandbox.catalogue import CATALOGUE, Part

__all__ = ["CATALOGUE", "Part"]
