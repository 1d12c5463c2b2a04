"""Supplier webhooks received by Atelier: Standard Webhooks 1.0 signatures and the event payloads.

`verify` authenticates a push on its raw bytes (before any parsing), against every current secret so
that a secret can be rotated without losing pushes; `parse_event` then validates the body into one of
the typed events of the supplier wire spec. Replays inside the tolerance window are the caller's to
refuse: keep each accepted `webhook-id` at least that long (a supplier retries with the same id).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as secrets_module
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's marker, not a secret
_MIN_KEY_BYTES, _MAX_KEY_BYTES = 24, 64  # the standard's bounds for a secret's key
_MAX_ID_LENGTH = 256
_MAX_TIMESTAMP_DIGITS = 12


class WebhookRejected(Exception):
    """The push is refused; `status` is the HTTP answer to give (400 malformed, 401 not authentic)."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class InvalidSecret(ValueError):
    """A configured secret is not `whsec_` + base64 of 24 to 64 bytes (a configuration error)."""


@dataclass(frozen=True, slots=True)
class WebhookMessage:
    id: str
    timestamp: datetime


def new_secret() -> str:
    """A fresh signing secret to hand to a supplier: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets_module.token_bytes(32)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_...` secret, or `InvalidSecret`."""
    if not secret.startswith(SECRET_PREFIX):
        raise InvalidSecret(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidSecret("a webhook secret is base64 after its prefix") from None
    if not _MIN_KEY_BYTES <= len(key) <= _MAX_KEY_BYTES:
        raise InvalidSecret(f"a webhook secret holds {_MIN_KEY_BYTES} to {_MAX_KEY_BYTES} bytes, not {len(key)}")
    return key


def sign(secret: str, msg_id: str, timestamp: int | datetime, body: bytes) -> str:
    """The `webhook-signature` value for a push: `v1,` + base64 HMAC-SHA256 of `{id}.{timestamp}.{body}`."""
    seconds = int(timestamp.timestamp()) if isinstance(timestamp, datetime) else int(timestamp)
    digest = _digest(secret_key(secret), msg_id, seconds, body)
    return "v1," + base64.b64encode(digest).decode("ascii")


def verify(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime,
    tolerance: timedelta = timedelta(minutes=5),
) -> WebhookMessage:
    """The push's id and timestamp if one of its `v1` signatures matches one of `secrets`.

    Raises `WebhookRejected` (400: headers missing or malformed; 401: no matching signature, or a
    timestamp further than `tolerance` from `now` either way), and `InvalidSecret` /`ValueError` for
    a configuration error (no secret, a malformed one, a naive `now`).
    """
    if isinstance(secrets, str):
        raise TypeError("secrets is a sequence of secrets, not one secret")
    if not secrets:
        raise ValueError("at least one webhook secret is needed")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    keys = [secret_key(secret) for secret in secrets]
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = _required(lowered, "webhook-id")
    raw_timestamp = _required(lowered, "webhook-timestamp")
    raw_signatures = _required(lowered, "webhook-signature")

    if len(msg_id) > _MAX_ID_LENGTH or not msg_id.isascii() or not msg_id.isprintable():
        raise WebhookRejected("webhook-id is not a short printable ASCII id", 400)
    if not (raw_timestamp.isascii() and raw_timestamp.isdigit() and len(raw_timestamp) <= _MAX_TIMESTAMP_DIGITS):
        raise WebhookRejected("webhook-timestamp is not a Unix time in seconds", 400)
    seconds = int(raw_timestamp)
    timestamp = datetime.fromtimestamp(seconds, UTC)
    if timestamp < now - tolerance:
        raise WebhookRejected("webhook-timestamp is too old", 401)
    if timestamp > now + tolerance:
        raise WebhookRejected("webhook-timestamp is in the future", 401)

    candidates = _v1_signatures(raw_signatures)
    if not candidates:
        raise WebhookRejected("webhook-signature holds no v1 signature", 401)
    expected = [_digest(key, msg_id, seconds, body) for key in keys]
    # Compare every pair, without stopping at the first match: time does not tell which one matched.
    matched = False
    for candidate in candidates:
        for digest in expected:
            matched |= hmac.compare_digest(candidate, digest)
    if not matched:
        raise WebhookRejected("no webhook signature matches", 401)
    return WebhookMessage(id=msg_id, timestamp=timestamp)


def _required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name, "").strip()
    if not value:
        raise WebhookRejected(f"header {name} is missing", 400)
    return value


