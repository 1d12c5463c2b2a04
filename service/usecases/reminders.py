"""Uncollected devices: the customer is reminded after 3, 10 and 30 days (configurable), then the
branch's managers are told. Each reminder is sent once per stay on the shelf: a job that leaves
ready_for_pickup and comes back starts counting again."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from domain.model import EventKind, JobEvent, format_ref
from domain.notifications import Template
from service.persistence.escalations import MANAGER
from service.persistence.reminders import ReminderRepository, Waiting
from service.services import Services
from service.uow import UnitOfWork
from service.usecases.notifications import notify

log = structlog.get_logger("atelier.reminders")


async def remind_uncollected(services: Services, *, now: datetime) -> int:
    """Send the reminders that are due; returns how many. Idempotent (a re-run sends nothing more)."""
    days = sorted(set(services.settings.uncollected_reminder_days))
    if not days:
        return 0
    async with services.db.transaction(write=False) as uow:
        waiting = await ReminderRepository(uow.connection).waiting_for_pickup(now - timedelta(days=days[0]))
    sent = 0
    for job in waiting:
        due = [d for d in days if now - job.ready_since >= timedelta(days=d)]
        async with services.db.transaction() as uow:
            sent += await _remind(uow, job, due, last=days[-1], now=now)
    if sent:
        log.info("uncollected_reminders", sent=sent)
    return sent


async def _remind(uow: UnitOfWork, job: Waiting, due: list[int], *, last: int, now: datetime) -> int:
    reminders = ReminderRepository(uow.connection)
    await reminders.lock_job(job.job_id)
    done = await reminders.reminded_days(job.job_id, job.ready_since)
    sent = 0
    for days in (d for d in due if d not in done):
        await notify(uow, job.job_id, Template.UNCOLLECTED_REMINDER, {"days": days}, now=now)
        event = JobEvent(EventKind.REMINDED, now, None, data={"days": days})
        await uow.jobs.add_events(job.job_id, [event])
        if days == last:
            ref = format_ref(job.job_id)
            await uow.alerts.add(
                branch_id=job.branch_id,
                job_id=job.job_id,
                audience=MANAGER,
                kind="uncollected",
                message=f"{ref}: not collected {days} days after it was ready",
                data={"ref": ref, "days": days},
                now=now,
            )
        sent += 1
    return sent
