"""Customer notifications: asked for in the transaction of the change (an outbox entry), sent by a worker.

`notify` writes an outbox entry of kind "notify"; the handler below (registered on import) sends it on
every channel the customer agreed to, one `NotificationRow` per channel recording what became of it:

- `skipped`: no address, no SMS consent, the channel is not configured, the message's reason has passed
  by the time it may go (the parts came in, the device was collected), or a parts delay announces a date
  the customer was told already on that channel;
- `delayed`: an SMS in quiet hours (20:00-08:00 branch time), sent at 08:00 by the same entry;
- `pending`: a retryable failure, tried again after a growing delay (2, 4, 8, 16 minutes...), or a
  message waiting for an earlier one of its job to settle on that channel: they go out in the order asked;
- `sent` / `failed`: final.
Every outcome but waiting for its turn (and a channel the shop has not set up) is also a JobEvent, so the
job's history shows delivery.

No transaction is open while a channel is called (an SMTP server may take seconds, and on SQLite a
write transaction would stop the whole shop meanwhile). Instead the handler works in three steps:
1. claim: with the entry and the job locked, each channel due now is decided on the job as it is then
   (skipped, delayed, waiting its turn) or marked `sending` with a lease and committed, so a concurrent
   delivery of the same entry skips it;
2. send, outside any transaction;
3. record: with the entry locked again, the results are saved with their JobEvents and the entry is
   marked done (or due again when a channel waits), in one transaction.
Secrets a message carries (the pickup code, the customer's tracking link) are never stored in clear:
the caller seals the code into the entry (encrypted with the data keys), the link is read encrypted
from the job; both are opened only to render what is sent. The stored copy of the message shows them
masked, and the sealed code is dropped from the entry once every channel is settled.
A redelivered entry that is done sends nothing, and a channel already sent is never sent again. A crash
between the send and the record leaves the lease to expire and the message is tried again
(at-least-once): the SMS gateway is given an idempotency key against that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog

from domain.model import Actor, EventKind, JobEvent, RepairJob, format_ref
from domain.notifications import (
    ALREADY_TOLD,
    ChannelName,
    Facts,
    Template,
    already_told,
    language_of,
    recipient,
    render,
    sms_send_time,
    stale_reason,
)
from domain.stages import Role
from integrations.notify.base import SendError
from service.persistence.notifications import NotificationRecord, NotificationRepository
from service.persistence.outbox import OutboxEntry
from service.secrets import PasscodeCipher
from service.services import Services
from service.uow import UnitOfWork
from service.usecases.outbox import handler

log = structlog.get_logger("atelier.notifications")

KIND = "notify"
MAX_ATTEMPTS = 5  # per channel; then the message is failed
FIRST_RETRY = timedelta(minutes=2)  # doubles at each retryable failure
FINAL = frozenset({"sent", "failed", "skipped"})
LEASE = timedelta(minutes=2)  # a channel claimed but never recorded (the worker died) is tried again after it
SYSTEM = Actor(0, "notifications", Role.MANAGER, None)  # reads any branch's job; acts as nobody in history
SEALED = "sealed"  # the payload key of a message's encrypted secrets
MASK = "********"  # what the stored copy of a message shows for a secret
TRACKING_PATH = "/track/"
NO_CHANNEL = "no_channel"  # a skip's `why` when the shop has not set the channel up
TURN_WAIT = timedelta(seconds=15)  # a message waiting for an earlier one of its job looks again after this
_EVENT_KINDS = {
    "sent": EventKind.NOTIFICATION_SENT,
    "failed": EventKind.NOTIFICATION_FAILED,
    "pending": EventKind.NOTIFICATION_RETRY,
    "delayed": EventKind.NOTIFICATION_DELAYED,
    "skipped": EventKind.NOTIFICATION_SKIPPED,
}


def seal(cipher: PasscodeCipher, secrets: Mapping[str, str]) -> str:
    """A message's secrets (a pickup code), encrypted for its outbox entry."""
    return cipher.encrypt(json.dumps(dict(secrets)))


def tracking_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{TRACKING_PATH}{token}"


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed try."""
    factor: int = 2 ** max(attempts - 1, 0)
    return FIRST_RETRY * factor


async def notify(
    uow: UnitOfWork,
    job_id: int,
    template: Template | str,
    data: Mapping[str, Any] | None = None,
    *,
    now: datetime,
    sealed: str | None = None,
) -> int:
    """Ask for a message to the job's customer, in the caller's transaction; returns the outbox id.
    `sealed`: the message's secrets, from `seal`."""
    payload: dict[str, Any] = {"template": Template(template).value, "data": dict(data or {})}
    if sealed is not None:
        payload[SEALED] = sealed
    return await uow.outbox.add(KIND, payload, now=now, job_id=job_id)


@dataclass(frozen=True, slots=True)
class _Skip:
    why: str  # what the history says, in words per language: no_address, no_consent, no_channel, stale...
    reason: str  # stored with the message


@dataclass(frozen=True, slots=True)
class _Claimed:
    job: RepairJob
    template: Template
    facts: Facts
    records: list[tuple[ChannelName, NotificationRecord]]  # the channels to send now, marked sending