def _v1_signatures(header: str) -> list[bytes]:
    """The decoded `v1,<base64>` entries of the header; other versions and broken entries are ignored."""
    found: list[bytes] = []
    for entry in header.split(" "):
        version, sep, value = entry.partition(",")
        if version != "v1" or not sep:
            continue
        try:
            found.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    return found


def _digest(key: bytes, msg_id: str, seconds: int, body: bytes) -> bytes:
    return hmac.new(key, f"{msg_id}.{seconds}.".encode() + body, hashlib.sha256).digest()


# --- event payloads -------------------------------------------------------------------------------


class InvalidEvent(ValueError):
    """The body is not a valid supplier event; `field` names the first offending field ("" for the body)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field or 'body'}: {reason}")
        self.field = field
        self.reason = reason


class UnknownEventType(InvalidEvent):
    """A well-formed event of a type this version does not know (answer 2xx and ignore it, or 400)."""


class _Wire(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


Sku = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Id = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Count = Annotated[int, Field(ge=0)]


class StockChangedData(_Wire):
    sku: Sku
    available: Count
    price_cents: Count | None = None
    currency: Currency | None = None
    eta: AwareDatetime | None = None


class OrderConfirmedData(_Wire):
    order_id: Id
    po: Id
    eta: AwareDatetime


class ShippedLine(_Wire):
    sku: Sku
    shipped_quantity: Count  # cumulative for the line; partial when below the ordered quantity


class OrderShippedData(_Wire):
    order_id: Id
    po: Id
    tracking_number: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None
    lines: Annotated[list[ShippedLine], Field(min_length=1)]
    eta: AwareDatetime | None = None


class OrderDeliveredData(_Wire):
    order_id: Id
    po: Id


class OrderEtaRevisedData(_Wire):
    order_id: Id
    po: Id
    eta: AwareDatetime
    sku: Sku | None = None  # None: every open line


class OrderBackorderedData(_Wire):
    order_id: Id
    po: Id
    eta: AwareDatetime | None = None
    sku: Sku | None = None


class OrderCancelledData(_Wire):
    order_id: Id
    po: Id
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None


class StockChanged(_Wire):
    type: Literal["stock.changed"]
    timestamp: AwareDatetime
    data: StockChangedData


class OrderConfirmed(_Wire):
    type: Literal["order.confirmed"]
    timestamp: AwareDatetime
    data: OrderConfirmedData


class OrderShipped(_Wire):
    type: Literal["order.shipped"]
    timestamp: AwareDatetime
    data: OrderShippedData


class OrderDelivered(_Wire):
    type: Literal["order.delivered"]
    timestamp: AwareDatetime
    data: OrderDeliveredData


class OrderEtaRevised(_Wire):
    type: Literal["order.eta_revised"]
    timestamp: AwareDatetime
    data: OrderEtaRevisedData


class OrderBackordered(_Wire):
    type: Literal["order.backordered"]
    timestamp: AwareDatetime
    data: OrderBackorderedData


class OrderCancelled(_Wire):
    type: Literal["order.cancelled"]
    timestamp: AwareDatetime
    data: OrderCancelledData


SupplierEvent = Annotated[
    StockChanged | OrderConfirmed | OrderShipped | OrderDelivered | OrderEtaRevised | OrderBackordered | OrderCancelled,
    Field(discriminator="type"),
]
_EVENT_MODELS = (
    StockChanged,
    OrderConfirmed,
    OrderShipped,
    OrderDelivered,
    OrderEtaRevised,
    OrderBackordered,
    OrderCancelled,
)
EVENT_TYPES: frozenset[str] = frozenset(get_args(model.model_fields["type"].annotation)[0] for model in _EVENT_MODELS)
_events: TypeAdapter[SupplierEvent] = TypeAdapter(SupplierEvent)


def parse_event(body: bytes) -> SupplierEvent:
    """The typed event in a (verified) push body, or `InvalidEvent` naming the first bad field."""
    try:
        return _events.validate_json(body)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        loc = list(error["loc"])
        if error["type"] == "union_tag_invalid":
            tag = str(error.get("ctx", {}).get("tag", ""))[:60]
            raise UnknownEventType("type", f"unknown event type {tag!r}") from None
        if error["type"] == "union_tag_not_found":
            raise InvalidEvent("type", "missing") from None
        if loc and loc[0] in EVENT_TYPES:
            loc = loc[1:]  # the union's tag, not a field of the body
        raise InvalidEvent(".".join(str(part) for part in loc), error["msg"]) from None
