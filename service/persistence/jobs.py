"""Repair jobs and their events in storage, with SQLAlchemy Core on the hot paths.

Every read of a job goes through `_scoped`, the one place that applies branch visibility: a job of
another branch does not exist for the caller.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, false, literal, or_, select, tuple_, update
from sqlalchemy.engine import RowMapping

from domain.errors import InvalidValue, NotFound, VersionConflict
from domain.identifiers import normalise_phone
from domain.model import (
    Actor,
    Approval,
    ApprovalSource,
    Assignee,
    Customer,
    Device,
    EstimateLine,
    EventKind,
    FaultCategory,
    JobEvent,
    LineKind,
    Outcome,
    RepairJob,
    Tier,
    format_ref,
    parse_ref,
)
from domain.stages import Stage
from service.persistence.statements import Prepared, Runner
from service.persistence.tables import MAX_ROW_ID, branch_t, customer_t, event_t, job_t, user_t

_PRIORITY = {Tier.EXPRESS: 0, Tier.STANDARD: 1}

# Secrets and their digests stay out of every job read: each has its own query.
_UNREAD = frozenset({"passcode_ciphertext", "tracking_hash", "tracking_ciphertext", "pickup_code_hash"})
_JOB_COLUMNS = (
    *[c for c in job_t.c if c.name not in _UNREAD],
    job_t.c.passcode_ciphertext.is_not(None).label("has_passcode"),
    customer_t.c.name.label("customer_name"),
    customer_t.c.phone.label("customer_phone"),
    customer_t.c.email.label("customer_email"),
    customer_t.c.sms_consent.label("customer_sms_consent"),
    customer_t.c.language.label("customer_language"),
    user_t.c.username.label("technician_username"),
    branch_t.c.code.label("branch_code"),
)
_JOB_FROM = (
    job_t.join(customer_t, customer_t.c.id == job_t.c.customer_id)
    .join(branch_t, branch_t.c.id == job_t.c.branch_id)
    .outerjoin(user_t, user_t.c.id == job_t.c.technician_id)
)

# The hot statements are built once: a statement built per request costs its construction, the coercion
# of every value into a bound parameter and a fresh cache key (more CPU than the round trip it makes).
_GET_ANY = select(*_JOB_COLUMNS).select_from(_JOB_FROM).where(job_t.c.id == bindparam("job_id"))
_GET_ANY_Q = Prepared(_GET_ANY)
_GET_IN_BRANCH_Q = Prepared(_GET_ANY.where(job_t.c.branch_id == bindparam("branch_id")))
# The columns a change of the job writes: the keys of `_job_values`.
_CHANGING = (
    "due_at",
    "stage",
    "held_from",
    "technician_id",
    "estimate",
    "approval",
    "outcome",
    "work_started_at",
    "pickup_slot",
    "collected_at",
    "paid_cents",
    "version",
    "updated_at",
)
_INSERTED = (
    *_CHANGING,
    "branch_id",
    "customer_id",
    "fault_category",
    "fault_description",
    "tier",
    "priority",
    "device_brand",
    "device_model",
    "device_imei",
    "device_serial",
    "device_colour",
    "device_condition",
    "device_accessories",
    "preapproved_budget_cents",
    "passcode_ciphertext",
    "pickup_failures",
    "created_at",
)
_INSERT_JOB_Q = Prepared(job_t.insert().returning(job_t.c.id), _INSERTED)
_UPDATE = update(job_t).where(job_t.c.id == bindparam("match_id"), job_t.c.version == bindparam("match_version"))
_UPDATE_JOB_Q = Prepared(_UPDATE, _CHANGING)
# Entering collected or cancelled erases the passcode with the same statement.
_UPDATE_JOB_ERASING_Q = Prepared(_UPDATE, (*_CHANGING, "passcode_ciphertext"))
_EVENT_COLUMNS = ("job_id", "at", "actor", "kind", "from_stage", "to_stage", "note", "data")
_INSERT_EVENT_Q = Prepared(event_t.insert(), _EVENT_COLUMNS)


@dataclass(frozen=True, slots=True)
class JobFilter:
    stage: Sequence[Stage] = ()
    tier: Tier | None = None
    technician: str | None = None
    q: str | None = None


@dataclass(frozen=True, slots=True)
class Page:
    items: list[RepairJob]
    next_cursor: str | None


class JobRepository:
    def __init__(self, runner: Runner) -> None:
        self._run = runner
        self._conn = runner.conn

    # --- reads -----------------------------------------------------------------------------

    def _scoped(self, actor: Actor) -> Select[Any]:
        query = select(*_JOB_COLUMNS).select_from(_JOB_FROM)
        if not actor.chain_wide:
            query = query.where(job_t.c.branch_id == actor.branch_id)
        return query

    async def get(self, actor: Actor, ref: str) -> RepairJob:
        job_id = _job_id(ref)
        if job_id is None:
            raise NotFound(f"no job {ref}")
        query = _GET_ANY_Q if actor.chain_wide else _GET_IN_BRANCH_Q
        row = await self._run.fetchrow(query, {"job_id": job_id, "branch_id": actor.branch_id})
        if row is None:
            raise NotFound(f"no job {ref}")
        return _to_job(row)

    async def list(self, actor: Actor, filters: JobFilter, limit: int, cursor: str | None) -> Page:
        query = self._scoped(actor)
        if filters.stage:
            query = query.where(job_t.c.stage.in_([s.value for s in filters.stage]))
        if filters.tier is not None:
            query = query.where(job_t.c.tier == filters.tier.value)
        if filters.technician:
            query = query.where(user_t.c.username == filters.technician)
        if filters.q:
            query = query.where(_search(filters.q))
        key = (job_t.c.priority, job_t.c.due_at, job_t.c.id)
        if cursor:
            after = (literal(value, col.type) for value, col in zip(_decode_cursor(cursor), key, strict=True))
            query = query.where(tuple_(*key) > tuple_(*after))
        query = query.order_by(*key).limit(limit + 1)
        rows = (await self._conn.execute(query)).mappings().all()
        items = [_to_job(row) for row in rows[:limit]]
        next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
        return Page(items, next_cursor)

    async def events(self, job_id: int) -> list[JobEvent]:
        query = select(event_t).where(event_t.c.job_id == job_id).order_by(event_t.c.id)
        return [_to_event(row) for row in (await self._conn.execute(query)).mappings()]

    async def passcode_ciphertext(self, job_id: int) -> str | None:
        query = select(job_t.c.passcode_ciphertext).where(job_t.c.id == job_id)
        value: str | None = (await self._conn.execute(query)).scalar_one_or_none()
        return value

    async def tracking_ciphertext(self, job_id: int) -> str | None:
        """The customer's link token, encrypted (None when revoked or never issued)."""
        query = select(job_t.c.tracking_ciphertext).where(job_t.c.id == job_id)
        value: str | None = (await self._conn.execute(query)).scalar_one_or_none()
        return value

    async def stored_passcodes(self) -> list[tuple[int, str]]:
        query = select(job_t.c.id, job_t.c.passcode_ciphertext).where(job_t.c.passcode_ciphertext.is_not(None))
        return [(row.id, row.passcode_ciphertext) for row in await self._conn.execute(query)]

    # --- writes ----------------------------------------------------------------------------

    async def replace_passcode(self, job_id: int, ciphertext: str) -> None:
        """Re-encrypted ciphertext of the same passcode (key rotation): not a change of the job."""
        await self._conn.execute(update(job_t).where(job_t.c.id == job_id).values(passcode_ciphertext=ciphertext))

    async def add(self, job: RepairJob, customer_id: int, passcode_ciphertext: str | None) -> RepairJob:
        values = _job_values(job)
        values.update(
            branch_id=job.branch_id,
            customer_id=customer_id,
            fault_category=job.fault_category.value,
            fault_description=job.fault_description,
            tier=job.tier.value,
            priority=_PRIORITY[job.tier],
            device_brand=job.device.brand,
            device_model=job.device.model,
            device_imei=job.device.imei,
            device_serial=job.device.serial_number,
            device_colour=job.device.colour,
            device_condition=job.device.condition,
            device_accessories=list(job.device.accessories),
            preapproved_budget_cents=job.preapproved_budget_cents,
            passcode_ciphertext=passcode_ciphertext,
            pickup_failures=0,
            created_at=job.created_at,
        )
        job.id = await self._run.fetchval(_INSERT_JOB_Q, values)
        await self._flush_events(job)
        return job

    async def save(self, job: RepairJob, expected_version: int) -> None:
        """Write the job if nobody else did since `expected_version` was read (else VersionConflict)."""
        assert job.id is not None
        values = _job_values(job)
        values.update(match_id=job.id, match_version=expected_version)
        query = _UPDATE_JOB_Q
        if not job.has_passcode:
            values["passcode_ciphertext"] = None
            query = _UPDATE_JOB_ERASING_Q
        if await self._run.execute(query, values) != 1:
            raise VersionConflict(f"{job.ref} was changed by someone else")
        await self._flush_events(job)

    async def record_events(self, job: RepairJob) -> None:
        """Persist events that are not changes of the job (a passcode reveal)."""
        await self._flush_events(job)

    async def _flush_events(self, job: RepairJob) -> None:
        await self.add_events(job.id or 0, job.pending_events)
        job.pending_events.clear()

    async def add_events(self, job_id: int, events: Sequence[JobEvent]) -> None:
        """History of a job recorded without loading it (its parts moved: a webhook, a receipt)."""
        if events:
            await self._run.execute_many(_INSERT_EVENT_Q, [_event_values(job_id, e) for e in events])

    async def add_events_of_jobs(self, events: Sequence[tuple[int, JobEvent]]) -> None:
        """Events of many jobs, (job id, event) in the order given, in one multi-row INSERT: a sweep records
        a batch of jobs' history in one statement, not one a job. RETURNING (its rows unread) is what makes
        SQLAlchemy send the rows as one INSERT ... VALUES (...), (...) on both dialects ("insertmanyvalues");
        without it asyncpg runs the statement once a row."""
        if events:
            rows = [_event_values(job_id, e) for job_id, e in events]
            await self._conn.execute(event_t.insert().returning(event_t.c.id), rows)


