"""Customer notifications: asked for in the transaction of the change (an outbox entry), sent by a worker.

`notify` writes an outbox entry of kind "notify"; the handler below (registered on import) sends it on
every channel the customer agreed to, one `NotificationRow` per channel recording what became of it:

- `skipped`: no address, no SMS consent, or the channel is not configured;
- `delayed`: an SMS in quiet hours (20:00-08:00 branch time), sent at 08:00 by the same entry;
- `pending`: a retryable failure, tried again after a growing delay (2, 4, 8, 16 minutes...);
- `sent` / `failed`: final; both are also a JobEvent, so the job's history shows delivery.

No transaction is open while a channel is called (an SMTP server may take seconds, and on SQLite a
write transaction would stop the whole shop meanwhile). Instead the handler works in three steps:
1. claim: with the entry locked, each channel due now is marked `sending` with a lease and committed,
   so a concurrent delivery of the same entry skips it;
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
        notifications = NotificationRepository(uow.connection)
        records = await notifications.for_outbox(current.id)
        to_send: list[tuple[ChannelName, NotificationRecord]] = []
        for channel in ChannelName:
            record = records.get(channel.value)
            if record is not None and (record.status in FINAL or record.scheduled_for > now):
                continue  # settled, or not due yet (a retry later, quiet hours, another worker's lease)
            record = _prepare(services, current, job, channel, template, stored, record, now)
            if record.status == "sending":
                to_send.append((channel, record))
            await notifications.save(record)
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
        events = [_event(r, now) for r in results if r.status in ("sent", "failed")]
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
    services: Services,
    entry: OutboxEntry,
    job: RepairJob,
    channel: ChannelName,
    template: Template,
    facts: Facts,
    record: NotificationRecord | None,
    now: datetime,
) -> NotificationRecord:
    """What to do on one channel now, without sending: skipped, delayed (quiet hours) or sending."""
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
    if to is None or services.channels.get(channel.value) is None:
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
    record.status, record.scheduled_for = "sending", now + LEASE
    record.attempts += 1
    return record


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
