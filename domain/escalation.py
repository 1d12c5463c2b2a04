"""The late-parts escalation ladder: how bad a job's parts situation is, judged in business time.

1. late: a line's ETA passed without delivery, or slipped past its promise by more than a grace;
2. at risk: the job's forecast ready time is after its due date;
3. breached: the due date has passed, or a part is more than N business days late.

A job climbs the ladder (a level implies the ones below it) and each level is acted on once per job and
per promise: the promise is the job's parts ETA when the level was reached, so a later date after that
(a new promise) may escalate again, while polling the same date a thousand times changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum

from domain.calendar import BusinessCalendar
from domain.model import Tier
from domain.parts import PartLine, PartStatus
from domain.sla import SlaPolicy, forecast


class Level(IntEnum):
    LATE = 1
    AT_RISK = 2
    BREACHED = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class TierRules:
    # How far an ETA may slip past its promise before the job counts as late: `grace_days` business days
    # (same time of day, closed days skipped), then `grace` more business time.
    grace: timedelta = timedelta(0)
    breach_days: int = 3  # a part this many business days late breaches, whatever the due date
    grace_days: int = 0

    def grace_ends(self, promised_at: datetime, calendar: BusinessCalendar) -> datetime:
        """The latest ETA that is not yet late for a part promised at `promised_at`."""
        start = calendar.add_business_days(promised_at, self.grace_days) if self.grace_days else promised_at
        return calendar.add_business_time(start, self.grace) if self.grace else start


@dataclass(frozen=True, slots=True)
class EscalationPolicy:
    rules: Mapping[Tier, TierRules] = field(
        default_factory=lambda: {
            Tier.EXPRESS: TierRules(grace=timedelta(hours=1)),
            Tier.STANDARD: TierRules(grace_days=1),
        }
    )
    # A supplier whose data is stale (it stopped answering) is not trusted to make a job late by itself
    # until it has been stale this long: a short outage must not page a manager.
    stale_window: timedelta = timedelta(hours=4)

    def for_tier(self, tier: Tier) -> TierRules:
        return self.rules[tier]


@dataclass(frozen=True, slots=True)
class Assessment:
    level: Level | None
    reasons: tuple[str, ...]
    promise: datetime | None  # the parts ETA the assessment is about (None: a date is missing)
    forecast_ready_at: datetime | None


def assess(
    *,
    tier: Tier,
    due_at: datetime,
    lines: Sequence[PartLine],
    calendar: BusinessCalendar,
    sla: SlaPolicy,
    policy: EscalationPolicy,
    now: datetime,
    stale_since: Mapping[int, datetime] | None = None,
) -> Assessment:
    """Where a job waiting for parts stands on the ladder now."""
    stale_since = stale_since or {}
    trusted = [line for line in lines if line.waiting and not _stale_too_briefly(line, stale_since, policy, now)]
    rules = policy.for_tier(tier)
    outlook = forecast(tier, due_at, trusted, calendar, sla, now)
    reasons: list[str] = []
    level: Level | None = None
    late_lines = [line for line in trusted if _late(line, rules, calendar, now)]
    if late_lines:
        level = Level.LATE
        reasons.append(f"{len(late_lines)} part(s) late")
    if outlook.at_risk:
        level = Level.AT_RISK
        reasons.append("the forecast ready time is after the due date")
    very_late = [line for line in trusted if _very_late(line, rules, calendar, now)]
    if (now > due_at and any(line.waiting for line in trusted)) or very_late:
        level = Level.BREACHED
        reasons.append("the due date has passed" if now > due_at else f"a part is over {rules.breach_days} days late")
    return Assessment(level, tuple(reasons), outlook.parts_eta, outlook.ready_at)


def _stale_too_briefly(
    line: PartLine, stale_since: Mapping[int, datetime], policy: EscalationPolicy, now: datetime
) -> bool:
    since = stale_since.get(line.supplier_id) if line.supplier_id is not None else None
    if since is None or now - since >= policy.stale_window:
        return False
    # A date the supplier stated after it went quiet (a webhook) is news, not stale data.
    return line.fact_at is None or line.fact_at < since


def _late(line: PartLine, rules: TierRules, calendar: BusinessCalendar, now: datetime) -> bool:
    if line.status is PartStatus.NEEDED or line.eta is None:
        return False
    if line.eta < now:
        return True  # the date passed without the part
    if line.promised_at is None or line.eta <= line.promised_at:
        return False
    return line.eta > rules.grace_ends(line.promised_at, calendar)


def _very_late(line: PartLine, rules: TierRules, calendar: BusinessCalendar, now: datetime) -> bool:
    if line.promised_at is None:
        return False
    expected = line.expected_at(now)
    return expected is not None and expected > calendar.add_business_days(line.promised_at, rules.breach_days)


def levels_to_record(current: Level | None, recorded: Sequence[Level]) -> list[Level]:
    """The ladder is climbed one rung at a time: every level up to the current one not yet recorded for
    this promise, lowest first (a job found breached at once still gets its late and at-risk actions)."""
    if current is None:
        return []
    return [level for level in Level if level <= current and level not in recorded]
