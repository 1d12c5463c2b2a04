"""Sourcing: asking suppliers for quotes, placing and cancelling orders through their APIs.

Supplier calls can take seconds, so they never run inside a database transaction: read what is needed,
call the suppliers, then write in a short transaction. Ordering commits the purchase order (our PO
number) *before* calling the supplier, and the PO is the supplier's idempotency key: a retry after a
timeout re-sends the same PO and can never order twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import structlog

from domain.calendar import BusinessCalendar
from domain.errors import InvalidValue, NotPermitted, RuleConflict
from domain.model import Actor, EventKind, JobEvent, RepairJob
from domain.parts import EtaSource, FactKind, OrderStatus, PartLine, PartStatus, SupplierFact, SupplierOrder
from domain.sla import SlaPolicy
from domain.sourcing import WINDOW, Choice, Offer, choose_offer, scorecard
from domain.stages import Role
from integrations.suppliers.base import (
    AdapterKind,
    LineState,
    OrderInfo,
    OrderLineInfo,
    OrderLineRequest,
    OrderState,
    SupplierClient,
    SupplierConfig,
    SupplierError,
    SupplierRejected,
)
from service.errors import SupplierFailure
from service.secrets import PasscodeCipher
from service.uow import Database, UnitOfWork
from service.usecases.parts import apply_fact, line_of, save_lines
from service.usecases.suppliers import client_config

log = structlog.get_logger("atelier.sourcing")
_SOURCING_ROLES = (Role.TECHNICIAN, Role.MANAGER)


class ClientProvider(Protocol):
    """One long-lived client per supplier (connection pools, breakers): the app and workers hold it."""

    def get(self, config: SupplierConfig) -> SupplierClient: ...


def _client(clients: ClientProvider, config: SupplierConfig) -> SupplierClient:
    """The supplier's client. One we may not call — its URL or API key no longer passes our rules (saved
    before they were tightened, or the settings changed) — is a refusal to report, never a crash."""
    try:
        return clients.get(config)
    except ValueError as exc:
        raise SupplierRejected(config.name, f"cannot be called: {exc}") from exc


@dataclass(frozen=True, slots=True)
class QuoteFailure:
    supplier_id: int
    supplier_name: str
    reason: str


@dataclass(frozen=True, slots=True)
class Quotes:
    job: RepairJob
    line: PartLine
    offers: list[Offer]
    failures: list[QuoteFailure]
    choice: Choice | None
    no_choice_reason: str | None


@dataclass(frozen=True, slots=True)
class Sourcing:
    """What a quote or an order needs, read in one short transaction."""

    job: RepairJob
    line: PartLine
    calendar: BusinessCalendar
    configs: list[SupplierConfig]
    supplier_skus: dict[int, str]
    usual_delay: dict[int, timedelta]


async def _sourcing(
    uow: UnitOfWork, actor: Actor, ref: str, line_id: int, cipher: PasscodeCipher, now: datetime, only: int | None
) -> Sourcing:
    if actor.role not in _SOURCING_ROLES:
        raise NotPermitted("only a technician or a manager sources parts")
    job, line = await line_of(uow, actor, ref, line_id)
    stored = [s for s in await uow.suppliers.list(active_only=True) if only is None or s.supplier.id == only]
    if only is not None and not stored:
        raise InvalidValue("supplier_id", "no active supplier with this id")
    configs = [client_config(s, cipher) for s in stored]
    ids = [c.id for c in configs]
    delays = {}
    for supplier_id in ids:  # a supplier that is always late is judged on when its parts really arrive
        delays[supplier_id] = scorecard(await uow.lines.records(supplier_id, now - WINDOW), now).usual_delay
    branch = await uow.branches.by_id(job.branch_id)
    assert branch is not None
    return Sourcing(job, line, branch.calendar, configs, await uow.suppliers.supplier_skus(ids, line.sku), delays)


async def _ask(clients: ClientProvider, src: Sourcing) -> tuple[list[Offer], list[QuoteFailure]]:
    """Ask every supplier at once; a slow or failing supplier costs its own deadline, not the others'."""

    async def one(config: SupplierConfig) -> Offer | QuoteFailure | None:
        wanted = src.supplier_skus[config.id]
        try:
            answer = await _client(clients, config).stock([wanted])
        except SupplierError as exc:
            return QuoteFailure(config.id, config.name, exc.reason)
        item = next((i for i in answer.items if i.supplier_sku == wanted), None)
        if item is None:
            return None  # the supplier does not carry it
        return Offer(
            supplier_id=config.id,
            supplier_name=config.name,
            supplier_sku=item.supplier_sku,
            available=item.available,
            unit_price_cents=item.price_cents,
            currency=item.currency,
            eta=item.eta,
            usual_delay=src.usual_delay.get(config.id, timedelta(0)),
            orderable=config.adapter is not AdapterKind.CSV_FEED,
        )

    results = await asyncio.gather(*(one(c) for c in src.configs))
    return [r for r in results if isinstance(r, Offer)], [r for r in results if isinstance(r, QuoteFailure)]


