"""Service-level promises: when a job is due, and when it can be ready once its parts arrive."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.calendar import BusinessCalendar
from domain.model import Tier
from domain.parts import PartLine, parts_eta, waiting_without_date


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """Express is promised in business hours (same day if at all possible), standard in business days.

    The repair times are the bench time left once the parts are in, in business hours: they turn a
    parts ETA into a forecast ready time."""

    express_hours: float = 4.0
    standard_days: int = 3
    express_repair_hours: float = 1.0
    standard_repair_hours: float = 8.0

    def due_at(self, tier: Tier, calendar: BusinessCalendar, received_at: datetime) -> datetime:
        if tier is Tier.EXPRESS:
            return calendar.add_business_time(received_at, timedelta(hours=self.express_hours))
        return calendar.add_business_days(received_at, self.standard_days)

    def repair_time(self, tier: Tier) -> timedelta:
        hours = self.express_repair_hours if tier is Tier.EXPRESS else self.standard_repair_hours
        return timedelta(hours=hours)

    def ready_at(self, tier: Tier, calendar: BusinessCalendar, parts_arrive: datetime) -> datetime:
        """The forecast ready time when the parts arrive at `parts_arrive`."""
        return calendar.add_business_time(parts_arrive, self.repair_time(tier))


@dataclass(frozen=True, slots=True)
class Forecast:
    """When a job waiting for parts can be ready, and whether that breaks its promise."""

    parts_eta: datetime | None  # the latest ETA of the awaited lines; None when unknown or none awaited
    ready_at: datetime | None
    at_risk: bool
    waiting_without_date: bool  # some awaited line has no ETA at all (not ordered yet)


def forecast(
    tier: Tier,
    due_at: datetime,
    lines: Sequence[PartLine],
    calendar: BusinessCalendar,
    policy: SlaPolicy,
    now: datetime,
) -> Forecast:
    """Ready = parts ETA (or now, if that passed without the part) plus the bench time left for the tier;
    at risk when that is after `due_at`."""
    eta = parts_eta(lines)
    unknown = waiting_without_date(lines)
    if eta is None:
        return Forecast(None, None, False, unknown)
    ready = policy.ready_at(tier, calendar, max(eta, now))
    return Forecast(eta, ready, ready > due_at, unknown)
