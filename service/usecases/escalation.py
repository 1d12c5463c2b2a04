"""The late-parts escalation sweep, and the re-sourcing it asks for.

The sweep reads only what can be late (lines on order whose ETA passed or slipped past the promise),
judges each job with `domain.escalation.assess`, and records every rung reached and not yet recorded
for the job's current promise: the escalation row (a unique constraint decides whether this sweep is
the one that acts), a JobEvent, and the rung's action. It writes set-based, one unit of work per batch
of jobs in job-id order (one statement per table, not ~10 per job), so the first sweep after an outage
stays short and two concurrent sweeps never deadlock. The rung's action:

- late: an alert on the branch's staff feed;
- at risk: an outbox entry "resource" (ask the other suppliers; express re-sources, standard proposes);
- breached: an outbox entry "notify" (template `parts_delayed`, the new date) and a manager alert.

A re-run, or a concurrent sweep, finds the rows there and does nothing. A new, later promise (the parts
expected on another day) is a new key: the ladder may be climbed again for it. Delivery of every part
clears the open rungs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from domain.calendar import BusinessCalendar
from domain.errors import DomainError
from domain.escalation import Assessment, Level, assess, levels_to_record
from domain.model import Actor, EventKind, JobEvent, Tier, format_ref
from domain.parts import PartLine, PartStatus
from domain.sourcing import Offer
from domain.stages import Role
from service.errors import SupplierFailure
from service.persistence.escalations import MANAGER, STAFF, CandidateJob, NewAlert, Rung
from service.persistence.outbox import NewEntry, OutboxEntry
from service.services import Services
from service.usecases import sourcing
from service.usecases.outbox import handler

log = structlog.get_logger("atelier.escalation")

RESOURCE = "resource"
NOTIFY = "notify"
PARTS_DELAYED = "parts_delayed"
SYSTEM_USER = "atelier"
RESOURCE_REASON = "re-sourced"  # the cancel reason of an order replaced by a sooner one
SWEEP_LIMIT = 5000  # jobs judged per sweep at most (the rest next minute)


def system_actor(branch_id: int) -> Actor:
    """Atelier itself acting for a branch (re-sourcing), with a manager's rights there."""
    return Actor(0, SYSTEM_USER, Role.MANAGER, branch_id=branch_id)


def promise_key(assessment: Assessment, calendar: BusinessCalendar) -> str:
    """The promise a rung is recorded for: the day the parts are expected, in the branch's calendar. A
    supplier nudging its ETA by an hour is not a new promise (no new alerts, no second message to the
    customer); a slip to another day is."""
    if assessment.promise is None:
        return "none"
    return assessment.promise.astimezone(calendar.tz).date().isoformat()


@dataclass
class SweepReport:
    judged: int = 0  # jobs assessed
    recorded: dict[str, int] = field(default_factory=lambda: {level.label: 0 for level in Level})
    lost: int = 0  # rungs a concurrent sweep recorded first

    @property
    def total(self) -> int:
        return sum(self.recorded.values())


@dataclass(frozen=True, slots=True)
class _Due:
    """A judged job with rungs not yet recorded for its current promise, lowest first."""

    job: CandidateJob
    assessment: Assessment
    key: str
    levels: list[Level]


@dataclass
class _Actions:
    """What the rungs a batch won ask for, in (job, level) order: written one statement a table."""

    events: list[tuple[int, JobEvent]] = field(default_factory=list)
    alerts: list[NewAlert] = field(default_factory=list)
    outbox: list[NewEntry] = field(default_factory=list)


