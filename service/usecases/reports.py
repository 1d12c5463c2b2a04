"""The reports behind the late-parts page and the manager's page.

The late list is the API's (`parts.late_parts`, what GET /api/v1/parts/late serves), with the rung of the
escalation ladder each job reached for its *current* promise: the promise the sweep judges now (the
assessment's parts ETA's day, `escalation.promise_key`), so a rung reached for an earlier date does not show.

The manager's figures, for one branch (or the whole chain for a chain-wide manager):
- open jobs per stage;
- on-time rate per tier over the last 30 days: of the jobs *collected* in those 30 days, the share that
  were ready for pickup (first reached ready_for_pickup; the collection time when that was never
  recorded) at or before their due date. Ready, not collected: when the customer comes is not the shop's
  promise. Cancelled jobs do not count;
- intake per day over the last 7 days (today included), by local day in the branch's time zone;
- per supplier, its scorecard (domain `scorecard`, the numbers of GET /api/v1/suppliers/{id}/scorecard,
  over the whole chain since suppliers serve every branch) and its delay over time: per week (Monday to
  Sunday, UTC), the mean delay of the lines received that week, as the scorecard measures it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from domain.errors import NotPermitted
from domain.escalation import EscalationPolicy, Level, assess
from domain.model import Actor, Branch, Tier
from domain.parts import Supplier
from domain.sla import SlaPolicy
from domain.sourcing import WINDOW, LineRecord, Scorecard, scorecard
from domain.stages import Role, Stage
from service.persistence.reports import Delivered, ReportQueries
from service.uow import UnitOfWork
from service.usecases import parts
from service.usecases.board import COLUMNS
from service.usecases.branches import branch_of
from service.usecases.escalation import promise_key
from service.usecases.parts import LateItem

ON_TIME_WINDOW = timedelta(days=30)
INTAKE_DAYS = 7
DELAY_WEEKS = WINDOW.days // 7 + 1  # the scorecard's 90 days, in whole weeks (the current one included)


# --- the late list ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LateRow:
    item: LateItem
    level: Level | None  # the ladder's rung reached for the job's current promise
    sla: str | None  # "breached" (due date passed), "at_risk" (forecast after it), None: still fine
    zone: ZoneInfo  # the branch's, to show dates in local time


def sla_impact(now: datetime, due_at: datetime, at_risk: bool) -> str | None:
    if now > due_at:
        return "breached"
    return "at_risk" if at_risk else None


async def late_rows(
    uow: UnitOfWork, actor: Actor, *, now: datetime, sla: SlaPolicy, policy: EscalationPolicy, limit: int
) -> list[LateRow]:
    """The API's late list, worst first, with each job's rung for its current promise."""
    items = await parts.late_parts(uow, actor, now=now, sla=sla, limit=limit)
    if not items:
        return []
    job_ids = sorted({item.late.line.job_id for item in items})
    branches = {branch.id: branch for branch in await uow.branches.all()}
    keys = await _current_promises(uow, items, branches, now=now, sla=sla, policy=policy)
    rungs = await ReportQueries(uow.connection).open_rungs(job_ids)
    return [
        LateRow(
            item,
            rungs.get((item.late.line.job_id, keys[item.late.line.job_id])),
            sla_impact(now, item.late.due_at, item.forecast.at_risk),
            ZoneInfo(branches[item.late.line.branch_id].timezone),
        )
        for item in items
    ]


async def _current_promises(
    uow: UnitOfWork,
    items: Sequence[LateItem],
    branches: dict[int | None, Branch],
    *,
    now: datetime,
    sla: SlaPolicy,
    policy: EscalationPolicy,
) -> dict[int, str]:
    """Each job's promise key as the sweep computes it now (same lines, calendar and stale suppliers)."""
    lines = await uow.lines.for_jobs(sorted({item.late.line.job_id for item in items}))
    stale = {
        s.supplier.id: s.supplier.stale_since for s in await uow.suppliers.list() if s.supplier.stale_since is not None
    }
    keys: dict[int, str] = {}
    for item in items:
        late = item.late
        assessment = assess(
            tier=late.tier,
            due_at=late.due_at,
            lines=lines.get(late.line.job_id, []),
            calendar=branches[late.line.branch_id].calendar,
            sla=sla,
            policy=policy,
            now=now,
            stale_since=stale,
        )
        keys[late.line.job_id] = promise_key(assessment, branches[late.line.branch_id].calendar)
    return keys


