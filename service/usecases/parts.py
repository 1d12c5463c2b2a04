"""Use cases of parts: the catalogue, a job's part lines, receiving goods, the late-parts list, and
applying what suppliers report (webhooks and polls go through the same `apply_fact`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.calendar import BusinessCalendar
from domain.errors import InvalidValue, NotFound, NotPermitted, RuleConflict, VersionConflict
from domain.model import Actor, EventKind, JobEvent, RepairJob
from domain.parts import (
    EtaRevision,
    EtaSource,
    Part,
    PartLine,
    PartStatus,
    SupplierFact,
    SupplierOrder,
    all_received,
)
from domain.sla import Forecast, SlaPolicy, forecast
from domain.stages import Role, Stage
from service.persistence.parts import LateLine
from service.uow import UnitOfWork
from service.usecases import jobs

PARTS_ROLES = (Role.TECHNICIAN, Role.MANAGER)


@dataclass(frozen=True, slots=True)
class LineRequest:
    sku: str
    quantity: int


@dataclass(frozen=True, slots=True)
class JobParts:
    job: RepairJob
    lines: list[PartLine]
    history: dict[int, list[EtaRevision]]
    forecast: Forecast


@dataclass(frozen=True, slots=True)
class LateItem:
    late: LateLine
    late_by: timedelta
    forecast: Forecast


# --- catalogue -------------------------------------------------------------------------------


async def add_part(uow: UnitOfWork, actor: Actor, part: Part, *, now: datetime) -> Part:
    if actor.role is not Role.MANAGER:
        raise NotPermitted("only a manager changes the catalogue")
    await uow.catalogue.add(part, now)
    return part


async def update_part(uow: UnitOfWork, actor: Actor, part: Part, *, now: datetime) -> Part:
    if actor.role is not Role.MANAGER:
        raise NotPermitted("only a manager changes the catalogue")
    await uow.catalogue.update(part, now)
    return part


async def get_part(uow: UnitOfWork, sku: str) -> Part:
    part = await uow.catalogue.get(sku)
    if part is None:
        raise NotFound(f"no part {sku} in the catalogue")
    return part


# --- a job's lines ---------------------------------------------------------------------------


def job_forecast(
    job: RepairJob, lines: Sequence[PartLine], calendar: BusinessCalendar, sla: SlaPolicy, now: datetime
) -> Forecast:
    return forecast(job.tier, job.due_at, lines, calendar, sla, now)


async def _calendar(uow: UnitOfWork, job: RepairJob) -> BusinessCalendar:
    branch = await uow.branches.by_id(job.branch_id)
    assert branch is not None
    return branch.calendar


async def job_parts(uow: UnitOfWork, actor: Actor, ref: str, *, now: datetime, sla: SlaPolicy) -> JobParts:
    job = await uow.jobs.get(actor, ref)
    assert job.id is not None
    lines = await uow.lines.for_job(job.id)
    history = await uow.lines.history([line.id for line in lines if line.id is not None])
    return JobParts(job, lines, history, job_forecast(job, lines, await _calendar(uow, job), sla, now))


async def add_lines(
    uow: UnitOfWork,
    actor: Actor,
    ref: str,
    requests: Sequence[LineRequest],
    *,
    now: datetime,
    sla: SlaPolicy,
    expected_version: int | None = None,
) -> tuple[JobParts, list[PartLine]]:
    """Add part lines; the job starts waiting for parts. Nobody is told of the parts: but a job that
    skips the wait for approval this way, with an estimate no budget covers, sends the customer that
    estimate to answer (it would have when moved to awaiting_approval)."""
    if actor.role not in PARTS_ROLES:
        raise NotPermitted("only a technician or a manager adds parts to a job")
    if not requests:
        raise InvalidValue("lines", "at least one line")
    job = await uow.jobs.get(actor, ref)
    assert job.id is not None
    if expected_version is not None and job.version != expected_version:
        raise VersionConflict(f"{job.ref} is at version {job.version}, not {expected_version}")
    known = await uow.catalogue.existing(r.sku for r in requests)
    for index, request in enumerate(requests):
        if request.sku not in known:
            raise InvalidValue(f"lines[{index}].sku", f"{request.sku} is not in the catalogue")
    version = job.version
    before_approval = job.stage in (Stage.RECEIVED, Stage.DIAGNOSING)
    job.parts_added(actor, [r.sku for r in requests], now)
    created = [PartLine(None, job.id, job.branch_id, r.sku, r.quantity, now, updated_at=now) for r in requests]
    await uow.lines.add(created)
    job.record(
        [
            JobEvent(
                EventKind.PART_ADDED,
                now,
                actor.username,
                data={"line_id": line.id, "sku": line.sku, "quantity": line.quantity},
            )
            for line in created
        ]
    )
    await uow.jobs.save(job, version)
    if before_approval and job.stage is Stage.AWAITING_PARTS and job.estimate_needs_customer:
        await jobs.ask_about_estimate(uow, job, now)
    lines = await uow.lines.for_job(job.id)
    history = await uow.lines.history([line.id for line in lines if line.id is not None])
    parts = JobParts(job, lines, history, job_forecast(job, lines, await _calendar(uow, job), sla, now))
    return parts, created


async def line_of(
    uow: UnitOfWork, actor: Actor, ref: str, line_id: int, *, lock: bool = False
) -> tuple[RepairJob, PartLine]:
    job = await uow.jobs.get(actor, ref)
    assert job.id is not None
    for line in await uow.lines.for_job(job.id, lock=lock):
        if line.id == line_id:
            return job, line
    raise NotFound(f"{job.ref} has no part line {line_id}")


async def change_line(
    uow: UnitOfWork,
    actor: Actor,
    ref: str,
    line_id: int,
    *,
    eta: datetime | None,
    status: PartStatus | None,
    note: str | None,
    now: datetime,
) -> PartLine:
    """Staff corrections: a new ETA learned by phone (source staff), a part fitted, a line cancelled."""
    if actor.role not in PARTS_ROLES:
        raise NotPermitted("only a technician or a manager changes part lines")
    job, line = await line_of(uow, actor, ref, line_id, lock=True)
    version = line.version
    if eta is not None:
        line.revise_eta(eta, EtaSource.STAFF, now, actor.username, note)
    if status is PartStatus.FITTED:
        line.fit(now, actor.username)
    elif status is PartStatus.CANCELLED:
        if line.order_id is not None and line.status in (PartStatus.ORDERED, PartStatus.BACKORDERED):
            raise RuleConflict("the part is on order: cancel the supplier order instead")
        line.cancel(now, actor.username, note or "cancelled by staff")
    elif status is not None:
        raise InvalidValue("status", "staff set a line to fitted or cancelled; the rest follows the supplier")
    await save_lines(uow, job.id or 0, [line], {line.id or 0: version})
    return line


async def save_lines(uow: UnitOfWork, job_id: int, lines: Sequence[PartLine], versions: dict[int, int]) -> None:
    """Write the lines that changed (guarded by the versions they were read at) with their ETA
    revisions, and their events into the job's history."""
    changed = [line for line in lines if line.pending_events or line.pending_revisions]
    await uow.lines.save(changed, versions)
    events = [event for line in changed for event in line.pending_events]
    for line in changed:
        line.pending_events.clear()
    await uow.jobs.add_events(job_id, events)


