"""When the periodic tasks run: one table for the arq workers and the embedded runner alike."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class Periodic:
    task: str
    every: timedelta
    # arq runs a cron job in one worker at a time (unique); the tasks are idempotent anyway.
    timeout: timedelta = timedelta(seconds=120)

    def cron_fields(self) -> dict[str, set[int]]:
        """arq's calendar fields for 'every N': seconds within a minute, minutes within an hour, or daily."""
        seconds = int(self.every.total_seconds())
        if seconds < 60:
            if 60 % seconds:
                raise ValueError(f"{self.task}: a period under a minute must divide 60 seconds")
            return {"second": set(range(0, 60, seconds))}
        if seconds < 3600:
            if seconds % 60 or 60 % (seconds // 60):
                raise ValueError(f"{self.task}: a period under an hour is a divisor of 60 minutes")
            return {"minute": set(range(0, 60, seconds // 60)), "second": {0}}
        if seconds < 86_400:
            hours = seconds // 3600
            if seconds % 3600 or 24 % hours:
                raise ValueError(f"{self.task}: a period under a day is a divisor of 24 hours")
            return {"hour": set(range(0, 24, hours)), "minute": {0}, "second": {0}}
        return {"hour": {3}, "minute": {0}, "second": {0}}  # daily, at night


SCHEDULE: tuple[Periodic, ...] = (
    Periodic("relay_outbox", timedelta(seconds=2)),
    Periodic("poll_suppliers", timedelta(minutes=1)),  # each supplier is polled when its own interval is due
    Periodic("sweep_escalations", timedelta(minutes=1)),
    Periodic("purge_webhooks", timedelta(days=1)),
    Periodic("remind_uncollected", timedelta(hours=1)),
    # Batched and idempotent: a run cut short by its timeout is finished by the next one.
    Periodic("anonymise_customers", timedelta(days=1), timeout=timedelta(minutes=10)),
)
