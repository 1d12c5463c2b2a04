"""Use cases of express capacity: admitting an intake at its tier, and how many express slots are left.

The count and the intake happen in one transaction with the branch row locked first (PostgreSQL: SELECT
... FOR UPDATE; SQLite: a writer holds the database), so two desks cannot both take the last slot.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.calendar import zone
from domain.express import LOOKBACK, ExpressDay, admit, check_override, count_day
from domain.model import Actor, Branch, Tier
from service.persistence.branches import BranchSettingsRepository
from service.uow import UnitOfWork
from service.usecases.branches import branch_of


async def express_day(uow: UnitOfWork, branch_id: int, *, now: datetime, default_capacity: int) -> ExpressDay:
    """The branch's express intakes today (its own calendar day), in one statement."""
    recent = await BranchSettingsRepository(uow.connection).recent_express(branch_id, now - LOOKBACK)
    assert recent is not None
    capacity = recent.express_capacity if recent.express_capacity is not None else default_capacity
    return count_day(now, zone(recent.timezone), capacity, recent.taken_at)


async def admit_intake(
    uow: UnitOfWork,
    actor: Actor,
    branch: Branch,
    tier: Tier,
    override_reason: str | None,
    *,
    now: datetime,
    default_capacity: int,
) -> dict[str, Any] | None:
    """Refuse an express intake beyond the day's capacity, unless a manager overrides it: returns what the
    intake records of the override. A standard intake reads and locks nothing."""
    if tier is not Tier.EXPRESS:
        check_override(actor, tier, override_reason)
        return None
    assert branch.id is not None
    await BranchSettingsRepository(uow.connection).lock(branch.id)
    day = await express_day(uow, branch.id, now=now, default_capacity=default_capacity)
    return admit(day, actor, tier, override_reason)


async def slots_left(uow: UnitOfWork, branch_id: int, *, now: datetime, default_capacity: int) -> int:
    """Express slots left today at the branch (after what this transaction took)."""
    return (await express_day(uow, branch_id, now=now, default_capacity=default_capacity)).left


async def capacity(
    uow: UnitOfWork, actor: Actor, branch_code: str | None, *, now: datetime, default_capacity: int
) -> tuple[Branch, ExpressDay]:
    """Today's express capacity of the caller's branch (a chain-wide manager names one)."""
    branch = await branch_of(uow, actor, branch_code)
    assert branch.id is not None
    return branch, await express_day(uow, branch.id, now=now, default_capacity=default_capacity)
