"""Supplier polling: most suppliers push nothing, so Atelier goes and asks.

A cron task (`poll_due_suppliers`) finds the active suppliers whose poll interval has passed, claims
each poll in the database (so two workers, or two cron runs, never take the same one) and queues one
`poll_supplier` task per supplier, under a job id naming the supplier and its slot (arq keeps a job id
once, a second safeguard).

`poll_supplier` asks one supplier for the stock and ETA of every SKU on open part lines and for the
orders that changed since its last poll (its changes feed, a page of up to 1,000 orders per call, from
the supplier's feed watermark), a few calls at a time (the client adds the supplier's rate limit,
retries and breaker). What it learns goes through the same use cases as the webhooks (`record_stock`,
`apply_fact`), so a poll and a webhook reporting the same fact apply it once; and so re-reading part of
the feed is harmless, which is why the watermark stored is the feed's `as_of` less an overlap. No
transaction is ever open across a supplier call: read, call, then write in short units of work. A
supplier that cannot answer (breaker open, timeouts, 5xx or 429 after retries, malformed bodies) is
marked stale from its first failure; a good poll clears that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from domain.errors import NotFound, VersionConflict
from domain.parts import EtaSource, SupplierFact, parse_po
from integrations.suppliers.base import (
    AdapterKind,
    OrderInfo,
    SupplierClient,
    SupplierError,
    SupplierRejected,
    SupplierUnavailable,
)
from service.persistence.polling import PollingRepository, PollSchedule
from service.persistence.suppliers import StockReport
from service.services import Services, TaskQueue
from service.usecases.parts import apply_fact
from service.usecases.sourcing import facts_from_order
from service.usecases.suppliers import client_config

log = structlog.get_logger("atelier.polling")

POLL_TASK = "poll_supplier"
CONCURRENCY = 4  # supplier calls in flight per supplier (its rate limit applies on top)
STOCK_BATCH = 100  # SKUs per stock request of a REST supplier (its API's own limit)
MAX_ERRORS_KEPT = 20
FEED_OVERLAP = timedelta(minutes=1)  # re-read of the changes feed: clock skew and same-second changes
APPLY_BATCH = 50  # orders of the feed applied per unit of work
CHANGES_CHUNK = 1000  # orders of the feed mapped to ours per query


def job_id(supplier_id: int, slot: int) -> str:
    """The queue's id of one supplier's poll in one slot: queued once, whoever queues it."""
    return f"poll:{supplier_id}:{slot}"


def slot_of(schedule: PollSchedule, now: datetime) -> int:
    """Which of the supplier's poll periods `now` falls in (periods counted from the epoch)."""
    return int(now.timestamp()) // max(1, schedule.poll_interval_seconds)


async def poll_due_suppliers(services: Services, *, now: datetime, queue: TaskQueue) -> list[int]:
    """Queue a poll of every active supplier whose interval has passed since its last poll; returns
    their ids. Safe to run in several workers at once: each poll is claimed by one of them."""
    async with services.db.transaction() as uow:
        polling = PollingRepository(uow.connection)
        claimed = [s for s in await polling.schedules() if s.due(now) and await polling.claim(s, now)]
    queued: list[int] = []
    for index, schedule in enumerate(claimed):
        try:
            await queue.enqueue(
                POLL_TASK, job_id=job_id(schedule.supplier_id, slot_of(schedule, now)), supplier_id=schedule.supplier_id
            )
        except Exception:
            # The queue is away (Redis down): give the claims back so the next cron run tries again.
            async with services.db.transaction() as uow:
                polling = PollingRepository(uow.connection)
                for unqueued in claimed[index:]:
                    await polling.release(unqueued.supplier_id, now, unqueued.last_polled_at)
            raise
        queued.append(schedule.supplier_id)
    if queued:
        log.info("supplier_polls_queued", suppliers=queued)
    return queued


@dataclass
class PollReport:
    """What one poll of one supplier did."""

    supplier_id: int
    skipped: str | None = None  # why nothing was asked (unknown or inactive supplier)
    skus_asked: int = 0
    stock_items: int = 0  # stock answers recorded
    unknown_skus: int = 0  # SKUs the supplier says it does not carry
    feed_changes: int = 0  # orders the changes feed returned (ours or not, open or not)
    orders_checked: int = 0  # open orders of ours among them, applied
    orders_unchanged: int = 0  # of which found as we hold them: nothing to apply
    orders_without_ref: int = 0  # sent, but the supplier's id for them never learned (found by PO in the feed)
    feed_since: datetime | None = None  # where the feed was read from (None: all of it)
    feed_watermark: datetime | None = None  # where the next poll reads it from (None: not moved)
    facts_applied: int = 0  # facts that changed at least one line
    lines_changed: int = 0
    failures: int = 0  # calls that got no usable answer (or whose answer could not be applied)
    calls_skipped: int = 0  # not made: the supplier's first call found it unavailable
    errors: list[str] = field(default_factory=list)
    healthy: bool | None = None  # None: nothing was asked, the supplier's health is left as it was
    _answered: int = field(default=0, repr=False)
    _unavailable: int = field(default=0, repr=False)
    _down: int = field(default=0, repr=False)

    def failed(self, reason: str, *, unavailable: bool, down: bool = False) -> None:
        """`unavailable`: no trustworthy answer (the supplier goes stale); `down`: it cannot answer at all."""
        self.failures += 1
        self._unavailable += unavailable
        self._down += down
        if len(self.errors) < MAX_ERRORS_KEPT:
            self.errors.append(reason)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if not k.startswith("_")}