async def sweep(services: Services, *, now: datetime) -> SweepReport:
    """One pass of the ladder over every job with a part that can be late. Idempotent."""
    settings = services.settings
    policy, sla = settings.escalation_policy, settings.sla_policy
    report = SweepReport()
    async with services.db.transaction(write=False) as uow:
        candidates = await uow.escalations.candidates(now, SWEEP_LIMIT)
        if not candidates:
            return report
        calendars = {branch.id: branch.calendar for branch in await uow.branches.all()}
        stale = {
            s.supplier.id: s.supplier.stale_since
            for s in await uow.suppliers.list()
            if s.supplier.id is not None and s.supplier.stale_since is not None
        }
        recorded = await uow.escalations.recorded([c.job_id for c in candidates])
    due: list[_Due] = []
    for job in candidates:
        report.judged += 1
        assessment = assess(
            tier=job.tier,
            due_at=job.due_at,
            lines=job.lines,
            calendar=calendars[job.branch_id],
            sla=sla,
            policy=policy,
            now=now,
            stale_since=stale,
        )
        key = promise_key(assessment, calendars[job.branch_id])
        wanted = levels_to_record(assessment.level, sorted(recorded.get((job.job_id, key), set())))
        if wanted:
            due.append(_Due(job, assessment, key, wanted))
    # Job-id order, batch after batch: two sweeps at once take the rungs' locks in the same order.
    # Batches of `escalation_sweep_batch` jobs (200): short transactions, and few of them.
    due.sort(key=lambda item: item.job.job_id)
    size = settings.escalation_sweep_batch
    for start in range(0, len(due), size):
        await _escalate_batch(services, due[start : start + size], now, report)
    if report.total:
        log.info("escalation_sweep", judged=report.judged, **report.recorded)
    return report


async def _escalate_batch(services: Services, batch: Sequence[_Due], now: datetime, report: SweepReport) -> None:
    """Record a batch's rungs and act on those this sweep inserted, in one unit of work of four
    statements (rungs, events, alerts, outbox) rather than ~10 a job: the first sweep after an outage
    can find a thousand late jobs. A rung another sweep recorded first gets nothing from this one."""
    async with services.db.transaction() as uow:
        rungs = [
            Rung(item.job.job_id, level, item.key, item.assessment.reasons) for item in batch for level in item.levels
        ]
        won = await uow.escalations.record_many(rungs, now=now)
        actions = _Actions()
        for item in batch:
            for level in item.levels:
                if (item.job.job_id, level) in won:
                    _act(actions, item, level, now)
                    report.recorded[level.label] += 1
                else:
                    report.lost += 1
        await uow.jobs.add_events_of_jobs(actions.events)
        await uow.alerts.add_many(actions.alerts, now=now)
        await uow.outbox.add_many(actions.outbox, now=now)


def _act(actions: _Actions, item: _Due, level: Level, now: datetime) -> None:
    """What a rung this sweep recorded asks for: a JobEvent always, then the rung's own action."""
    job, assessment, key = item.job, item.assessment, item.key
    ref = format_ref(job.job_id)
    promise = assessment.promise.isoformat() if assessment.promise else None
    data: dict[str, Any] = {"level": level.label, "promise": promise, "reasons": list(assessment.reasons)}
    actions.events.append((job.job_id, JobEvent(EventKind.ESCALATED, now, SYSTEM_USER, data=data)))
    why = "; ".join(assessment.reasons)
    if level is Level.LATE:
        message = f"{ref}: parts late ({why})"
        actions.alerts.append(NewAlert(job.branch_id, job.job_id, STAFF, "parts_late", message, {"ref": ref, **data}))
    elif level is Level.AT_RISK:
        payload = {"job_id": job.job_id, "line_ids": _lines_to_resource(job.lines, now), "promise": key}
        actions.outbox.append(NewEntry(RESOURCE, payload, job.job_id))
    else:
        # The customer hears when the repair can now be ready (the parts' date may already have passed);
        # one message per promise: the rung's row is unique per promise.
        new_date = assessment.forecast_ready_at.isoformat() if assessment.forecast_ready_at else promise
        notice = {"template": PARTS_DELAYED, "data": {"new_date": new_date, "parts_eta": promise, "promise": key}}
        actions.outbox.append(NewEntry(NOTIFY, notice, job.job_id))
        message = f"{ref}: breached ({why}); the customer is told the new date"
        actions.alerts.append(
            NewAlert(job.branch_id, job.job_id, MANAGER, "sla_breached", message, {"ref": ref, **data})
        )


def _lines_to_resource(lines: Sequence[PartLine], now: datetime) -> list[int]:
    """Lines still cancellable at their supplier (not shipped) that are late or set the parts date."""
    on_order = [line for line in lines if line.status in (PartStatus.ORDERED, PartStatus.BACKORDERED)]
    dates = [line.expected_at(now) for line in lines if line.waiting]
    latest = max((d for d in dates if d is not None), default=None)
    return [
        line.id or 0
        for line in on_order
        if line.late_by(now) > timedelta(0) or (latest is not None and line.expected_at(now) == latest)
    ]


