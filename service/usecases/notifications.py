"""Customer notifications: asked for in the transaction of the change (an outbox entry), sent by a worker.

`notify` writes an outbox entry of kind "notify"; the handler below (registered on import) sends it on
every channel the customer agreed to, one `NotificationRow` per channel recording what became of it:

- `skipped`: no address, no SMS consent, or the channel is not configured;
- `delayed`: an SMS in quiet hours (20:00-08:00 branch time), sent at 08:00 by the same entry;
- `pending`: a retryable failure, tried again after a growing delay (2, 4, 8, 16 minutes...);
- `sent` / `failed`: final; both are also a JobEvent, so the job's history shows delivery.

The handler locks the entry, sends, records the result and marks the entry done (or due again later)
in one transaction: a redelivered entry that is done sends nothing, and a channel already sent is never
sent again when the entry comes back for another one. A crash after a send but before the commit can
repeat that one message (at-least-once): the SMS gateway is given an idempotency key against it.
The lock is held while the channels are called (bounded by their timeouts); on SQLite that briefly
holds the database's write lock too, which the embedded one-counter setup tolerates.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog

from domain.model import Actor, EventKind, JobEvent, RepairJob, format_ref
from domain.notifications import (
    ChannelName,
    Facts,
    Template,
    language_of,
    recipient,
    render,
    sms_send_time,
)
from domain.stages import Role
from integrations.notify.base import SendError
from service.persistence.notifications import NotificationRecord, NotificationRepository
from service.persistence.outbox import OutboxEntry
from service.services import Services
from service.uow import UnitOfWork
from service.usecases.outbox import handler

log = structlog.get_logger("atelier.notifications")

KIND = "notify"
MAX_ATTEMPTS = 5  # per channel; then the message is failed
FIRST_RETRY = timedelta(minutes=2)  # doubles at each retryable failure
FINAL = frozenset({"sent", "failed", "skipped"})
SYSTEM = Actor(0, "notifications", Role.MANAGER, None)  # reads any branch's job; acts as nobody in history


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed try."""
    factor: int = 2 ** max(attempts - 1, 0)
    return FIRST_RETRY * factor


async def notify(
    uow: UnitOfWork, job_id: int, template: Template | str, data: Mapping[str, Any] | None = None, *, now: datetime
) -> int:
    """Ask for a message to the job's customer, in the caller's transaction; returns the outbox id."""
    payload = {"template": Template(template).value, "data": dict(data or {})}
    return await uow.outbox.add(KIND, payload, now=now, job_id=job_id)


@handler(KIND)
async def deliver(services: Services, entry: OutboxEntry, now: datetime) -> None:
    async with services.db.transaction() as uow:
        current = await uow.outbox.get(entry.id, lock=True)
        if current is None:  # done by an earlier delivery
            return
        if current.job_id is None:
            log.error("notification_without_job", outbox_id=current.id)
            await uow.outbox.done(current.id, now)
            return
        job = await uow.jobs.get(SYSTEM, format_ref(current.job_id))
        branch = await uow.branches.by_id(job.branch_id)
        assert branch is not None
        template = Template(current.payload["template"])
        facts = Facts(
            ref=job.ref,
            customer_name=job.customer.name,
            device=f"{job.device.brand} {job.device.model}",
            branch_name=branch.name,
            hours=branch.hours,
            tz=branch.calendar.tz,
            data=current.payload.get("data") or {},
        )
        notifications = NotificationRepository(uow.connection)
        records = await notifications.for_outbox(current.id)
        events: list[JobEvent] = []
        due_again: list[datetime] = []
        waiting: list[str] = []
        for channel in ChannelName:
            record = records.get(channel.value)
            if record is not None and record.status in FINAL:
                continue  # sent (or settled) by an earlier run of this entry: never twice
            if record is not None and record.scheduled_for > now:
                due_again.append(record.scheduled_for)  # an early or duplicate delivery: not yet
                waiting.append(f"{channel.value} {record.status}: {record.error}")
                continue
            record = await _attempt(services, current, job, channel, template, facts, record, now)
            await notifications.save(record)
            if record.status in ("pending", "delayed"):
                due_again.append(record.scheduled_for)
                waiting.append(f"{channel.value} {record.status}: {record.error}")
            elif record.status in ("sent", "failed"):
                events.append(_event(record, now))
        if due_again:
            await uow.outbox.retry_later(current.id, min(due_again), "; ".join(waiting))
        else:
            await uow.outbox.done(current.id, now)
        await uow.jobs.add_events(current.job_id, events)


async def _attempt(
    services: Services,
    entry: OutboxEntry,
    job: RepairJob,
    channel: ChannelName,
    template: Template,
    facts: Facts,
    record: NotificationRecord | None,
    now: datetime,
) -> NotificationRecord:
    """One try on one channel; returns the record with its new status."""
    language = language_of(job.customer)
    message = render(template, channel, language, facts)
    to = recipient(job.customer, channel)
    if record is None:
        record = NotificationRecord(
            outbox_id=entry.id,
            job_id=job.id or 0,
            channel=channel.value,
            template=template.value,
            language=language,
            recipient=to or "",
            body=message.body,
            status="pending",
            attempts=0,
            scheduled_for=now,
            created_at=now,
        )
    record.recipient, record.body, record.language = to or "", message.body, language
    sender = services.channels.get(channel.value)
    if to is None or sender is None:
        record.status = "skipped"
        if to is None:
            record.error = "no email address" if channel is ChannelName.EMAIL else "no SMS consent"
        else:
            record.error = f"no {channel.value} channel configured"
        return record
    if channel is ChannelName.SMS:
        allowed = sms_send_time(now, facts.tz)
        if allowed > now:
            record.status, record.scheduled_for, record.error = "delayed", allowed, "quiet hours"
            return record
    record.attempts += 1
    retryable = True
    try:
        provider_id = await sender.send(
            to, message.subject, message.body, idempotency_key=f"atelier-notify-{entry.id}-{channel.value}"
        )
    except SendError as exc:
        retryable, error = exc.retryable, str(exc)
    except Exception as exc:  # a bug or an unexpected library error: never lose the message over it
        log.exception("notification_channel_error", outbox_id=entry.id, channel=channel.value)
        error = repr(exc)
    else:
        record.status, record.sent_at, record.provider_id, record.error = "sent", now, provider_id, None
        return record
    record.error = error
    if retryable and record.attempts < MAX_ATTEMPTS:
        record.status, record.scheduled_for = "pending", now + backoff(record.attempts)
    else:
        record.status = "failed"
    log.warning("notification_failed", outbox_id=entry.id, channel=channel.value, status=record.status, error=error)
    return record


def _event(record: NotificationRecord, now: datetime) -> JobEvent:
    kind = EventKind.NOTIFICATION_SENT if record.status == "sent" else EventKind.NOTIFICATION_FAILED
    data: dict[str, Any] = {
        "channel": record.channel,
        "template": record.template,
        "language": record.language,
        "recipient": record.recipient,
        "attempts": record.attempts,
    }
    if record.status == "sent":
        data["provider_id"] = record.provider_id
    else:
        data["error"] = record.error
    return JobEvent(kind, now, None, data=data)
