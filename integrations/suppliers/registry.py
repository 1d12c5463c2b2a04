"""Building supplier clients from their configuration, and keeping one per supplier for the process.

A client owns a connection pool, so it lives as long as the process: `SupplierClients.get` hands back
the same client for the same configuration, builds a new one when a manager changes the supplier (URL,
key, adapter, rate limit), and closes the replaced one once the calls it may still be serving have
reached their deadline.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from integrations.http import Hooks, HttpSettings, SupplierHttp
from integrations.resilience import BreakerStore, RateLimiter
from integrations.suppliers.base import AdapterKind, SupplierClient, SupplierConfig
from integrations.suppliers.csv_feed import CsvFeedClient
from integrations.suppliers.rest_json import RestJsonClient
from integrations.urlguard import check_supplier_url


def build_client(
    config: SupplierConfig,
    *,
    allow_private: bool,
    breakers: BreakerStore,
    limiter: RateLimiter,
    settings: HttpSettings | None = None,
    hooks: Hooks | None = None,
) -> SupplierClient:
    """A client for `config`; `UnsafeURL` (a `ValueError`) if its base URL may not be called.

    No DNS here (this runs in the event loop): every request resolves and checks the host itself.
    `allow_private` is for the sandbox and tests only; production passes False.
    """
    check_supplier_url(config.base_url, allow_private=allow_private, resolve=False)
    if config.rate_limit_per_minute is not None and config.rate_limit_per_minute < 1:
        raise ValueError("rate_limit_per_minute must be at least 1 (or None for no limit)")
    headers = {"accept": "text/csv" if config.adapter is AdapterKind.CSV_FEED else "application/json"}
    if config.api_key and not (config.api_key.isascii() and config.api_key.isprintable()):
        # httpx could not put it in a header: every call would crash. The API refuses such keys now; one
        # saved before must be set again.
        raise ValueError("its API key is not printable ASCII: set it again")
    if config.api_key:
        headers["authorization"] = f"Bearer {config.api_key}"
    http = SupplierHttp(
        supplier=config.name,
        key=f"supplier:{config.id}",
        base_url=config.base_url,
        allow_private=allow_private,
        breakers=breakers,
        limiter=limiter,
        rate_limit_per_minute=config.rate_limit_per_minute,
        settings=settings,
        headers=headers,
        hooks=hooks,
    )
    if config.adapter is AdapterKind.REST_JSON:
        return RestJsonClient(config, http)
    if config.adapter is AdapterKind.CSV_FEED:
        return CsvFeedClient(config, http)
    raise ValueError(f"unknown adapter {config.adapter!r}")  # pragma: no cover - AdapterKind is closed


@dataclass(frozen=True, slots=True)
class _Entry:
    config: SupplierConfig
    client: SupplierClient


class SupplierClients:
    """One client per supplier id for the process lifetime; `aclose` on shutdown."""

    def __init__(
        self,
        *,
        allow_private: bool,
        breakers: BreakerStore,
        limiter: RateLimiter,
        settings: HttpSettings | None = None,
        hooks: Hooks | None = None,
        retire_grace: float | None = None,
    ) -> None:
        """`retire_grace`: how long a replaced client stays open (default: the call deadline + 1 s)."""
        self._allow_private = allow_private
        self._breakers = breakers
        self._limiter = limiter
        self._settings = settings or HttpSettings()
        self._hooks = hooks
        self._grace = retire_grace if retire_grace is not None else self._settings.deadline + 1.0
        self._entries: dict[int, _Entry] = {}
        self._retiring: dict[asyncio.Task[None], SupplierClient] = {}
        self._retired: list[SupplierClient] = []  # replaced outside an event loop: closed by aclose
        self._closed = False

    def get(self, config: SupplierConfig) -> SupplierClient:
        """The client for this configuration (built on first use, rebuilt when the config changed)."""
        if self._closed:
            raise RuntimeError("supplier clients are closed")
        entry = self._entries.get(config.id)
        if entry is not None and entry.config == config:
            return entry.client
        client = build_client(
            config,
            allow_private=self._allow_private,
            breakers=self._breakers,
            limiter=self._limiter,
            settings=self._settings,
            hooks=self._hooks,
        )
        self._entries[config.id] = _Entry(config, client)
        if entry is not None:
            self._retire(entry.client)
        return client

    def forget(self, supplier_id: int) -> None:
        """The supplier was removed or disabled: its client is closed after its calls in flight."""
        entry = self._entries.pop(supplier_id, None)
        if entry is not None:
            self._retire(entry.client)

    def __len__(self) -> int:
        return len(self._entries)

    async def aclose(self) -> None:
        """Close every client, the current ones and those waiting to be closed."""
        self._closed = True
        retiring = dict(self._retiring)
        for task in retiring:
            task.cancel()  # a task cancelled before it ran never reaches its `finally`: closed below
        await asyncio.gather(*retiring, return_exceptions=True)
        clients = [entry.client for entry in self._entries.values()] + self._retired + list(retiring.values())
        self._entries.clear()
        self._retired = []
        await asyncio.gather(*(client.aclose() for client in clients), return_exceptions=True)

    def _retire(self, client: SupplierClient) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._retired.append(client)
            return
        task = loop.create_task(self._close_later(client, self._grace))
        self._retiring[task] = client
        task.add_done_callback(lambda done: self._retiring.pop(done, None))

    async def _close_later(self, client: SupplierClient, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
        finally:
            await client.aclose()