# --- mapping -------------------------------------------------------------------------------


def _job_values(job: RepairJob) -> dict[str, Any]:
    return {
        "due_at": job.due_at,
        "stage": job.stage.value,
        "held_from": job.held_from.value if job.held_from else None,
        "technician_id": job.technician.user_id if job.technician else None,
        "estimate": [line.as_data() for line in job.estimate],
        "approval": _approval_to_dict(job.approval),
        "outcome": job.outcome.value if job.outcome else None,
        "work_started_at": job.work_started_at,
        "pickup_slot": job.pickup_slot,
        "collected_at": job.collected_at,
        "paid_cents": job.paid_cents,
        "version": job.version,
        "updated_at": job.updated_at,
    }


def _event_values(job_id: int | None, event: JobEvent) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "at": event.at,
        "actor": event.actor,
        "kind": event.kind.value,
        "from_stage": event.from_stage.value if event.from_stage else None,
        "to_stage": event.to_stage.value if event.to_stage else None,
        "note": event.note,
        "data": dict(event.data),
    }


def _approval_to_dict(approval: Approval | None) -> dict[str, Any] | None:
    if approval is None:
        return None
    return {
        "approved": approval.approved,
        "by": approval.by,
        "at": approval.at.isoformat(),
        "source": approval.source.value,
        "note": approval.note,
    }