# --- re-sourcing (the "resource" outbox handler) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Better:
    offer: Offer
    current_expected: datetime | None
    affordable: bool  # within what the customer agreed to pay: may replace the order without asking


def _better_offer(quotes: sourcing.Quotes, *, now: datetime) -> Better | None:
    """The soonest offer from another supplier, orderable and in stock, expected sooner than the current
    supplier's part (its ETA, or now if passed, plus its usual delay); preferring one the customer has
    already agreed to pay for: within the pre-approved budget, or without a budget no dearer than the
    part on order (the estimate holds)."""
    line, job = quotes.line, quotes.job
    current = next((o for o in quotes.offers if o.supplier_id == line.supplier_id), None)
    usual = current.usual_delay if current is not None else timedelta(0)
    expected = line.expected_at(now)
    current_expected = expected + usual if expected is not None else None
    candidates = [
        o
        for o in quotes.offers
        if o.supplier_id != line.supplier_id
        and o.orderable
        and o.available >= line.quantity
        and o.expected_at is not None
        and o.unit_price_cents is not None
        and (current_expected is None or o.expected_at < current_expected)
    ]

    def affordable(offer: Offer) -> bool:
        price = (offer.unit_price_cents or 0) * line.quantity
        if job.preapproved_budget_cents is not None:
            return price <= job.preapproved_budget_cents
        return line.unit_price_cents is not None and (offer.unit_price_cents or 0) <= line.unit_price_cents

    if not candidates:
        return None
    soonest = sorted(candidates, key=lambda o: (o.expected_at, o.unit_price_cents, o.supplier_id))
    best = next((o for o in soonest if affordable(o)), soonest[0])
    return Better(best, current_expected, affordable(best))


async def _job_branch(services: Services, job_id: int) -> int | None:
    async with services.db.transaction(write=False) as uow:
        return await uow.escalations.job_branch(job_id)


@handler(RESOURCE)
async def resource(services: Services, entry: OutboxEntry, now: datetime) -> None:
    """Ask the other suppliers for each late line's SKU. Express: re-source automatically to a sooner
    offer within what the customer agreed to pay (cancel at the old supplier, order from the new, record
    both); standard, or a sooner offer that costs more: propose it to staff (an alert), change nothing."""
    job_id = int(entry.payload["job_id"])
    branch_id = await _job_branch(services, job_id)
    if branch_id is None:
        await _done(services, entry, now, [])
        return
    actor = system_actor(branch_id)
    ref = format_ref(job_id)
    events: list[JobEvent] = []
    alerts: list[dict[str, Any]] = []
    failure: Exception | None = None
    for line_id in entry.payload.get("line_ids", []):
        try:
            outcome = await _resource_line(services, actor, ref, int(line_id), now)
        except (DomainError, SupplierFailure) as exc:
            log.warning("resource_failed", ref=ref, line_id=line_id, error=str(exc))
            failure = failure or exc
            continue
        if outcome is not None:
            event, alert = outcome
            events.append(event)
            if alert is not None:
                alerts.append(alert)
    # A failure leaves the entry pending: the relay sends it again and the handler resumes (a line
    # cancelled for re-sourcing but not yet re-ordered is ordered then).
    await _done(services, entry, now, events, alerts, branch_id=branch_id, finish=failure is None)
    if failure is not None:
        raise failure


