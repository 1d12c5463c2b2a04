"""The outside world: supplier API clients, webhook verification, notification channels.

- `suppliers/`: the `SupplierClient` protocol (`base`), its adapters (`rest_json`, `csv_feed`) and
  `registry` (one client per supplier for the process).
- `http`: every outbound supplier call (timeouts, deadline, retries, breaker, rate limit, SSRF guard).
- `resilience`: the policies `http` applies (backoff, Retry-After, circuit breaker, token bucket).
- `urlguard`: which supplier URLs may be called at all.
- `webhooks`: Standard Webhooks verification and the supplier event payloads.
- `sandbox/`: a fake supplier for development and tests (`atelier sandbox supplier`).
"""
