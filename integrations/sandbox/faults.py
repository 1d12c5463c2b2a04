"""The fault knobs of a tenant, and the broken bodies a misbehaving supplier sends."""

from __future__ import annotations

import json
import random
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Faults(BaseModel):
    """Exactly the knobs of the wire contract; `PUT _sandbox/faults` replaces the keys it names."""

    model_config = ConfigDict(extra="forbid", frozen=True)  # shared by tenants: replaced, never changed

    latency_ms: int = Field(0, ge=0, le=120_000)
    error_rate: float = Field(0.0, ge=0.0, le=1.0)
    rate_429: float = Field(0.0, ge=0.0, le=1.0)
    retry_after_seconds: int = Field(1, ge=0)
    malformed_rate: float = Field(0.0, ge=0.0, le=1.0)
    eta_slip_hours: int = 0
    backorder_rate: float = Field(0.0, ge=0.0, le=1.0)
    partial_ship: bool = False

    def updated(self, changes: dict[str, Any]) -> Faults:
        """A copy with `changes` applied, validated as a whole (unknown keys and bad values raise)."""
        return Faults.model_validate({**self.model_dump(), **changes})


def hit(rng: random.Random, rate: float) -> bool:
    """Whether a fault with this rate strikes; draws nothing when off, so other knobs keep their sequence."""
    return rate > 0 and rng.random() < rate


def _wrong_types(value: Any) -> Any:
    """Numbers become text and empty lists become text: still JSON, no longer the contract."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return f"{value} pcs"
    if isinstance(value, dict):
        return {key: _wrong_types(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_wrong_types(item) for item in value] if value else "none"
    return value


def malformed_json(payload: Any, rng: random.Random) -> bytes:
    """Truncated JSON or the right shape with the wrong types, picked at random."""
    if rng.random() < 0.5:
        text = json.dumps(payload)
        return text[: max(1, len(text) // 2)].encode()
    mangled = _wrong_types(payload)
    if not isinstance(mangled, dict) or mangled == payload:  # nothing to mangle: break it another way
        return b'{"items": [{"sku": '
    return json.dumps(mangled).encode()


def malformed_csv(rows: list[list[str]], rng: random.Random) -> list[list[str]]:
    """One data row turned to garbage: text where numbers go, and a date nobody can parse."""
    if len(rows) < 2:
        return [*rows, ["???", "garbage", "lots", "12,50 EUR", "", "soon"]]
    broken = [list(row) for row in rows]
    index = rng.randrange(1, len(broken))
    sku, description = broken[index][0], broken[index][1]
    broken[index] = [sku, description, "lots", "12,50 EUR", "EUR", "soon"]
    return broken
