"""Service-level promises: when a job is due, from its tier and the branch's opening hours."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.calendar import BusinessCalendar
from domain.model import Tier


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    """Express is promised in business hours (same day if at all possible), standard in business days."""

    express_hours: float = 4.0
    standard_days: int = 3

    def due_at(self, tier: Tier, calendar: BusinessCalendar, received_at: datetime) -> datetime:
        if tier is Tier.EXPRESS:
            return calendar.add_business_time(received_at, timedelta(hours=self.express_hours))
        return calendar.add_business_days(received_at, self.standard_days)
