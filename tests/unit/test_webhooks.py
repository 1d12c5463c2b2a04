"""Standard Webhooks 1.0 on Atelier's receiving side (the standard's test vector, tampering, rotation,
timestamps, headers) and the supplier event payloads."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from integrations.webhooks import (
    InvalidEvent,
    InvalidSecret,
    OrderBackordered,
    OrderCancelled,
    OrderConfirmed,
    OrderDelivered,
    OrderEtaRevised,
    OrderShipped,
    StockChanged,
    UnknownEventType,
    WebhookMessage,
    WebhookRejected,
    new_secret,
    parse_event,
    secret_key,
    sign,
    verify,
)

# The Standard Webhooks specification's test vector.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
AT = datetime.fromtimestamp(TIMESTAMP, UTC)


def headers(signature: str = SIGNATURE, msg_id: str = MSG_ID, timestamp: str = str(TIMESTAMP)) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": signature}


# --- signatures -------------------------------------------------------------------------------------


def test_sign_reproduces_the_standard_test_vector() -> None:
    assert sign(SECRET, MSG_ID, TIMESTAMP, BODY) == SIGNATURE
    assert sign(SECRET, MSG_ID, AT, BODY) == SIGNATURE


def test_verify_accepts_the_standard_test_vector() -> None:
    assert verify([SECRET], headers(), BODY, now=AT) == WebhookMessage(id=MSG_ID, timestamp=AT)


def test_header_names_are_case_insensitive() -> None:
    mixed = {"Webhook-Id": MSG_ID, "WEBHOOK-TIMESTAMP": str(TIMESTAMP), "Webhook-Signature": SIGNATURE}
    assert verify([SECRET], mixed, BODY, now=AT).id == MSG_ID


@pytest.mark.parametrize(
    "body", [b'{"test": 2432232315}', b'{"test":2432232314}', b'{"test": 2432232314} ', b'{"test": 2432232314}\n']
)
def test_a_tampered_body_is_rejected_even_if_json_equivalent(body: bytes) -> None:
    with pytest.raises(WebhookRejected) as info:
        verify([SECRET], headers(), body, now=AT)
    assert info.value.status == 401


def test_a_tampered_id_or_timestamp_is_rejected() -> None:
    with pytest.raises(WebhookRejected, match="no webhook signature matches"):
        verify([SECRET], headers(msg_id="msg_other"), BODY, now=AT)
    with pytest.raises(WebhookRejected, match="no webhook signature matches"):
        verify([SECRET], headers(timestamp=str(TIMESTAMP + 1)), BODY, now=AT)


def test_the_wrong_secret_is_rejected() -> None:
    with pytest.raises(WebhookRejected) as info:
        verify([new_secret()], headers(), BODY, now=AT)
    assert (info.value.status, info.value.reason) == (401, "no webhook signature matches")


def test_rotation_any_current_secret_verifies() -> None:
    assert verify([new_secret(), SECRET], headers(), BODY, now=AT).id == MSG_ID


def test_one_matching_signature_among_several_is_enough() -> None:
    other = sign(new_secret(), MSG_ID, TIMESTAMP, BODY)
    several = f"{other} v1a,c29tZXRoaW5nIGVsc2U= garbage v2,abc {SIGNATURE}"
    assert verify([SECRET], headers(several), BODY, now=AT).id == MSG_ID


def test_a_sender_signing_with_both_secrets_during_rotation_verifies_with_either() -> None:
    new = new_secret()
    both = f"{sign(new, MSG_ID, TIMESTAMP, BODY)} {SIGNATURE}"
    assert verify([new], headers(both), BODY, now=AT).id == MSG_ID
    assert verify([SECRET], headers(both), BODY, now=AT).id == MSG_ID


@pytest.mark.parametrize(
    "signature",
    [
        SIGNATURE.replace("v1,", "v1a,"),  # another version: ignored, so nothing left
        SIGNATURE.replace("v1,", "v2,"),
        SIGNATURE[3:],  # no version
        "v1,not base64!",
        "v1," + base64.b64encode(b"x" * 32).decode(),
    ],
)
def test_signatures_that_are_not_a_matching_v1_are_rejected(signature: str) -> None:
    with pytest.raises(WebhookRejected) as info:
        verify([SECRET], headers(signature), BODY, now=AT)
    assert info.value.status == 401


@pytest.mark.parametrize(
    ("offset", "reason"),
    [(timedelta(minutes=5, seconds=1), "too old"), (timedelta(minutes=-5, seconds=-1), "in the future")],
)
def test_stale_and_future_timestamps_are_rejected(offset: timedelta, reason: str) -> None:
    with pytest.raises(WebhookRejected, match=reason) as info:
        verify([SECRET], headers(), BODY, now=AT + offset)
    assert info.value.status == 401


def test_timestamps_within_the_tolerance_pass_and_the_tolerance_is_configurable() -> None:
    assert verify([SECRET], headers(), BODY, now=AT + timedelta(minutes=5)).id == MSG_ID
    assert verify([SECRET], headers(), BODY, now=AT - timedelta(minutes=5)).id == MSG_ID
    with pytest.raises(WebhookRejected, match="too old"):
        verify([SECRET], headers(), BODY, now=AT + timedelta(seconds=31), tolerance=timedelta(seconds=30))


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_a_400(missing: str) -> None:
    incomplete = {k: v for k, v in headers().items() if k != missing}
    with pytest.raises(WebhookRejected, match=missing) as info:
        verify([SECRET], incomplete, BODY, now=AT)
    assert info.value.status == 400


@pytest.mark.parametrize("timestamp", ["", "abc", "1614265330.5", "-1614265330", "1e9", "99999999999999999999"])
def test_a_malformed_timestamp_is_a_400(timestamp: str) -> None:
    with pytest.raises(WebhookRejected) as info:
        verify([SECRET], headers(timestamp=timestamp), BODY, now=AT)
    assert info.value.status == 400


def test_an_oversized_or_unprintable_id_is_a_400() -> None:
    for msg_id in ("m" * 300, "msg_\x00"):
        with pytest.raises(WebhookRejected) as info:
            verify([SECRET], headers(msg_id=msg_id), BODY, now=AT)
        assert info.value.status == 400


# --- secrets ----------------------------------------------------------------------------------------


def test_new_secrets_are_well_formed_and_distinct() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(secret_key(first)) == 32


@pytest.mark.parametrize(
    "secret",
    [
        "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # no prefix
        "whsec_",  # empty
        "whsec_not base64!!",
        "whsec_" + base64.b64encode(b"short").decode(),  # under 24 bytes
        "whsec_" + base64.b64encode(b"x" * 65).decode(),  # over 64 bytes
    ],
)
def test_malformed_secrets_are_a_configuration_error(secret: str) -> None:
    with pytest.raises(InvalidSecret):
        secret_key(secret)
    with pytest.raises(InvalidSecret):
        verify([secret], headers(), BODY, now=AT)


def test_verify_needs_secrets_and_an_aware_now() -> None:
    with pytest.raises(ValueError, match="at least one"):
        verify([], headers(), BODY, now=AT)
    with pytest.raises(TypeError):
        verify(SECRET, headers(), BODY, now=AT)
    with pytest.raises(ValueError, match="timezone"):
        verify([SECRET], headers(), BODY, now=AT.replace(tzinfo=None))


# --- event payloads ---------------------------------------------------------------------------------

WHEN = "2026-11-26T12:00:00Z"
ETA = "2026-11-28T09:00:00+00:00"


def event(type_: str, **data: Any) -> bytes:
    return json.dumps({"type": type_, "timestamp": WHEN, "data": data}).encode()


def test_stock_changed() -> None:
    parsed = parse_event(event("stock.changed", sku="A1", available=3, price_cents=4500, currency="EUR", eta=ETA))
    assert isinstance(parsed, StockChanged)
    assert parsed.data.available == 3 and parsed.data.price_cents == 4500
    assert parsed.timestamp == datetime(2026, 11, 26, 12, tzinfo=UTC)
    minimal = parse_event(event("stock.changed", sku="A1", available=0))
    assert isinstance(minimal, StockChanged) and minimal.data.eta is None


def test_order_confirmed() -> None:
    parsed = parse_event(event("order.confirmed", order_id="ORD-x-0001", po="PO-000001", eta=ETA))
    assert isinstance(parsed, OrderConfirmed)
    assert parsed.data.eta == datetime(2026, 11, 28, 9, tzinfo=UTC)


def test_order_shipped_partial() -> None:
    body = event(
        "order.shipped",
        order_id="ORD-x-0001",
        po="PO-000001",
        tracking_number="TRK123",
        lines=[{"sku": "A1", "shipped_quantity": 1}, {"sku": "B2", "shipped_quantity": 0}],
    )
    parsed = parse_event(body)
    assert isinstance(parsed, OrderShipped)
    assert [(line.sku, line.shipped_quantity) for line in parsed.data.lines] == [("A1", 1), ("B2", 0)]
    assert parsed.data.eta is None


def test_order_delivered_eta_revised_backordered_cancelled() -> None:
    delivered = parse_event(event("order.delivered", order_id="O1", po="P1"))
    revised = parse_event(event("order.eta_revised", order_id="O1", po="P1", eta=ETA))
    revised_line = parse_event(event("order.eta_revised", order_id="O1", po="P1", eta=ETA, sku="A1"))
    backordered = parse_event(event("order.backordered", order_id="O1", po="P1"))
    cancelled = parse_event(event("order.cancelled", order_id="O1", po="P1", reason="out of production"))
    assert isinstance(delivered, OrderDelivered)
    assert isinstance(revised, OrderEtaRevised) and revised.data.sku is None
    assert isinstance(revised_line, OrderEtaRevised) and revised_line.data.sku == "A1"
    assert isinstance(backordered, OrderBackordered) and backordered.data.eta is None
    assert isinstance(cancelled, OrderCancelled) and cancelled.data.reason == "out of production"


def test_extra_fields_are_ignored() -> None:
    body = json.dumps(
        {"type": "order.delivered", "timestamp": WHEN, "id": "evt_1", "data": {"order_id": "O1", "po": "P1", "x": 1}}
    ).encode()
    assert isinstance(parse_event(body), OrderDelivered)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (event("stock.changed", sku="A1", available="3"), "data.available"),  # a string is not a count
        (event("stock.changed", sku="A1", available=-1), "data.available"),
        (event("stock.changed", sku="A1", available=1.5), "data.available"),
        (event("stock.changed", sku="", available=1), "data.sku"),
        (event("stock.changed", sku="A1", available=1, currency="eur"), "data.currency"),
        (event("order.confirmed", order_id="O1", po="P1"), "data.eta"),
        (event("order.confirmed", order_id="O1", po="P1", eta="2026-11-28T09:00:00"), "data.eta"),  # naive
        (event("order.confirmed", order_id="O1", po="P1", eta=1795000000), "data.eta"),
        (event("order.shipped", order_id="O1", po="P1", tracking_number="T", lines=[]), "data.lines"),
        (
            event("order.shipped", order_id="O1", po="P1", tracking_number="T", lines=[{"sku": "A1"}]),
            "data.lines.0.shipped_quantity",
        ),
        (event("order.delivered", po="P1"), "data.order_id"),
        (json.dumps({"type": "order.delivered", "data": {"order_id": "O", "po": "P"}}).encode(), "timestamp"),
        (
            json.dumps(
                {"type": "order.delivered", "timestamp": "2026-11-26T12:00:00", "data": {"order_id": "O", "po": "P"}}
            ).encode(),
            "timestamp",
        ),
        (json.dumps({"type": "order.delivered", "timestamp": WHEN}).encode(), "data"),
        (json.dumps({"timestamp": WHEN, "data": {}}).encode(), "type"),
        (b"{not json", ""),
        (b"[]", ""),
    ],
)
def test_bad_payloads_are_rejected_naming_the_field(body: bytes, field: str) -> None:
    with pytest.raises(InvalidEvent) as info:
        parse_event(body)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field or 'body'}: ")


def test_an_unknown_event_type_is_its_own_error() -> None:
    with pytest.raises(UnknownEventType, match=r"order\.teleported") as info:
        parse_event(event("order.teleported", order_id="O1"))
    assert info.value.field == "type"
    assert isinstance(info.value, InvalidEvent)
