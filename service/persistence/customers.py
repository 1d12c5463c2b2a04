"""Customers' personal data in storage: finding whom to erase, and erasing it everywhere it was copied
(the customer row, their jobs' device identifiers and secrets, the history's recipients, the messages
sent, the stored answers of retried requests). Every statement works on a batch of customers or jobs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.model import format_ref
from domain.stages import TERMINAL, Stage
from service.persistence.tables import MAX_ROW_ID, customer_t, event_t, idempotency_t, job_t, notification_t

_CLOSED = sorted(stage.value for stage in TERMINAL)
_UPDATE_EVENT_DATA = update(event_t).where(event_t.c.id == bindparam("event_id")).values(data=bindparam("new_data"))


@dataclass(frozen=True, slots=True)
class CustomerJob:
    job_id: int
    customer_id: int
    branch_id: int
    stage: Stage

    @property
    def ref(self) -> str:
        return format_ref(self.job_id)


class CustomerDataRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def lock(self, customer_id: int) -> tuple[bool, datetime | None]:
        """(whether the customer exists, when they were erased), their row held until the transaction ends."""
        if not 0 < customer_id <= MAX_ROW_ID:  # names no row (and must not reach the database)
            return False, None
        query = select(customer_t.c.erased_at).where(customer_t.c.id == customer_id).with_for_update()
        row = (await self._conn.execute(query)).first()
        return (False, None) if row is None else (True, row.erased_at)

    async def jobs_of(self, customer_ids: Sequence[int]) -> list[CustomerJob]:
        query = (
            select(job_t.c.id, job_t.c.customer_id, job_t.c.branch_id, job_t.c.stage)
            .where(job_t.c.customer_id.in_(list(customer_ids)))
            .order_by(job_t.c.id)
        )
        return [CustomerJob(row[0], row[1], row[2], Stage(row[3])) for row in await self._conn.execute(query)]

    async def expired(self, closed_before: datetime, limit: int) -> list[int]:
        """Customers not erased yet whose jobs are all closed (collected or cancelled), the last one before
        `closed_before`. A job closed when it was collected, else (cancelled) at its last change."""
        closed_at = func.coalesce(job_t.c.collected_at, job_t.c.updated_at)
        still_open = case((job_t.c.stage.in_(_CLOSED), 0), else_=1)
        query = (
            select(job_t.c.customer_id)
            .join(customer_t, customer_t.c.id == job_t.c.customer_id)
            .where(customer_t.c.erased_at.is_(None))
            .group_by(job_t.c.customer_id)
            .having(func.max(still_open) == 0, func.max(closed_at) < closed_before)
            .order_by(job_t.c.customer_id)
            .limit(limit)
        )
        return [row[0] for row in await self._conn.execute(query)]

    async def erase_customers(self, customer_ids: Sequence[int], name: str, now: datetime) -> list[int]:
        """Anonymise the customers not erased yet; returns those erased now. On PostgreSQL a concurrent
        erasure of the same customer waits for this one, then finds it erased and skips it."""
        query = (
            update(customer_t)
            .where(customer_t.c.id.in_(list(customer_ids)), customer_t.c.erased_at.is_(None))
            .values(name=name, phone="", email=None, sms_consent=False, erased_at=now)
            .returning(customer_t.c.id)
        )
        return sorted(row[0] for row in await self._conn.execute(query))

    async def erase_jobs(self, job_ids: Sequence[int]) -> None:
        """The device's identifiers and every secret of the jobs (passcode, link, pickup code). Stages, dates,
        estimates, approvals and amounts stay. A new version: the job as shown has changed."""
        await self._conn.execute(
            update(job_t)
            .where(job_t.c.id.in_(list(job_ids)))
            .values(
                device_imei=None,
                device_serial=None,
                passcode_ciphertext=None,
                tracking_hash=None,
                tracking_ciphertext=None,
                pickup_code_hash=None,
                version=job_t.c.version + 1,
            )
        )

    async def scrub_events(self, job_ids: Sequence[int], scrub: Callable[[Mapping[str, Any]], dict[str, Any]]) -> int:
        """Rewrite the data of the jobs' events that `scrub` changes; returns how many."""
        query = select(event_t.c.id, event_t.c.data).where(event_t.c.job_id.in_(list(job_ids)))
        changed = []
        for event_id, data in await self._conn.execute(query):
            scrubbed = scrub(data or {})
            if scrubbed != (data or {}):
                changed.append({"event_id": event_id, "new_data": scrubbed})
        if changed:
            await self._conn.execute(_UPDATE_EVENT_DATA, changed)
        return len(changed)

    async def scrub_notifications(self, job_ids: Sequence[int], body: str) -> None:
        """Who our messages went to, and the stored copy of what they said (it names the customer)."""
        await self._conn.execute(
            update(notification_t).where(notification_t.c.job_id.in_(list(job_ids))).values(recipient="", body=body)
        )

    async def forget_responses(self, job_ids: Sequence[int]) -> None:
        """Stored answers of retried requests (Idempotency-Key) about these jobs: they copy the customer and
        device. A stored body is JSON text, where a job appears as `"ref": "AT-000123"`."""
        if job_ids:
            about = [idempotency_t.c.body.contains(f'"ref": "{format_ref(job_id)}"') for job_id in job_ids]
            await self._conn.execute(idempotency_t.delete().where(or_(*about)))