def _choose(offers: Sequence[Offer], src: Sourcing, sla: SlaPolicy) -> Choice:
    job = src.job
    return choose_offer(
        offers,
        tier=job.tier,
        quantity=src.line.quantity,
        budget_cents=job.preapproved_budget_cents,
        due_at=job.due_at,
        ready_at=lambda arrival: sla.ready_at(job.tier, src.calendar, arrival),
    )


async def quotes(
    db: Database,
    actor: Actor,
    ref: str,
    line_id: int,
    *,
    clients: ClientProvider,
    cipher: PasscodeCipher,
    sla: SlaPolicy,
    now: datetime,
) -> Quotes:
    """Price, stock and ETA from every supplier, and the one the policy would choose."""
    async with db.transaction(write=False) as uow:
        src = await _sourcing(uow, actor, ref, line_id, cipher, now, None)
    offers, failures = await _ask(clients, src)
    offers.sort(key=lambda o: (o.expected_at is None, o.expected_at, o.unit_price_cents))
    try:
        return Quotes(src.job, src.line, offers, failures, _choose(offers, src, sla), None)
    except RuleConflict as exc:
        return Quotes(src.job, src.line, offers, failures, None, exc.detail)


@dataclass(frozen=True, slots=True)
class Placed:
    order: SupplierOrder
    line: PartLine


async def order_line(
    db: Database,
    actor: Actor,
    ref: str,
    line_id: int,
    *,
    supplier_id: int | None,
    clients: ClientProvider,
    cipher: PasscodeCipher,
    sla: SlaPolicy,
    now: datetime,
    reason: str | None = None,
) -> Placed:
    """Order a line from the named supplier, or from the policy's choice. The choice and its reason are
    recorded on the order and in the job's history (`reason`: why a named supplier was chosen, when not
    by staff: re-sourcing)."""
    async with db.transaction(write=False) as uow:
        src = await _sourcing(uow, actor, ref, line_id, cipher, now, supplier_id)
    _check_orderable(src.line)
    pending = await _pending_order(db, actor, src)
    resending = pending is not None
    if pending is None:
        offers, failures = await _ask(clients, src)
        choice = _pick(offers, failures, src, sla, supplier_id)
        if reason is not None and supplier_id is not None:
            choice = Choice(choice.offer, reason)
        pending = await _open_order(db, actor, src, choice, now)
    config = next(c for c in src.configs if c.id == pending.supplier_id)
    request = [OrderLineRequest(src.supplier_skus[config.id], src.line.quantity)]
    try:
        info = await _client(clients, config).place_order(pending.po, request)
    except SupplierRejected as exc:
        if resending:
            # The supplier may hold this PO from the first send: closing it here would let a second
            # order follow. It stays open (and re-sendable) until someone checks with the supplier.
            detail = f"refused {pending.po} when it was sent again: {exc.reason}; check it with the supplier"
            raise SupplierFailure(config.name, detail, status=409) from exc
        await _abandon(db, pending, exc.reason, now)
        raise SupplierFailure(config.name, f"refused the order: {exc.reason}", status=409) from exc
    except SupplierError as exc:
        # The order may or may not have reached the supplier: keep the PO, so a retry re-sends the same.
        raise SupplierFailure(
            config.name,
            f"{exc.reason}; {pending.po} may not have reached it: order again to re-send the same PO",
            status=503,
            retry_after=getattr(exc, "retry_after", None),
        ) from exc
    return await _record_placed(db, pending, info, config, src.supplier_skus[config.id], actor, now)


def _check_orderable(line: PartLine) -> None:
    if line.status not in (PartStatus.NEEDED, PartStatus.CANCELLED):
        raise RuleConflict(f"part line {line.id} is already {line.status}")


def _unanswered(order: SupplierOrder, line: PartLine) -> bool:
    """Our PO went to the supplier but its answer was never recorded on the line (lost, or the worker
    died): the supplier may hold it, so it must be re-sent, never replaced by a second order. A line is
    recorded as ordered only from the answer, so it is still needed (or cancelled, when re-sourcing)."""
    return order.status is not OrderStatus.CANCELLED and line.status in (PartStatus.NEEDED, PartStatus.CANCELLED)