async def _resource_line(
    services: Services, actor: Actor, ref: str, line_id: int, now: datetime
) -> tuple[JobEvent, dict[str, Any] | None] | None:
    quotes = await sourcing.quotes(
        services.db,
        actor,
        ref,
        line_id,
        clients=services.suppliers,
        cipher=services.cipher,
        sla=services.settings.sla_policy,
        now=now,
    )
    line, job = quotes.line, quotes.job
    express = job.tier is Tier.EXPRESS
    if express and line.status is PartStatus.NEEDED and line.order_id is not None:
        # Our new PO went out and its answer was never recorded (a killed run): it is re-sent, whatever
        # the offers say now; the supplier may hold it, so it is never replaced by a second order.
        placed = await _order(services, actor, ref, line_id, None, now)
        offer = next((o for o in quotes.offers if o.supplier_id == placed.order.supplier_id), None)
        data = _resource_data(line, placed.order.supplier_id, offer, None)
        return _resourced(data, placed, offer, now)
    # Cancelled for re-sourcing, or taken off a PO the new supplier refused: the run that did it died.
    resuming = express and (
        line.status is PartStatus.NEEDED
        or (line.status is PartStatus.CANCELLED and (line.cancel_reason or "").startswith(RESOURCE_REASON))
    )
    if line.status not in (PartStatus.ORDERED, PartStatus.BACKORDERED) and not resuming:
        return None  # shipped, received or cancelled meanwhile: nothing to re-source
    better = _better_offer(quotes, now=now)
    if better is None:
        return None
    offer = better.offer
    data = _resource_data(line, offer.supplier_id, offer, better.current_expected)
    if not express or not better.affordable:
        data["reason"] = f"{offer.supplier_name} can deliver sooner: proposed to staff, nothing changed"
        if not better.affordable:
            data["reason"] += " (it costs more than the customer agreed to: ask them first)"
        message = (
            f"{ref}: {offer.supplier_name} can deliver {line.sku} by {data['expected_at']} "
            f"for {offer.unit_price_cents} cents (current: {data['current_expected_at']}); re-order?"
        )
        alert = {"kind": "resource_proposal", "message": message, "data": {"ref": ref, **data}}
        return JobEvent(EventKind.RESOURCE_PROPOSED, now, SYSTEM_USER, data=data), alert
    if line.status in (PartStatus.ORDERED, PartStatus.BACKORDERED) and line.order_id is not None:
        cancelled = await sourcing.cancel_order(
            services.db,
            actor,
            line.order_id,
            reason=_resource_reason(offer),
            clients=services.suppliers,
            cipher=services.cipher,
            now=now,
        )
        data["cancelled_po"] = cancelled.po
    placed = await _order(services, actor, ref, line_id, offer.supplier_id, now, reason=_resource_reason(offer))
    return _resourced(data, placed, offer, now)


async def _order(
    services: Services,
    actor: Actor,
    ref: str,
    line_id: int,
    supplier_id: int | None,
    now: datetime,
    *,
    reason: str | None = None,
) -> sourcing.Placed:
    return await sourcing.order_line(
        services.db,
        actor,
        ref,
        line_id,
        supplier_id=supplier_id,
        clients=services.suppliers,
        cipher=services.cipher,
        sla=services.settings.sla_policy,
        now=now,
        reason=reason,
    )


def _resource_data(line: PartLine, to_supplier: int, offer: Offer | None, current: datetime | None) -> dict[str, Any]:
    expected = offer.expected_at if offer is not None else None
    return {
        "line_id": line.id,
        "sku": line.sku,
        "from_supplier_id": line.supplier_id,
        "to_supplier_id": to_supplier,
        "to_supplier": offer.supplier_name if offer is not None else None,
        "unit_price_cents": offer.unit_price_cents if offer is not None else None,
        "expected_at": expected.isoformat() if expected else None,
        "current_expected_at": current.isoformat() if current else None,
    }


def _resource_reason(offer: Offer | None) -> str:
    if offer is None:
        return f"{RESOURCE_REASON}: a sooner supplier"
    expected = offer.expected_at.isoformat() if offer.expected_at else "unknown"
    return f"{RESOURCE_REASON}: {offer.supplier_name} can deliver sooner ({expected})"


def _resourced(
    data: dict[str, Any], placed: sourcing.Placed, offer: Offer | None, now: datetime
) -> tuple[JobEvent, None]:
    data["po"] = placed.order.po
    data["reason"] = _resource_reason(offer)
    return JobEvent(EventKind.RESOURCED, now, SYSTEM_USER, data=data), None


async def _done(
    services: Services,
    entry: OutboxEntry,
    now: datetime,
    events: Sequence[JobEvent],
    alerts: Sequence[dict[str, Any]] = (),
    *,
    branch_id: int | None = None,
    finish: bool = True,
) -> None:
    """Record the outcome and mark the entry done in one transaction (a duplicate delivery that ran
    alongside finds it done and records nothing)."""
    async with services.db.transaction() as uow:
        if await uow.outbox.get(entry.id, lock=True) is None:
            return
        if entry.job_id is not None and events:
            await uow.jobs.add_events(entry.job_id, list(events))
        for alert in alerts:
            assert branch_id is not None
            await uow.alerts.add(branch_id=branch_id, job_id=entry.job_id, audience=STAFF, now=now, **alert)
        if finish:
            await uow.outbox.done(entry.id, now)
