"""The supplier sandbox as a Litestar app: the REST API, the CSV feed and the admin routes, each served at
the root (tenant `default`) and under `/t/{tenant}`."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

import httpx
from litestar import Litestar, Request, Response, get, post, put
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from integrations.sandbox.catalogue import BY_SKU, CATALOGUE
from integrations.sandbox.config import SandboxConfig
from integrations.sandbox.faults import hit, malformed_csv, malformed_json
from integrations.sandbox.orders import SandboxError
from integrations.sandbox.state import DEFAULT_TENANT, Sandbox, Tenant, WebhookTarget
from integrations.sandbox.webhooks import RETRY_DELAYS, TIMEOUT, Pusher, secret_key
from integrations.sandbox.wire import csv_rows, csv_text, iso, order_json, quote_json

Clock = Callable[[], datetime]
M = TypeVar("M", bound=BaseModel)
MAX_SKUS = 100
MAX_CHANGES = 1000  # orders per page of the changes feed
MAX_BULK = 10_000  # orders per bulk creation
log = logging.getLogger("atelier.sandbox")


def utc_now() -> datetime:
    return datetime.now(UTC)


def both(path: str) -> list[str]:
    """The same route for the default tenant and for a named one."""
    return [path, "/t/{tenant:str}" + path]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LineIn(_Strict):
    sku: str = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=1, le=10_000)


class OrderIn(_Strict):
    po: str = Field(min_length=1, max_length=64)
    lines: list[LineIn] = Field(min_length=1, max_length=100)


class BulkIn(_Strict):
    orders: list[OrderIn] = Field(min_length=1, max_length=MAX_BULK)


class AdvanceIn(_Strict):
    action: Literal["confirm", "ship", "deliver", "slip", "backorder", "cancel"]
    hours: int | None = None
    quantity: int | None = Field(None, ge=1)
    sku: str | None = None  # slip/backorder: one line only (the webhook then names the SKU)
    reason: str | None = None  # cancel


class WebhooksIn(_Strict):
    url: str | None  # null: stop pushing
    secret: str | None = None

    @field_validator("url")
    @classmethod
    def _http(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("an http:// or https:// URL")
        return url

    @field_validator("secret")
    @classmethod
    def _whsec(cls, secret: str | None) -> str | None:
        if secret is not None:
            secret_key(secret)
        return secret


class StockIn(_Strict):
    available: int = Field(ge=0)


class SmsIn(_Strict):
    to: str = Field(pattern=r"^\+[1-9][0-9]{6,14}$")
    body: str = Field(min_length=1, max_length=1600)


# --- plumbing ------------------------------------------------------------------------------------


def _sandbox(request: Request[Any, Any, Any]) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


def _now(request: Request[Any, Any, Any]) -> datetime:
    clock: Clock = request.app.state.clock
    return clock()


def _pusher(request: Request[Any, Any, Any]) -> Pusher:
    pusher: Pusher = request.app.state.pusher
    return pusher


async def _parse(request: Request[Any, Any, Any], model: type[M]) -> M:
    try:
        return model.model_validate_json(await request.body() or b"{}")
    except ValidationError as exc:
        raise SandboxError(400, f"invalid body: {_problems(exc)}") from exc


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())


async def _admit(request: Request[Any, Any, Any], name: str, *, auth: bool, operation: str) -> Tenant:
    """What every API/feed request goes through: counted, then latency, auth, the dice for 429 and 5xx."""
    tenant = _sandbox(request).tenant(name)
    tenant.requests[operation] += 1
    faults = tenant.faults
    if faults.latency_ms:
        await asyncio.sleep(faults.latency_ms / 1000)
    if auth:
        _authenticate(request, _sandbox(request).config.api_key)
    if hit(tenant.rng, faults.rate_429):
        raise SandboxError(429, "rate limited", {"Retry-After": str(faults.retry_after_seconds)})
    if hit(tenant.rng, faults.error_rate):
        status = tenant.rng.choice((500, 502, 503))
        raise SandboxError(status, "the supplier is having a bad day")
    return tenant


def _authenticate(request: Request[Any, Any, Any], api_key: str | None) -> None:
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        raise SandboxError(401, "missing bearer key")
    if api_key is not None and not hmac.compare_digest(key.encode(), api_key.encode()):
        raise SandboxError(401, "wrong API key")


def _answer(tenant: Tenant, payload: Any, status: int = 200) -> Response[Any]:
    """A successful answer, unless the malformed dice say its body breaks."""
    if hit(tenant.rng, tenant.faults.malformed_rate):
        return Response(malformed_json(payload, tenant.rng), status_code=status, media_type="application/json")
    return Response(payload, status_code=status)


def _error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    if isinstance(exc, SandboxError):
        return Response({"error": exc.message}, status_code=exc.status, headers=exc.headers)
    if isinstance(exc, HTTPException):
        return Response({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)
    log.exception("sandbox request failed")  # a bug in the sandbox, not a simulated fault
    return Response({"error": "internal error in the sandbox"}, status_code=500)


# --- REST JSON API ---------------------------------------------------------------------------------


@get(both("/api/v1/stock"))
async def stock(
    request: Request[Any, Any, Any], skus: str | None = None, tenant: str = DEFAULT_TENANT
) -> Response[Any]:
    supplier = await _admit(request, tenant, auth=True, operation="stock")
    wanted = list(dict.fromkeys(s.strip() for s in (skus or "").split(",") if s.strip()))
    if not 1 <= len(wanted) <= MAX_SKUS:
        raise SandboxError(400, f"skus: 1 to {MAX_SKUS} comma-separated SKUs")
    now = _now(request)
    items = [quote_json(supplier.quote(sku, now)) for sku in wanted if sku in BY_SKU]
    return _answer(supplier, {"items": items, "unknown": [sku for sku in wanted if sku not in BY_SKU]})


@post(both("/api/v1/orders"))
async def place_order(request: Request[Any, Any, Any], tenant: str = DEFAULT_TENANT) -> Response[Any]:
    supplier = await _admit(request, tenant, auth=True, operation="place_order")
    key = request.headers.get("idempotency-key", "").strip()
    if not key:
        raise SandboxError(400, "the Idempotency-Key header is required")
    body = await _parse(request, OrderIn)
    wanted = [(line.sku, line.quantity) for line in body.lines]
    order, created = supplier.place(key, body.po, wanted, _now(request))
    return _answer(supplier, order_json(order), 201 if created else 200)


def _read_order(request: Request[Any, Any, Any], supplier: Tenant, order_id: str) -> dict[str, Any]:
    order = supplier.order(order_id)
    slipped = supplier.read(order, _now(request))
    if slipped is not None:
        _pusher(request).push(supplier, slipped)  # in the background: a GET does not wait for Atelier
    return order_json(order)


@get(both("/api/v1/orders/{order_id:str}"))
async def get_order(request: Request[Any, Any, Any], order_id: str, tenant: str = DEFAULT_TENANT) -> Response[Any]:
    supplier = await _admit(request, tenant, auth=True, operation="get_order")
    return _answer(supplier, _read_order(request, supplier, order_id))


@get(both("/api/v1/orders"))
async def find_orders(
    request: Request[Any, Any, Any], po: str | None = None, tenant: str = DEFAULT_TENANT
) -> Response[Any]:
    supplier = await _admit(request, tenant, auth=True, operation="find_orders")
    if not po:
        raise SandboxError(400, "po is required")
    found = supplier.by_po.get(po)
    return _answer(supplier, {"items": [_read_order(request, supplier, found)] if found else []})


@get(both("/api/v1/orders/changes"))
async def order_changes(
    request: Request[Any, Any, Any],
    since: str | None = None,
    limit: str | None = None,
    cursor: str | None = None,
    tenant: str = DEFAULT_TENANT,
) -> Response[Any]:
    """The changes feed: orders whose `updated_at` is after `since`, oldest change first, paginated.
    Reading it slips nothing (`eta_slip_hours` acts on a single order's GET only)."""
    supplier = await _admit(request, tenant, auth=True, operation="order_changes")
    after = _moment(since, "since") if since else None
    size = MAX_CHANGES if limit is None else _count(limit, "limit", 1, MAX_CHANGES)
    page, next_cursor = supplier.changes(after, cursor or None, size)
    now = _now(request)
    return _answer(
        supplier, {"items": [order_json(order) for order in page], "next_cursor": next_cursor, "as_of": iso(now)}
    )


def _moment(text: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise SandboxError(400, f"{name}: an ISO 8601 date-time with an offset") from exc
    if moment.tzinfo is None:
        raise SandboxError(400, f"{name}: an ISO 8601 date-time with an offset")
    return moment


def _count(text: str, name: str, low: int, high: int) -> int:
    if not text.isascii() or not text.isdigit() or not low <= int(text) <= high:
        raise SandboxError(400, f"{name}: a whole number from {low} to {high}")
    return int(text)


@post(both("/api/v1/orders/{order_id:str}/cancel"))
async def cancel_order(request: Request[Any, Any, Any], order_id: str, tenant: str = DEFAULT_TENANT) -> Response[Any]:
    supplier = await _admit(request, tenant, auth=True, operation="cancel_order")
    return _answer(supplier, order_json(supplier.cancel(order_id, _now(request))))


# --- CSV feed --------------------------------------------------------------------------------------


@get(both("/feed.csv"))
async def feed(request: Request[Any, Any, Any], tenant: str = DEFAULT_TENANT) -> Response[Any]:
    supplier = await _admit(request, tenant, auth=False, operation="feed")
    now = _now(request)
    rows = csv_rows([supplier.quote(part.sku, now) for part in CATALOGUE])
    if hit(supplier.rng, supplier.faults.malformed_rate):
        rows = malformed_csv(rows, supplier.rng)
    return Response(csv_text(rows), media_type="text/csv")


# --- SMS gateway (the wire format of integrations/notify/sms.py) -----------------------------------


@post(both("/sms/messages"))
async def send_sms(request: Request[Any, Any, Any], tenant: str = DEFAULT_TENANT) -> Response[Any]:
    """Records the message (per tenant); the tenant's faults apply. An Idempotency-Key replays its id."""
    gateway = await _admit(request, tenant, auth=True, operation="send_sms")
    body = await _parse(request, SmsIn)
    sent: list[dict[str, Any]] = request.app.state.sms.setdefault(gateway.name, [])
    key = request.headers.get("idempotency-key", "").strip() or None
    for message in sent:
        if key is not None and message["idempotency_key"] == key:
            return Response({"id": message["id"]}, status_code=200)
    message = {"id": f"sms_{len(sent) + 1:06d}", "to": body.to, "body": body.body, "idempotency_key": key}
    sent.append({**message, "at": _now(request).isoformat()})
    return Response({"id": message["id"]}, status_code=202)


@get(both("/_sandbox/sms"))
async def sms_log(request: Request[Any, Any, Any], tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
    name = _sandbox(request).tenant(tenant).name
    return {"items": list(request.app.state.sms.get(name, []))}


# --- admin (no auth, no faults) --------------------------------------------------------------------


@get(both("/_sandbox/faults"))
async def get_faults(request: Request[Any, Any, Any], tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
    return _sandbox(request).tenant(tenant).faults.model_dump()


@put(both("/_sandbox/faults"))
async def put_faults(request: Request[Any, Any, Any], tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
    supplier = _sandbox(request).tenant(tenant)
    try:
        changes = json.loads(await request.body() or b"{}")
    except ValueError as exc:
        raise SandboxError(400, "a JSON object of fault knobs") from exc
    if not isinstance(changes, dict):
        raise SandboxError(400, "a JSON object of fault knobs")
    try:
        supplier.faults = supplier.faults.updated(changes)
    except ValidationError as exc:
        raise SandboxError(400, f"invalid faults: {_problems(exc)}") from exc
    return supplier.faults.model_dump()


@post(both("/_sandbox/reset"), status_code=200)
async def reset(request: Request[Any, Any, Any], tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
    sandbox = _sandbox(request)
    supplier = sandbox.tenant(tenant)
    supplier.reset(sandbox.config.faults)
    return {"tenant": supplier.name, "faults": supplier.faults.model_dump()}


@post(both("/_sandbox/webhooks"), status_code=200)
async def configure_webhooks(request: Request[Any, Any, Any], tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
    supplier = _sandbox(request).tenant(tenant)
    body = await _parse(request, WebhooksIn)
    if body.url is not None and body.secret is None:
        raise SandboxError(400, "a webhook url needs its secret")
    supplier.webhook = WebhookTarget(body.url, body.secret) if body.url and body.secret else None
    return {"url": body.url}


@get(both("/_sandbox/webhooks/log"))
async def webhook_log(request: Request[Any, Any, Any], tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
    return {"items": list(_sandbox(request).tenant(tenant).log)}


@post(both("/_sandbox/orders/{order_id:str}/advance"), status_code=200)
async def advance(request: Request[Any, Any, Any], order_id: str, tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
    supplier = _sandbox(request).tenant(tenant)
    body = await _parse(request, AdvanceIn)
    options = body.model_dump(exclude={"action"}, exclude_none=True)
    order, event = supplier.advance(order_id, body.action, _now(request), **options)
    first = await _pusher(request).push_and_wait(supplier, event)
    return {"order": order_json(order), "webhook": first}


@post(both("/_sandbox/orders/bulk"), status_code=201)
async def bulk_orders(request: Request[Any, Any, Any], tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
    """Up to 10,000 orders at once, for benchmarks: each as if placed with its PO as Idempotency-Key
    (an existing PO gives its existing order), no webhook pushed."""
    supplier = _sandbox(request).tenant(tenant)
    body = await _parse(request, BulkIn)
    wanted = [(order.po, [(line.sku, line.quantity) for line in order.lines]) for order in body.orders]
    return {"ids": supplier.bulk_place(wanted, _now(request))}


@get(both("/_sandbox/stats"))
async def stats(request: Request[Any, Any, Any], tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
    """What the tenant holds and the API/feed requests it received since its last reset, per operation."""
    supplier = _sandbox(request).tenant(tenant)
    return {"orders": len(supplier.orders), "requests": dict(supplier.requests)}


@post(both("/_sandbox/stock/{sku:str}"), status_code=200)
async def set_stock(request: Request[Any, Any, Any], sku: str, tenant: str = DEFAULT_TENANT) -> dict[str, Any]:
    supplier = _sandbox(request).tenant(tenant)
    body = await _parse(request, StockIn)
    quote, event = supplier.set_stock(sku, body.available, _now(request))
    first = await _pusher(request).push_and_wait(supplier, event)
    return {"item": quote_json(quote), "webhook": first}


def create_app(
    config: SandboxConfig | None = None,
    *,
    clock: Clock = utc_now,
    retry_delays: tuple[float, ...] = RETRY_DELAYS,
) -> Litestar:
    """The app; with no config (as granian calls it), the one the CLI put in the environment."""
    config = config or SandboxConfig.from_env()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # Direct to the configured URL: a proxy from the environment has no business in a webhook push.
        app.state.pusher = Pusher(httpx.AsyncClient(timeout=TIMEOUT, trust_env=False), retry_delays)
        try:
            yield
        finally:
            await app.state.pusher.close()

    return Litestar(
        route_handlers=[
            *(stock, place_order, order_changes, get_order, find_orders, cancel_order, feed),  # the supplier
            *(send_sms, sms_log),  # an SMS gateway
            *(get_faults, put_faults, reset, configure_webhooks, webhook_log, advance, set_stock),  # its controls
            *(bulk_orders, stats),
        ],
        lifespan=[lifespan],
        exception_handlers={Exception: _error},
        state=State({"sandbox": Sandbox(config), "clock": clock, "sms": {}}),
        openapi_config=None,
        debug=False,
    )