async def poll_supplier(
    services: Services, supplier_id: int, *, now: datetime, concurrency: int = CONCURRENCY
) -> PollReport:
    """Poll one supplier now: stock and ETA for the SKUs on open lines, then the status of its open
    orders (a stock feed answers stock only), then its health."""
    report = PollReport(supplier_id)
    async with services.db.transaction(write=False) as uow:
        try:
            stored = await uow.suppliers.get(supplier_id)
        except NotFound:
            report.skipped = "unknown supplier"
            return report
        if not stored.supplier.active:
            report.skipped = "inactive supplier"
            return report
        config = client_config(stored, services.cipher)
        polling = PollingRepository(uow.connection)
        skus = await polling.awaited_skus(supplier_id)
        feed = config.adapter is not AdapterKind.CSV_FEED  # a stock feed takes no orders
        if feed:
            report.feed_since = await polling.feed_watermark(supplier_id)
            report.orders_without_ref = await polling.open_without_ref(supplier_id)
    report.skus_asked = len(skus)
    try:
        client = services.suppliers.get(config)
    except ValueError as exc:  # its URL may not be called (changed since it was saved, or settings)
        report.failed(f"{config.name}: {exc}", unavailable=True, down=True)
        await _record_health(services, report, now)
        return report

    size = len(skus) if config.adapter is AdapterKind.CSV_FEED else STOCK_BATCH  # a feed is read whole
    work: list[Callable[[], Awaitable[None]]] = [
        _stock_job(services, client, supplier_id, skus[start : start + size], report, now)
        for start in range(0, len(skus), max(1, size))
    ]
    if feed:
        work.append(_feed_job(services, client, supplier_id, report, now, concurrency))
    if work:
        # The first call alone: a supplier that is down (after the client's retries, or its breaker
        # open) is not sent the rest; one that answers gets them, a few at a time.
        await work[0]()
        if report._down:
            report.calls_skipped = len(work) - 1
        else:
            await _run_limited(work[1:], concurrency)
    await _record_health(services, report, now)
    log.info("supplier_polled", **{k: v for k, v in report.as_dict().items() if k != "errors"})
    return report


async def _run_limited(work: Sequence[Callable[[], Awaitable[None]]], limit: int) -> None:
    """Run the jobs, at most `limit` at a time (a pool of workers, not a task per job: a supplier may
    have thousands of open orders)."""
    pending = iter(work)

    async def worker() -> None:
        for job in pending:
            await job()

    async with asyncio.TaskGroup() as group:
        for _ in range(min(max(1, limit), len(work))):
            group.create_task(worker())


def _stock_job(
    services: Services, client: SupplierClient, supplier_id: int, batch: list[str], report: PollReport, now: datetime
) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            answer = await client.stock(batch)
        except SupplierError as exc:
            _failed(report, exc)
            return
        report._answered += 1
        reports = [
            StockReport(item.supplier_sku, item.available, item.price_cents, item.currency, item.eta, now)
            for item in answer.items
        ]
        if reports:
            # Every SKU answered is kept, ours or not: those mapping to nothing of ours are listed for review.
            async with services.db.transaction() as uow:
                await uow.suppliers.record_stock(supplier_id, reports, now)
        report.stock_items += len(reports)
        report.unknown_skus += len(answer.unknown)

    return run