@handler(KIND)
async def deliver(services: Services, entry: OutboxEntry, now: datetime) -> None:
    claimed = await _claim(services, entry.id, now)
    if claimed is None:
        return
    sent = [
        await _send(services, entry.id, claimed.job, channel, claimed.template, claimed.facts, record, now)
        for channel, record in claimed.records
    ]
    await _record(services, entry.id, sent, now)


async def _claim(services: Services, entry_id: int, now: datetime) -> _Claimed | None:
    """Decide each channel's fate; the ones to send now are leased (`sending`) and committed."""
    async with services.db.transaction() as uow:
        current = await uow.outbox.get(entry_id, lock=True)
        if current is None:  # done by an earlier delivery
            return None
        if current.job_id is None:
            log.error("notification_without_job", outbox_id=current.id)
            await uow.outbox.done(current.id, now)
            return None
        notifications = NotificationRepository(uow.connection)
        await notifications.lock_job(current.job_id)  # read the job as it is now, one claim of it at a time
        job = await uow.jobs.get(SYSTEM, format_ref(current.job_id))
        branch = await uow.branches.by_id(job.branch_id)
        assert branch is not None
        template = Template(current.payload["template"])
        secrets = await _secrets(services, uow, current)
        stored = Facts(
            ref=job.ref,
            customer_name=job.customer.name,
            device=f"{job.device.brand} {job.device.model}",
            branch_name=branch.name,
            hours=branch.hours,
            tz=branch.calendar.tz,
            data={**(current.payload.get("data") or {}), **{key: MASK for key in secrets}},
        )
        facts = replace(stored, data={**stored.data, **secrets})
        lines = await uow.lines.for_job(current.job_id) if template is Template.PARTS_DELAYED else []
        stale = stale_reason(template, job, lines)
        records = await notifications.for_outbox(current.id)
        to_send: list[tuple[ChannelName, NotificationRecord]] = []
        events: list[JobEvent] = []
        for channel in ChannelName:
            record = records.get(channel.value)
            if record is not None and (record.status in FINAL or record.scheduled_for > now):
                continue  # settled, or not due yet (a retry later, quiet hours, another worker's lease)
            record = _prepare(current, job, channel, template, stored, record, now)
            skip = _skip(services, channel, record, stale) or await _told(notifications, current, channel, stored)
            if skip is not None:
                record.status, record.error = "skipped", skip.reason
                if skip.why != NO_CHANNEL:  # a channel the shop does not use is no news about this message
                    events.append(_event(record, now, why=skip.why))
            else:
                await _schedule(notifications, current, channel, record, stored, now)
                if record.status == "sending":
                    to_send.append((channel, record))
                elif record.status == "delayed":
                    events.append(_event(record, now))
            await notifications.save(record)
        await uow.jobs.add_events(current.job_id, events)
        if not to_send:
            await _settle(uow, current, await notifications.for_outbox(current.id), [], now)
            return None
    return _Claimed(job, template, facts, to_send)


async def _secrets(services: Services, uow: UnitOfWork, entry: OutboxEntry) -> dict[str, str]:
    """What the message says that must not be stored in clear: its sealed secrets and the job's link."""
    secrets: dict[str, str] = {}
    sealed = entry.payload.get(SEALED)
    if sealed:
        secrets.update(json.loads(services.cipher.decrypt(str(sealed))))
    assert entry.job_id is not None
    token = await uow.jobs.tracking_ciphertext(entry.job_id)
    if token is not None:
        secrets["tracking_url"] = tracking_url(services.settings.public_base_url, services.cipher.decrypt(token))
    return secrets


async def _record(services: Services, entry_id: int, results: list[NotificationRecord], now: datetime) -> None:
    async with services.db.transaction() as uow:
        current = await uow.outbox.get(entry_id, lock=True)
        if current is None or current.job_id is None:
            return
        notifications = NotificationRepository(uow.connection)
        for record in results:
            await notifications.save(record)
        events = [_event(r, now) for r in results]  # each try ends sent, failed or pending (a retry)
        await _settle(uow, current, await notifications.for_outbox(current.id), events, now)


async def _settle(
    uow: UnitOfWork,
    entry: OutboxEntry,
    records: Mapping[str, NotificationRecord],
    events: list[JobEvent],
    now: datetime,
) -> None:
    """Done when every channel is settled (its sealed secrets then dropped); otherwise due again when the
    first waiting one is."""
    assert entry.job_id is not None
    waiting = [r for r in records.values() if r.status not in FINAL]
    if waiting:
        reason = "; ".join(f"{r.channel} {r.status}: {r.error}" for r in waiting)
        await uow.outbox.retry_later(entry.id, min(r.scheduled_for for r in waiting), reason)
    else:
        await uow.outbox.done(entry.id, now)
        if SEALED in entry.payload:
            await uow.outbox.replace_payload(entry.id, {k: v for k, v in entry.payload.items() if k != SEALED})
    await uow.jobs.add_events(entry.job_id, events)