def _to_job(row: Mapping[str, Any]) -> RepairJob:
    approval = row["approval"]
    technician = (
        Assignee(row["technician_id"], row["technician_username"]) if row["technician_id"] is not None else None
    )
    return RepairJob(
        id=row["id"],
        work_started_at=row["work_started_at"],
        branch_id=row["branch_id"],
        branch_code=row["branch_code"],
        customer=Customer(
            id=row["customer_id"],
            name=row["customer_name"],
            phone=row["customer_phone"],
            email=row["customer_email"],
            sms_consent=row["customer_sms_consent"],
            language=row["customer_language"],
        ),
        device=Device(
            brand=row["device_brand"],
            model=row["device_model"],
            imei=row["device_imei"],
            serial_number=row["device_serial"],
            colour=row["device_colour"],
            condition=row["device_condition"],
            accessories=tuple(row["device_accessories"] or ()),
            erased=row["device_imei"] is None and row["device_serial"] is None,
        ),
        fault_category=FaultCategory(row["fault_category"]),
        fault_description=row["fault_description"],
        tier=Tier(row["tier"]),
        due_at=row["due_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        stage=Stage(row["stage"]),
        held_from=Stage(row["held_from"]) if row["held_from"] else None,
        technician=technician,
        estimate=tuple(
            EstimateLine(
                kind=LineKind(line["kind"]),
                description=line["description"],
                quantity=line["quantity"],
                unit_price_cents=line["unit_price_cents"],
                sku=line.get("sku"),
            )
            for line in row["estimate"] or ()
        ),
        approval=Approval(
            approved=approval["approved"],
            by=approval["by"],
            at=datetime.fromisoformat(approval["at"]),
            source=ApprovalSource(approval["source"]),
            note=approval.get("note"),
        )
        if approval
        else None,
        preapproved_budget_cents=row["preapproved_budget_cents"],
        outcome=Outcome(row["outcome"]) if row["outcome"] else None,
        has_passcode=bool(row["has_passcode"]),
        pickup_slot=row["pickup_slot"],
        collected_at=row["collected_at"],
        paid_cents=row["paid_cents"],
        version=row["version"],
    )


def _to_event(row: RowMapping) -> JobEvent:
    return JobEvent(
        id=row["id"],
        kind=EventKind(row["kind"]),
        at=row["at"],
        actor=row["actor"],
        from_stage=Stage(row["from_stage"]) if row["from_stage"] else None,
        to_stage=Stage(row["to_stage"]) if row["to_stage"] else None,
        note=row["note"],
        data=row["data"] or {},
    )


# --- search and cursors ----------------------------------------------------------------------


def _search(q: str) -> Any:
    """Reference, customer name, phone (any form) or IMEI/serial fragment."""
    q = q.strip()
    if parse_ref(q) is not None:  # a reference names one job: no fuzzy matches on its digits
        job_id = _job_id(q)
        return job_t.c.id == job_id if job_id is not None else false()
    clauses: list[Any] = [customer_t.c.name.icontains(q, autoescape=True)]
    digits = "".join(ch for ch in q if ch.isdigit())
    if len(digits) >= 4:
        clauses.append(job_t.c.device_imei.contains(digits, autoescape=True))
        clauses.append(customer_t.c.phone.contains(digits, autoescape=True))
        try:
            clauses.append(customer_t.c.phone == normalise_phone(q))
        except InvalidValue:
            pass
    clauses.append(job_t.c.device_serial == q.upper())
    return or_(*clauses)


def _job_id(ref: str) -> int | None:
    """The id a reference names, if a stored job can have it (AT-99999999999 is no job, not an error)."""
    job_id = parse_ref(ref)
    return job_id if job_id is not None and job_id <= MAX_ROW_ID else None


def _encode_cursor(row: RowMapping) -> str:
    raw = json.dumps([row["priority"], row["due_at"].isoformat(), row["id"]])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        priority, due_at, job_id = json.loads(base64.urlsafe_b64decode(padded))
        return int(priority), datetime.fromisoformat(due_at), int(job_id)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidValue("cursor", "not a cursor this API returned") from exc


__all__ = ["JobFilter", "JobRepository", "Page", "format_ref"]