async def _pending_order(db: Database, actor: Actor, src: Sourcing) -> SupplierOrder | None:
    """An order we sent without hearing back: ordering again re-sends it, whatever supplier is named."""
    if src.line.order_id is None:
        return None
    async with db.transaction(write=False) as uow:
        order = await uow.orders.get(actor, src.line.order_id)
    if not _unanswered(order, src.line):
        if src.line.status is PartStatus.CANCELLED:
            return None  # its order was cancelled: a fresh order, elsewhere if need be
        raise RuleConflict(f"part line {src.line.id} is already on {order.po}")
    if order.supplier_id not in src.supplier_skus:
        raise RuleConflict(f"{order.po} with supplier {order.supplier_id} awaits an answer: order again from it")
    return order


def _pick(
    offers: Sequence[Offer], failures: Sequence[QuoteFailure], src: Sourcing, sla: SlaPolicy, supplier_id: int | None
) -> Choice:
    if supplier_id is None:
        return _choose(offers, src, sla)
    if failures:
        failure = failures[0]
        raise SupplierFailure(failure.supplier_name, failure.reason, status=503)
    offer = next((o for o in offers if o.supplier_id == supplier_id), None)
    if offer is None:
        raise RuleConflict(f"supplier {supplier_id} does not carry {src.line.sku}")
    if not offer.orderable:
        raise RuleConflict(f"{offer.supplier_name} publishes a stock feed only: it takes no orders through Atelier")
    return Choice(offer, "chosen by staff")


async def _open_order(db: Database, actor: Actor, src: Sourcing, choice: Choice, now: datetime) -> SupplierOrder:
    """Commit our purchase order before the supplier hears of it (its number is the idempotency key)."""
    async with db.transaction() as uow:
        job, line = await line_of(uow, actor, src.job.ref, src.line.id or 0, lock=True)
        _check_orderable(line)
        if line.order_id is not None and _unanswered(await uow.orders.get(actor, line.order_id), line):
            raise RuleConflict(f"part line {line.id} was ordered meanwhile")
        order = SupplierOrder(
            None, choice.offer.supplier_id, job.branch_id, job.id or 0, now, actor.username, choice.reason
        )
        await uow.orders.add(order)
        version = line.version
        line.put_on_order(order.id or 0, choice.offer.unit_price_cents, now)
        await uow.lines.save([line], {line.id or 0: version})
        offer = choice.offer
        data = {
            "line_id": line.id,
            "po": order.po,
            "supplier_id": offer.supplier_id,
            "supplier": offer.supplier_name,
            "reason": choice.reason,
            "unit_price_cents": offer.unit_price_cents,
            "quoted_eta": offer.eta.isoformat() if offer.eta else None,
        }
        await uow.jobs.add_events(job.id or 0, [JobEvent(EventKind.SUPPLIER_CHOSEN, now, actor.username, data=data)])
    return order


async def _abandon(db: Database, order: SupplierOrder, reason: str, now: datetime) -> None:
    """The supplier said no: the PO is closed and the line is free to order elsewhere."""
    async with db.transaction() as uow:
        stored = await uow.orders.get(None, order.id or 0, lock=True)
        stored.status, stored.updated_at = OrderStatus.CANCELLED, now
        await uow.orders.save(stored)
        versions = {line.id or 0: line.version for line in stored.lines}
        for line in stored.lines:
            line.take_off_order(now)
        await uow.lines.save(stored.lines, versions)
        data = {"po": stored.po, "reason": reason}
        await uow.jobs.add_events(stored.job_id, [JobEvent(EventKind.ORDER_REFUSED, now, None, data=data)])


async def _record_placed(
    db: Database,
    pending: SupplierOrder,
    info: OrderInfo,
    config: SupplierConfig,
    supplier_sku: str,
    actor: Actor,
    now: datetime,
) -> Placed:
    async with db.transaction() as uow:
        order = await uow.orders.get(None, pending.id or 0, lock=True)
        versions = {line.id or 0: line.version for line in order.lines}
        answered = _line_info(info, supplier_sku)
        for line in order.lines:
            if line.status in (PartStatus.NEEDED, PartStatus.CANCELLED):
                line.ordered(
                    supplier_id=config.id,
                    supplier_sku=supplier_sku,
                    order_id=order.id or 0,
                    unit_price_cents=line.unit_price_cents,
                    eta=(answered.eta if answered else None) or info.eta,
                    backordered=info.state is OrderState.BACKORDERED
                    or (answered is not None and answered.state is LineState.BACKORDERED),
                    at=now,
                    actor=actor.username,
                )
        order.supplier_ref = info.supplier_order_id
        order.status = OrderStatus.CONFIRMED
        order.refresh_status(now)
        order.updated_at = now
        await save_lines(uow, order.job_id, order.lines, versions)
        await uow.orders.save(order)
    log.info("supplier_order_placed", po=order.po, supplier=config.name, supplier_ref=info.supplier_order_id)
    return Placed(order, order.lines[0])