def _feed_job(
    services: Services, client: SupplierClient, supplier_id: int, report: PollReport, now: datetime, concurrency: int
) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            changes = await client.order_changes(report.feed_since)
        except SupplierError as exc:
            _failed(report, exc)
            return
        report._answered += 1
        report.feed_changes = len(changes.items)
        watermark: datetime | None = changes.as_of
        for start in range(0, len(changes.items), CHANGES_CHUNK):
            chunk = changes.items[start : start + CHANGES_CHUNK]
            async with services.db.transaction(write=False) as uow:
                by_ref, by_po = await PollingRepository(uow.connection).open_orders_named(
                    supplier_id, [info.supplier_order_id for info in chunk], [_po_id(info) for info in chunk]
                )
            ours = sorted(  # in order: batches applied at once lock their orders in the same order
                ((order_id, info) for info in chunk if (order_id := _ours(info, by_ref, by_po)) is not None),
                key=lambda pair: pair[0],
            )
            batches = [ours[i : i + APPLY_BATCH] for i in range(0, len(ours), APPLY_BATCH)]
            failed: list[OrderInfo] = []
            await _run_limited([_apply_job(services, batch, report, now, failed) for batch in batches], concurrency)
            # Read again next time from before the oldest change that could not be applied.
            for info in failed:
                watermark = min(watermark, info.updated_at) if watermark and info.updated_at else None
        if watermark is None:
            return
        moved = watermark - FEED_OVERLAP
        if report.feed_since is None or moved > report.feed_since:
            async with services.db.transaction() as uow:
                await PollingRepository(uow.connection).set_feed_watermark(supplier_id, moved)
            report.feed_watermark = moved

    return run


def _po_id(info: OrderInfo) -> int:
    return parse_po(info.po) or 0


def _ours(info: OrderInfo, by_ref: dict[str, int], by_po: dict[int, int]) -> int | None:
    """Our open order this feed entry is about: by the supplier's id for it, else by our PO when we
    never learned that id (its answer to the order was lost; `apply_fact` then records it)."""
    return by_ref.get(info.supplier_order_id) or by_po.get(_po_id(info))


def _apply_job(
    services: Services, batch: list[tuple[int, OrderInfo]], report: PollReport, now: datetime, failed: list[OrderInfo]
) -> Callable[[], Awaitable[None]]:
    """Apply a batch of the feed's orders in one unit of work; if one of them conflicts with a webhook
    applied meanwhile, the batch is rolled back and its orders are applied one per unit of work."""

    async def run() -> None:
        try:
            applied, changed, unchanged = await _apply(services, batch, now)
        except VersionConflict:
            if len(batch) == 1:
                order_id, info = batch[0]
                report.failed(f"order {order_id}: changed meanwhile, read again next poll", unavailable=False)
                failed.append(info)
                return
            for one in batch:
                await _apply_job(services, [one], report, now, failed)()
            return
        report.orders_checked += len(batch)
        report.facts_applied += applied
        report.lines_changed += changed
        report.orders_unchanged += unchanged

    return run


async def _apply(services: Services, batch: list[tuple[int, OrderInfo]], now: datetime) -> tuple[int, int, int]:
    """Apply what the feed says of a batch of orders; returns the facts that changed lines, the lines
    changed and the orders found as stored. One unlocked read of the batch's orders and lines first: an
    order whose every fact would change nothing (`SupplierOrder.would_change`, the decision `apply`
    makes) is left alone, as `apply_fact` would leave it, without a locked read per fact; a poll reading
    the whole feed finds most orders as we hold them. The others are applied as before."""
    async with services.db.transaction(write=False) as uow:
        stored = await uow.orders.many([order_id for order_id, _ in batch])
    todo: list[tuple[int, OrderInfo, list[SupplierFact]]] = []
    for order_id, info in batch:
        facts = facts_from_order(info, EtaSource.POLL, now)
        order = stored.get(order_id)  # gone meanwhile: `apply_fact` says so
        if order is None or any(order.would_change(fact, info.supplier_order_id) for fact in facts):
            todo.append((order_id, info, facts))
    applied, changed = 0, set[int | None]()
    if todo:
        async with services.db.transaction() as uow:
            for order_id, info, facts in todo:
                for fact in facts:
                    lines = await apply_fact(uow, order_id, fact, now=now, supplier_ref=info.supplier_order_id)
                    applied += bool(lines)
                    changed.update(line.id for line in lines)
    return applied, len(changed), len(batch) - len(todo)


def _failed(report: PollReport, exc: SupplierError) -> None:
    """A refusal (4xx: an order it does not know) is an answer; a malformed answer is none, but says
    nothing of the other calls; anything else (timeouts, 5xx or 429 after retries, breaker open) means
    the supplier cannot answer now."""
    rejected = isinstance(exc, SupplierRejected)
    if rejected:
        report._answered += 1
    report.failed(str(exc), unavailable=not rejected, down=isinstance(exc, SupplierUnavailable))
    log.warning("supplier_poll_failed", supplier=exc.supplier, reason=exc.reason, kind=type(exc).__name__)


async def _record_health(services: Services, report: PollReport, now: datetime) -> None:
    if report._unavailable:
        report.healthy = False
    elif report._answered:
        report.healthy = True
    else:
        return  # nothing asked: nothing learned about its health
    async with services.db.transaction() as uow:
        await uow.suppliers.mark_health(report.supplier_id, ok=report.healthy, now=now)