# --- the manager's page --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TierRate:
    tier: Tier
    on_time: int
    collected: int

    @property
    def rate(self) -> float | None:
        return self.on_time / self.collected if self.collected else None


@dataclass(frozen=True, slots=True)
class SupplierReport:
    supplier: Supplier
    card: Scorecard
    weekly_delay: list[tuple[date, float | None]]  # (Monday, mean delay in hours; None: nothing received)


@dataclass(frozen=True, slots=True)
class ManagerReport:
    branch: Branch | None  # None: the whole chain
    branches: list[Branch]  # what a chain-wide manager may choose from (empty for a branch's manager)
    zone: ZoneInfo  # whose days and times the page shows
    stages: list[tuple[Stage, int]]
    on_time: list[TierRate]
    intake: list[tuple[date, int]]
    suppliers: list[SupplierReport]


def on_time(job: Delivered) -> bool:
    """Ready for pickup at or before the due date (collection time when readiness was never recorded)."""
    return (job.ready_at or job.collected_at) <= job.due_at


def tier_rates(jobs: Sequence[Delivered]) -> list[TierRate]:
    """Express first, then standard; a tier with no collected job has no rate (not 0 %, not 100 %)."""
    rates = []
    for tier in (Tier.EXPRESS, Tier.STANDARD):
        own = [job for job in jobs if job.tier is tier]
        rates.append(TierRate(tier, sum(1 for job in own if on_time(job)), len(own)))
    return rates


def intake_per_day(received: Sequence[datetime], zone: ZoneInfo, today: date, days: int) -> list[tuple[date, int]]:
    """Jobs received per local day, the `days` days ending today, oldest first, empty days included."""
    first = today - timedelta(days=days - 1)
    counts = {first + timedelta(days=n): 0 for n in range(days)}
    for moment in received:
        day = moment.astimezone(zone).date()
        if day in counts:
            counts[day] += 1
    return list(counts.items())


def monday_of(moment: datetime) -> date:
    day = moment.date()
    return day - timedelta(days=day.weekday())


def weekly_delay(records: Sequence[LineRecord], now: datetime, weeks: int) -> list[tuple[date, float | None]]:
    """Per week (the `weeks` weeks ending with the current one), the scorecard's mean delay of the lines
    received that week, in hours; None for a week with nothing received."""
    last = monday_of(now)
    buckets: dict[date, list[LineRecord]] = {last - timedelta(weeks=n): [] for n in range(weeks - 1, -1, -1)}
    for record in records:
        if record.received_at is not None and (week := monday_of(record.received_at)) in buckets:
            buckets[week].append(record)
    return [(week, scorecard(received, now).mean_delay_hours) for week, received in buckets.items()]


async def manager_report(uow: UnitOfWork, actor: Actor, *, now: datetime, branch_code: str | None) -> ManagerReport:
    if actor.role is not Role.MANAGER:
        raise NotPermitted("only a manager sees the reports")
    branches = await uow.branches.all()
    branch = await branch_of(uow, actor, branch_code) if branch_code or not actor.chain_wide else None
    branch_id = branch.id if branch is not None else None
    zone = ZoneInfo(branch.timezone if branch is not None else _chain_zone(branches))
    queries = ReportQueries(uow.connection)
    counts = await queries.stage_counts(branch_id)
    delivered = await queries.collected(branch_id, now - ON_TIME_WINDOW, now)
    # A day more than asked: the first local day may start before `now - 7 days` in UTC.
    received = await queries.intake(branch_id, now - timedelta(days=INTAKE_DAYS + 1))
    return ManagerReport(
        branch,
        branches if actor.chain_wide else [],
        zone,
        [(stage, counts.get(stage, 0)) for stage in COLUMNS],
        tier_rates(delivered),
        intake_per_day(received, zone, now.astimezone(zone).date(), INTAKE_DAYS),
        await _supplier_reports(uow, now),
    )


def _chain_zone(branches: Sequence[Branch]) -> str:
    """The chain's days are its first branch's (a chain's branches share a time zone in practice)."""
    return branches[0].timezone if branches else "UTC"


async def _supplier_reports(uow: UnitOfWork, now: datetime) -> list[SupplierReport]:
    records = await uow.lines.records_by_supplier(now - WINDOW)
    reports = []
    for stored in await uow.suppliers.list():
        own = records.get(stored.supplier.id, [])
        reports.append(SupplierReport(stored.supplier, scorecard(own, now), weekly_delay(own, now, DELAY_WEEKS)))
    return reports