def _line_info(info: OrderInfo, supplier_sku: str) -> OrderLineInfo | None:
    return next((line for line in info.lines if line.supplier_sku == supplier_sku), None)


async def cancel_order(
    db: Database,
    actor: Actor,
    order_id: int,
    *,
    reason: str,
    clients: ClientProvider,
    cipher: PasscodeCipher,
    now: datetime,
) -> SupplierOrder:
    """Cancel at the supplier first (it may refuse once shipped), then here: lines go back to needed
    so they can be ordered elsewhere."""
    if actor.role not in _SOURCING_ROLES:
        raise NotPermitted("only a technician or a manager cancels supplier orders")
    async with db.transaction(write=False) as uow:
        order = await uow.orders.get(actor, order_id)
        config = client_config(await uow.suppliers.get(order.supplier_id), cipher)
    if order.status in (OrderStatus.CANCELLED, OrderStatus.DELIVERED, OrderStatus.SHIPPED):
        raise RuleConflict(f"{order.po} is {order.status}: it can no longer be cancelled")
    if order.supplier_ref is not None:
        try:
            await _client(clients, config).cancel_order(order.supplier_ref)
        except SupplierRejected as exc:
            raise SupplierFailure(config.name, f"refused to cancel: {exc.reason}", status=409) from exc
        except SupplierError as exc:
            raise SupplierFailure(
                config.name, exc.reason, status=503, retry_after=getattr(exc, "retry_after", None)
            ) from exc
    async with db.transaction() as uow:
        order = await uow.orders.get(actor, order_id, lock=True)
        versions = {line.id or 0: line.version for line in order.lines}
        for line in order.lines:
            # Our decision, not the supplier's failing (its scorecard must not count it). A line already
            # on its way is received, then returned.
            if line.waiting and line.status is not PartStatus.SHIPPED:
                line.cancel(now, actor.username, reason)
        order.refresh_status(now)
        order.updated_at = now
        await save_lines(uow, order.job_id, order.lines, versions)
        await uow.orders.save(order)
        data = {"po": order.po, "reason": reason}
        await uow.jobs.add_events(order.job_id, [JobEvent(EventKind.ORDER_CANCELLED, now, actor.username, data=data)])
    return order


def facts_from_order(info: OrderInfo, source: EtaSource, at: datetime) -> list[SupplierFact]:
    """What an order status answer (a poll) says, as the same facts a webhook would bring."""
    when = info.updated_at or at
    facts = []
    for line in info.lines:
        if line.state is LineState.CANCELLED:
            facts.append(SupplierFact(FactKind.CANCELLED, when, source, supplier_sku=line.supplier_sku))
        elif line.state is LineState.BACKORDERED:
            facts.append(SupplierFact(FactKind.BACKORDERED, when, source, eta=line.eta, supplier_sku=line.supplier_sku))
        elif line.shipped_quantity > 0:
            shipped = {line.supplier_sku: line.shipped_quantity}
            facts.append(
                SupplierFact(
                    FactKind.SHIPPED,
                    when,
                    source,
                    eta=line.eta,
                    supplier_sku=line.supplier_sku,
                    shipped=shipped,
                    tracking_number=info.tracking_number,
                )
            )
        else:
            facts.append(
                SupplierFact(FactKind.CONFIRMED, when, source, eta=line.eta or info.eta, supplier_sku=line.supplier_sku)
            )
    return facts


async def refresh_order(
    db: Database, order_id: int, *, clients: ClientProvider, cipher: PasscodeCipher, now: datetime
) -> list[PartLine]:
    """Ask the supplier how an order stands and apply it (the poll's unit of work, one order)."""
    async with db.transaction(write=False) as uow:
        order = await uow.orders.get(None, order_id)
        config = client_config(await uow.suppliers.get(order.supplier_id), cipher)
    if order.supplier_ref is None:
        return []
    info = await _client(clients, config).order_status(order.supplier_ref)
    changed: list[PartLine] = []
    async with db.transaction() as uow:
        for fact in facts_from_order(info, EtaSource.POLL, now):
            changed += await apply_fact(uow, order_id, fact, now=now)
    return changed
