"""The board: a branch's open jobs by stage, each with how its promise stands (what is late at a glance)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.model import Actor, RepairJob, Tier
from domain.sla import SlaPolicy, forecast
from domain.stages import OPEN, Stage
from service.persistence.jobs import JobFilter
from service.uow import UnitOfWork

BOARD_LIMIT = 500  # open jobs shown per branch; a shop with more needs filters, not a longer board
COLUMNS = (
    Stage.RECEIVED,
    Stage.DIAGNOSING,
    Stage.AWAITING_APPROVAL,
    Stage.AWAITING_PARTS,
    Stage.REPAIRING,
    Stage.QUALITY_CHECK,
    Stage.READY_FOR_PICKUP,
    Stage.ON_HOLD,
)


@dataclass(frozen=True, slots=True)
class Card:
    job: RepairJob
    due_in: timedelta  # negative once due_at has passed
    breached: bool
    at_risk: bool  # the parts' forecast ends after due_at
    late_parts: int  # awaited part lines past their promise


@dataclass(frozen=True, slots=True)
class Board:
    columns: list[tuple[Stage, list[Card]]]

    @property
    def total(self) -> int:
        return sum(len(cards) for _, cards in self.columns)


async def board(
    uow: UnitOfWork, actor: Actor, *, now: datetime, sla: SlaPolicy, tier: Tier | None = None, late_only: bool = False
) -> Board:
    """Open jobs of the caller's branch in stage columns, express first then by due date (the list order)."""
    page = await uow.jobs.list(actor, JobFilter(stage=sorted(OPEN), tier=tier), BOARD_LIMIT, None)
    lines = await uow.lines.for_jobs([job.id or 0 for job in page.items])
    calendars = {branch.id: branch.calendar for branch in await uow.branches.all()}
    by_stage: dict[Stage, list[Card]] = {stage: [] for stage in COLUMNS}
    for job in page.items:
        own = lines.get(job.id or 0, [])
        outlook = forecast(job.tier, job.due_at, own, calendars[job.branch_id], sla, now)
        card = Card(
            job,
            job.due_at - now,
            now > job.due_at,
            outlook.at_risk,
            sum(1 for line in own if line.is_late(now)),
        )
        if late_only and not (card.breached or card.at_risk or card.late_parts):
            continue
        by_stage[job.stage].append(card)
    return Board([(stage, by_stage[stage]) for stage in COLUMNS])
