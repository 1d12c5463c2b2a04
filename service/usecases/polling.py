"""Supplier polling: most suppliers push nothing, so Atelier goes and asks.

A cron task (`poll_due_suppliers`) finds the active suppliers whose poll interval has passed, claims
each poll in the database (so two workers, or two cron runs, never take the same one) and queues one
`poll_supplier` task per supplier, under a job id naming the supplier and its slot (arq keeps a job id
once, a second safeguard).

`poll_supplier` asks one supplier for the stock and ETA of every SKU on open part lines and for the
status of every open order placed with it, a few calls at a time (the client adds the supplier's rate
limit, retries and breaker). What it learns goes through the same use cases as the webhooks
(`record_stock`, `apply_fact`), so a poll and a webhook reporting the same fact apply it once. No
transaction is ever open across a supplier call: read, call, then write in one short unit of work per
answer. A supplier that cannot answer (breaker open, timeouts, 5xx or 429 after retries, malformed
bodies) is marked stale from its first failure; a good poll clears that.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import structlog

from domain.errors import NotFound, VersionConflict
from domain.parts import EtaSource
from integrations.suppliers.base import (
    AdapterKind,
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
    orders_checked: int = 0  # open orders whose status the supplier answered
    orders_without_ref: int = 0  # sent, but the supplier's id for them never learned: not askable
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
        refs: dict[int, str | None] = {}
        if config.adapter is not AdapterKind.CSV_FEED:
            refs = await polling.supplier_refs(await uow.orders.open_for_supplier(supplier_id))
    report.skus_asked = len(skus)
    report.orders_without_ref = sum(1 for ref in refs.values() if ref is None)
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
    work += [
        _order_job(services, client, order_id, ref, report, now)
        for order_id, ref in sorted(refs.items())
        if ref is not None
    ]
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


def _order_job(
    services: Services, client: SupplierClient, order_id: int, ref: str, report: PollReport, now: datetime
) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            info = await client.order_status(ref)
        except SupplierError as exc:
            _failed(report, exc)
            return
        report._answered += 1
        report.orders_checked += 1
        applied, changed = 0, set[int | None]()
        try:
            async with services.db.transaction() as uow:
                for fact in facts_from_order(info, EtaSource.POLL, now):
                    lines = await apply_fact(uow, order_id, fact, now=now, supplier_ref=info.supplier_order_id)
                    applied += bool(lines)
                    changed.update(line.id for line in lines)
        except VersionConflict as exc:  # a webhook changed the order meanwhile: the next poll re-reads it
            report.failed(f"order {order_id}: {exc.detail}", unavailable=False)
            return
        report.facts_applied += applied
        report.lines_changed += len(changed)

    return run


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