# --- receiving and supplier facts ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Receipt:
    line_id: int
    quantity: int | None  # None: everything still outstanding on the line


async def receive(
    uow: UnitOfWork, actor: Actor, order_id: int, receipts: Sequence[Receipt], *, now: datetime
) -> SupplierOrder:
    """Goods counted in at the shop. With no receipts given, everything outstanding arrived."""
    order = await uow.orders.get(actor, order_id, lock=True)
    versions = {line.id or 0: line.version for line in order.lines}
    by_id = {line.id: line for line in order.lines}
    wanted = receipts or [
        Receipt(line.id or 0, None) for line in order.lines if line.waiting and line.status is not PartStatus.NEEDED
    ]
    if not wanted:
        raise RuleConflict(f"{order.po} has nothing left to receive")
    for index, receipt in enumerate(wanted):
        line = by_id.get(receipt.line_id)
        if line is None:
            raise InvalidValue(f"lines[{index}].line_id", f"{order.po} has no line {receipt.line_id}")
        quantity = receipt.quantity if receipt.quantity is not None else line.quantity - line.received_quantity
        line.receive(quantity, now, actor.username)
    order.refresh_status(now)
    await save_lines(uow, order.job_id, order.lines, versions)
    await uow.orders.save(order)
    await _announce_parts_ready(uow, order.job_id, now)
    return order


async def _announce_parts_ready(uow: UnitOfWork, job_id: int, now: datetime) -> None:
    """All lines in: the job is ready for the bench (a JobEvent; the customer hears nothing yet)."""
    lines = await uow.lines.for_job(job_id)
    if all_received(lines):
        data = {"lines": [line.id for line in lines if line.status is not PartStatus.CANCELLED]}
        await uow.jobs.add_events(job_id, [JobEvent(EventKind.PARTS_READY, now, None, data=data)])
        await uow.escalations.clear(job_id, now)  # delivery clears the late-parts flags


async def apply_fact(
    uow: UnitOfWork, order_id: int, fact: SupplierFact, *, now: datetime, supplier_ref: str | None = None
) -> list[PartLine]:
    """Apply one supplier fact to our order (webhook or poll alike): older facts than the newest
    applied are ignored per line, and the same fact twice changes nothing. `supplier_ref` is the
    supplier's id for the order, learned here if its answer to the order itself was lost."""
    order = await uow.orders.get(None, order_id, lock=True)
    versions = {line.id or 0: line.version for line in order.lines}
    status, tracking, ref = order.status, order.tracking_number, order.supplier_ref
    if order.supplier_ref is None and supplier_ref:
        order.supplier_ref = supplier_ref
    changed = order.apply(fact, now)
    await save_lines(uow, order.job_id, changed, versions)
    if changed or order.status is not status or order.tracking_number != tracking or order.supplier_ref != ref:
        order.updated_at = now
        await uow.orders.save(order)
    return changed


# --- the late list ---------------------------------------------------------------------------


async def late_parts(uow: UnitOfWork, actor: Actor, *, now: datetime, sla: SlaPolicy, limit: int) -> list[LateItem]:
    """Awaited lines past their promise or whose ETA slipped, worst first, with their job's SLA risk."""
    late = [item for item in await uow.lines.late(actor, now, limit * 4) if item.line.late_by(now) > timedelta(0)]
    calendars = {branch.id: branch.calendar for branch in await uow.branches.all()}
    by_job = await uow.lines.for_jobs(sorted({item.line.job_id for item in late}))
    items = [
        LateItem(
            item,
            item.line.late_by(now),
            forecast(item.tier, item.due_at, by_job[item.line.job_id], calendars[item.line.branch_id], sla, now),
        )
        for item in late
    ]
    items.sort(key=lambda i: (-i.late_by, i.late.due_at))
    return items[:limit]