def _prepare(
    entry: OutboxEntry,
    job: RepairJob,
    channel: ChannelName,
    template: Template,
    facts: Facts,
    record: NotificationRecord | None,
    now: datetime,
) -> NotificationRecord:
    """The channel's record (new, or the one of an earlier try) with the message as it would go now."""
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
    return record


def _skip(services: Services, channel: ChannelName, record: NotificationRecord, stale: str | None) -> _Skip | None:
    """Why this channel must not carry the message at all: no address or consent, not configured, or its
    reason has passed."""
    if not record.recipient:
        if channel is ChannelName.EMAIL:
            return _Skip("no_address", "no email address")
        return _Skip("no_consent", "no SMS consent")
    if services.channels.get(channel.value) is None:
        return _Skip(NO_CHANNEL, f"no {channel.value} channel configured")
    return _Skip("stale", stale) if stale is not None else None


async def _told(
    notifications: NotificationRepository, entry: OutboxEntry, channel: ChannelName, facts: Facts
) -> _Skip | None:
    """A parts delay announcing a date this channel has told the customer already (a sweep's re-run, a
    promise that slipped by an hour): sent once, whatever the number of entries asking for it."""
    if entry.payload["template"] != Template.PARTS_DELAYED or entry.job_id is None:
        return None
    told = await notifications.told(entry.job_id, channel.value, Template.PARTS_DELAYED.value, besides=entry.id)
    if not already_told(facts.data, told, facts.tz):
        return None
    return _Skip("already_told", f"{ALREADY_TOLD}: the new date was sent before")


async def _schedule(
    notifications: NotificationRepository,
    entry: OutboxEntry,
    channel: ChannelName,
    record: NotificationRecord,
    facts: Facts,
    now: datetime,
) -> None:
    """A message to send: delayed (quiet hours), waiting for its turn, or `sending` now under a lease."""
    if channel is ChannelName.SMS:
        allowed = sms_send_time(now, facts.tz)
        if allowed > now:
            record.status, record.scheduled_for, record.error = "delayed", allowed, "quiet hours"
            return
    turn = await _turn(notifications, entry, channel, now)
    if turn is not None:
        record.status, record.scheduled_for, record.error = "pending", turn, "after an earlier message"
        return
    record.status, record.scheduled_for = "sending", now + LEASE
    record.attempts += 1


async def _turn(
    notifications: NotificationRepository, entry: OutboxEntry, channel: ChannelName, now: datetime
) -> datetime | None:
    """When to look again while an earlier message of the job has still to settle on this channel (a backlog
    released at 08:00, a retry): the customer reads them in the order they were asked for. None: go now.
    An earlier entry no worker has tried yet does not hold this one back: it is moments old, and waiting on
    it would make one entry's delivery depend on another's being handled at all."""
    assert entry.job_id is not None
    earlier = await notifications.unsettled_before(entry.job_id, channel.value, before=entry.id)
    if not earlier:
        return None
    # One waiting for its own time goes no sooner; one being sent may settle any moment.
    soonest = min(at if status in ("pending", "delayed") else now for status, at in earlier)
    return max(soonest, now) + TURN_WAIT


async def _send(
    services: Services,
    entry_id: int,
    job: RepairJob,
    channel: ChannelName,
    template: Template,
    facts: Facts,
    record: NotificationRecord,
    now: datetime,
) -> NotificationRecord:
    """One try on one channel (no transaction open); returns the record with its outcome."""
    message = render(template, channel, record.language, facts)
    sender = services.channels[channel.value]
    retryable = True
    try:
        provider_id = await sender.send(
            record.recipient,
            message.subject,
            message.body,
            idempotency_key=f"atelier-notify-{entry_id}-{channel.value}",
        )
    except SendError as exc:
        retryable, error = exc.retryable, str(exc)
    except Exception as exc:  # a bug or an unexpected library error: never lose the message over it
        log.exception("notification_channel_error", outbox_id=entry_id, channel=channel.value)
        error = repr(exc)
    else:
        record.status, record.sent_at, record.provider_id, record.error = "sent", now, provider_id, None
        return record
    record.error = error
    if retryable and record.attempts < MAX_ATTEMPTS:
        record.status, record.scheduled_for = "pending", now + backoff(record.attempts)
    else:
        record.status = "failed"
    log.warning("notification_failed", outbox_id=entry_id, channel=channel.value, status=record.status, error=error)
    return record


def _event(record: NotificationRecord, now: datetime, *, why: str | None = None) -> JobEvent:
    """The history's line for one channel's outcome: never the message itself (it may carry a code)."""
    data: dict[str, Any] = {
        "channel": record.channel,
        "template": record.template,
        "language": record.language,
        "recipient": record.recipient,
        "attempts": record.attempts,
    }
    if record.status == "sent":
        data["provider_id"] = record.provider_id
    elif record.status in ("failed", "pending"):
        data["error"] = record.error
    if record.status == "pending":
        data["next_try_at"] = record.scheduled_for.isoformat()
    elif record.status == "delayed":
        data["until"], data["reason"] = record.scheduled_for.isoformat(), record.error
    elif record.status == "skipped":
        data["reason"], data["why"] = record.error, why
    return JobEvent(_EVENT_KINDS[record.status], now, None, data=data)
