"""Supplier webhooks (Standard Webhooks 1.0): verified on the raw bytes, then applied exactly once.

The event's id is stored in the same transaction as its effect, so a redelivery finds it and changes
nothing, and a crash between the two cannot happen. Facts carry the time they happened at the supplier,
so an older event arriving late never rolls a line back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

import structlog

from domain.parts import EtaSource, FactKind, SupplierFact, parse_po
from integrations.webhooks import (
    InvalidEvent,
    OrderBackordered,
    OrderCancelled,
    OrderConfirmed,
    OrderDelivered,
    OrderEtaRevised,
    OrderShipped,
    StockChanged,
    SupplierEvent,
    WebhookMessage,
    WebhookRejected,
    parse_event,
    verify,
)
from service.persistence.suppliers import StockReport
from service.secrets import PasscodeCipher
from service.uow import Database, UnitOfWork
from service.usecases.parts import apply_fact
from service.usecases.suppliers import webhook_secrets

log = structlog.get_logger("atelier.webhooks")


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # a redelivery: already applied, nothing changed
    UNKNOWN_ORDER = "unknown_order"  # about an order that is not ours: recorded, nothing else


@dataclass(frozen=True, slots=True)
class Received:
    webhook_id: str
    type: str
    outcome: Outcome


async def receive(
    db: Database,
    supplier_ref: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    cipher: PasscodeCipher,
    now: datetime,
    tolerance: timedelta,
) -> Received:
    """Verify, parse and apply one push. Anything wrong raises `WebhookRejected` with nothing written.

    The hot case, a stock event on PostgreSQL, takes one connection and two round trips: the secrets,
    then one statement that stores the webhook-id and applies the report together (atomic by itself, so
    no BEGIN/COMMIT: `SupplierRepository.claim_webhook_with_stock`). Any other event, or another
    database, is applied in a write transaction of its own after the secrets are read."""
    supplier_id = (
        int(supplier_ref) if supplier_ref.isascii() and supplier_ref.isdigit() and len(supplier_ref) < 10 else None
    )
    if supplier_id is None:
        raise WebhookRejected(_UNAUTHENTICATED, 401)
    async with db.transaction(write=False) as uow:
        ciphertext = await uow.suppliers.webhook_secrets(supplier_id)
        message, event = _authenticate(supplier_id, ciphertext, headers, body, cipher, now, tolerance)
        if isinstance(event, StockChanged) and uow.suppliers.claims_with_stock_atomically:
            claimed = await uow.suppliers.claim_webhook_with_stock(
                supplier_id, message.id, event.type, _stock_report(event), now
            )
            return Received(message.id, event.type, Outcome.APPLIED if claimed else Outcome.DUPLICATE)
    async with db.transaction() as uow:
        if not await uow.suppliers.claim_webhook(supplier_id, message.id, event.type, now):
            return Received(message.id, event.type, Outcome.DUPLICATE)
        outcome = await apply_event(uow, supplier_id, event, now=now)
    return Received(message.id, event.type, outcome)


_UNAUTHENTICATED = "unknown supplier or no webhook secret configured"


def _authenticate(
    supplier_id: int,
    ciphertext: str | None,
    headers: Mapping[str, str],
    body: bytes,
    cipher: PasscodeCipher,
    now: datetime,
    tolerance: timedelta,
) -> tuple[WebhookMessage, SupplierEvent]:
    """The push's id and event: its signature verified on the raw bytes first, then its body parsed."""
    secrets = webhook_secrets(ciphertext, cipher)
    if not secrets:  # unknown, inactive, or never given a secret: all unauthenticated
        raise WebhookRejected(_UNAUTHENTICATED, 401)
    message = verify(secrets, headers, body, now=now, tolerance=tolerance)
    try:
        event = parse_event(body)
    except InvalidEvent as exc:
        log.warning("webhook_rejected", supplier_id=supplier_id, webhook_id=message.id, field=exc.field)
        raise WebhookRejected(f"{exc.field}: {exc.reason}", 400) from exc
    return message, event


def _stock_report(event: StockChanged) -> StockReport:
    data = event.data
    return StockReport(data.sku, data.available, data.price_cents, data.currency, data.eta, event.timestamp)


async def apply_event(uow: UnitOfWork, supplier_id: int, event: SupplierEvent, *, now: datetime) -> Outcome:
    if isinstance(event, StockChanged):
        await uow.suppliers.record_stock(supplier_id, [_stock_report(event)], now)
        return Outcome.APPLIED
    order_id = await uow.orders.find(supplier_id, event.data.order_id, parse_po(event.data.po))
    if order_id is None:
        log.warning("webhook_unknown_order", supplier_id=supplier_id, order=event.data.order_id, po=event.data.po)
        return Outcome.UNKNOWN_ORDER
    await apply_fact(uow, order_id, fact_of(event), now=now, supplier_ref=event.data.order_id)
    return Outcome.APPLIED


def fact_of(event: SupplierEvent) -> SupplierFact:
    """A webhook's order event as the domain fact a poll would produce too."""
    at, src = event.timestamp, EtaSource.WEBHOOK
    if isinstance(event, OrderConfirmed):
        return SupplierFact(FactKind.CONFIRMED, at, src, eta=event.data.eta)
    if isinstance(event, OrderShipped):
        shipped = {line.sku: line.shipped_quantity for line in event.data.lines}
        return SupplierFact(
            FactKind.SHIPPED, at, src, eta=event.data.eta, shipped=shipped, tracking_number=event.data.tracking_number
        )
    if isinstance(event, OrderDelivered):
        return SupplierFact(FactKind.DELIVERED, at, src)
    if isinstance(event, OrderEtaRevised):
        return SupplierFact(FactKind.ETA_REVISED, at, src, eta=event.data.eta, supplier_sku=event.data.sku)
    if isinstance(event, OrderBackordered):
        return SupplierFact(FactKind.BACKORDERED, at, src, eta=event.data.eta, supplier_sku=event.data.sku)
    if isinstance(event, OrderCancelled):
        return SupplierFact(FactKind.CANCELLED, at, src, reason=event.data.reason)
    raise TypeError(f"not an order event: {event.type}")
