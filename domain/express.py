"""Express capacity: how many express intakes a branch takes in one of its own days, and a manager's
override beyond it.

The day is the branch's calendar day (midnight to midnight in its timezone), not UTC's: a shop in Paris
that opens at 09:00 must not see its count reset at 01:00.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from domain.errors import InvalidValue, NotPermitted, RuleConflict
from domain.model import Actor, EventKind, RepairJob, Tier
from domain.stages import Role

OVERRIDE_FIELD = "express_override_reason"
# A branch's current day began less than this ago, whatever its UTC offset (a local day lasts 25 hours at
# most): the intakes taken since then are all that counting it needs.
LOOKBACK = timedelta(hours=26)


class CapacityReached(RuleConflict, InvalidValue):
    """The branch's express slots for the day are all taken: a conflict (409, RuleConflict comes first in
    the MRO) that names the field at fault, like a 422 does."""

    def __init__(self, field: str, reason: str) -> None:
        InvalidValue.__init__(self, field, reason)


@dataclass(frozen=True, slots=True)
class ExpressDay:
    """A branch's express intakes on one of its days: how many it takes, how many it took."""

    day: date
    capacity: int
    used: int

    @property
    def left(self) -> int:
        return max(self.capacity - self.used, 0)


def local_day(now: datetime, tz: ZoneInfo) -> tuple[date, datetime, datetime]:
    """The branch's calendar day holding `now`, and its bounds in UTC (a daylight-saving day lasts 23 or
    25 hours)."""
    day = now.astimezone(tz).date()
    start = datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).astimezone(UTC)
    return day, start, end


def count_day(now: datetime, tz: ZoneInfo, capacity: int, taken_at: Iterable[datetime]) -> ExpressDay:
    """The branch's express day holding `now`, from the times its express intakes were taken (those of
    the last `LOOKBACK` at least)."""
    day, start, end = local_day(now, tz)
    return ExpressDay(day, capacity, sum(1 for at in taken_at if start <= at < end))


def check_override(actor: Actor, tier: Tier, reason: str | None) -> None:
    """Only a manager overrides the capacity, and only for an express intake, with a reason."""
    if reason is None:
        return
    if actor.role is not Role.MANAGER:
        raise NotPermitted("only a manager may take an express job beyond the day's capacity")
    if tier is not Tier.EXPRESS:
        raise InvalidValue(OVERRIDE_FIELD, "only an express intake overrides the express capacity")
    if not reason.strip():
        raise InvalidValue(OVERRIDE_FIELD, "say why the express capacity is overridden")


def admit(day: ExpressDay, actor: Actor, tier: Tier, reason: str | None) -> dict[str, Any] | None:
    """Whether this intake may be taken at its tier today. Returns what the intake records of a manager's
    override when one was needed (None otherwise); refuses an express intake beyond capacity."""
    check_override(actor, tier, reason)
    if tier is not Tier.EXPRESS or day.left > 0:
        return None
    if reason is None:
        raise CapacityReached(
            "tier",
            f"express capacity reached: {day.used} of {day.capacity} express slots used today "
            "(take it as standard, or a manager may override with express_override_reason)",
        )
    return {
        "express_override": {"reason": reason.strip(), "by": actor.username, "capacity": day.capacity, "used": day.used}
    }


def record_override(job: RepairJob, override: Mapping[str, Any]) -> None:
    """Put the override on the job's CREATED event, still pending: it is part of the intake's record."""
    for index, event in enumerate(job.pending_events):
        if event.kind is EventKind.CREATED:
            job.pending_events[index] = replace(event, data={**event.data, **override})
            return
    raise RuleConflict("an override is recorded with the intake")
