"""The customer's link (no login): issued at intake, re-issued and revoked by staff, opened by the customer
to follow the repair and to answer the estimate.

The token is 32 random bytes (`secrets.token_urlsafe`: 256 bits, nothing to do with the reference). Only
its SHA-256 finds the job, and the token itself is kept encrypted with the data keys, so that staff can
give it again and messages can carry it; a database dump alone opens no link.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

import structlog

from domain.errors import NotFound, NotPermitted, RuleConflict, VersionConflict
from domain.model import Actor, EventKind, JobEvent, RepairJob, format_ref
from domain.sla import SlaPolicy, forecast
from domain.stages import Role
from domain.tracking import (
    TrackingView,
    answer_through_link,
    language_or_default,
    link_expires_at,
    link_open,
    tracking_view,
)
from service.persistence.escalations import STAFF
from service.persistence.tracking import TrackingRepository
from service.secrets import PasscodeCipher
from service.uow import Database, UnitOfWork
from service.usecases.notifications import tracking_url

log = structlog.get_logger("atelier.tracking")

TOKEN_BYTES = 32
# What `token_urlsafe` makes (43 characters today); anything else is no token of ours, refused unread.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{22,128}")
_LINK_ROLES = (Role.FRONT_DESK, Role.MANAGER)
# Reads a job of any branch, once the token has named it; never recorded as an actor.
_LINK_READER = Actor(0, "tracking-link", Role.MANAGER, None)
ANSWER_ATTEMPTS = 2  # a concurrent staff change makes the first fail: read again and retry once


@dataclass(frozen=True, slots=True)
class LinkInfo:
    """What staff see of a job's link."""

    job: RepairJob
    url: str | None  # None: revoked
    issued_at: datetime | None
    expires_at: datetime | None  # None while the device is in our care

    def active(self, now: datetime) -> bool:
        return self.url is not None and (self.expires_at is None or now < self.expires_at)


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def well_formed(token: str) -> bool:
    return _TOKEN.fullmatch(token) is not None


# --- staff -----------------------------------------------------------------------------------------


async def issue(
    uow: UnitOfWork, job: RepairJob, actor: Actor, *, now: datetime, cipher: PasscodeCipher, record: bool = False
) -> str:
    """A new link for the job (replacing any); returns the token. `record`: a tracking_issued event in the
    job's history (a re-issue; at intake the job's creation says it)."""
    assert job.id is not None
    token = new_token()
    await TrackingRepository(uow.connection).store(job.id, token_hash(token), cipher.encrypt(token), now)
    if record:
        await uow.jobs.add_events(job.id, [JobEvent(EventKind.TRACKING_ISSUED, now, actor.username)])
    return token


async def url_of(uow: UnitOfWork, job_id: int, *, cipher: PasscodeCipher, base_url: str) -> str | None:
    """The job's current link (None when revoked), for the answer that hands it to staff."""
    stored = await TrackingRepository(uow.connection).link(job_id)
    return tracking_url(base_url, cipher.decrypt(stored.ciphertext)) if stored else None


async def link_info(
    uow: UnitOfWork, actor: Actor, ref: str, *, cipher: PasscodeCipher, base_url: str, days_after: int
) -> LinkInfo:
    job = await uow.jobs.get(actor, ref)
    assert job.id is not None
    stored = await TrackingRepository(uow.connection).link(job.id)
    expires = link_expires_at(job, days_after)
    if stored is None:
        return LinkInfo(job, None, None, expires)
    return LinkInfo(job, tracking_url(base_url, cipher.decrypt(stored.ciphertext)), stored.issued_at, expires)


async def reissue(
    uow: UnitOfWork,
    actor: Actor,
    ref: str,
    *,
    now: datetime,
    cipher: PasscodeCipher,
    base_url: str,
    days_after: int,
) -> LinkInfo:
    """Revoke the job's link (if any) and issue a new one: a link sent to the wrong person, or lost."""
    _check_role(actor)
    job = await uow.jobs.get(actor, ref)
    if not link_open(job, days_after, now):
        raise RuleConflict(f"{job.ref} left our care more than {days_after} days ago: its link cannot be renewed")
    await revoke_link(uow, actor, job, now=now)
    await issue(uow, job, actor, now=now, cipher=cipher, record=True)
    return await link_info(uow, actor, ref, cipher=cipher, base_url=base_url, days_after=days_after)


async def revoke(uow: UnitOfWork, actor: Actor, ref: str, *, now: datetime) -> None:
    """The link stops working at once; revoking a job without one changes nothing."""
    _check_role(actor)
    await revoke_link(uow, actor, await uow.jobs.get(actor, ref), now=now)


async def revoke_link(uow: UnitOfWork, actor: Actor, job: RepairJob, *, now: datetime) -> bool:
    assert job.id is not None
    revoked = await TrackingRepository(uow.connection).revoke(job.id)
    if revoked:
        await uow.jobs.add_events(job.id, [JobEvent(EventKind.TRACKING_REVOKED, now, actor.username)])
    return revoked


def _check_role(actor: Actor) -> None:
    if actor.role not in _LINK_ROLES:
        raise NotPermitted("only the front desk or a manager issues or revokes a customer's link")


# --- the customer ----------------------------------------------------------------------------------


async def find_job(uow: UnitOfWork, token: str, *, now: datetime, days_after: int) -> RepairJob:
    """The job a live link names. Unknown, revoked and expired links are all the same 404: the answer
    tells a guesser nothing."""
    job_id = await TrackingRepository(uow.connection).job_id_for(token_hash(token)) if well_formed(token) else None
    if job_id is None:
        raise NotFound("no such tracking link")
    job = await uow.jobs.get(_LINK_READER, format_ref(job_id))
    if not link_open(job, days_after, now):
        raise NotFound("no such tracking link")
    return job


async def view(
    uow: UnitOfWork, job: RepairJob, *, now: datetime, sla: SlaPolicy, days_after: int, language: str | None = None
) -> TrackingView:
    """The public view of the job, in `language` or else the customer's."""
    assert job.id is not None
    branch = await uow.branches.by_id(job.branch_id)
    assert branch is not None
    lines = await uow.lines.for_job(job.id)
    outlook = forecast(job.tier, job.due_at, lines, branch.calendar, sla, now)
    return tracking_view(
        job,
        branch,
        lines,
        outlook,
        language=language_or_default(language or job.customer.language),
        now=now,
        days_after=days_after,
    )


async def answer(
    db: Database, token: str, approved: bool, note: str | None, *, now: datetime, days_after: int
) -> RepairJob:
    """The customer approves or declines the estimate through their link: recorded as their own decision
    with the job's version bump, and the branch's staff are alerted. Guarded by the version it read, so
    a concurrent staff change is never overwritten: the answer is read and applied again once, and a
    second conflict is a 409 (the customer sends it again)."""
    for attempt in range(1, ANSWER_ATTEMPTS + 1):
        try:
            async with db.transaction() as uow:
                return await _answer_once(uow, token, approved, note, now=now, days_after=days_after)
        except VersionConflict:
            log.info("tracking_answer_conflict", attempt=attempt)
    raise RuleConflict("the repair changed while you answered: please send your answer again")


async def _answer_once(
    uow: UnitOfWork, token: str, approved: bool, note: str | None, *, now: datetime, days_after: int
) -> RepairJob:
    job = await find_job(uow, token, now=now, days_after=days_after)
    version = job.version
    if not answer_through_link(job, approved, now, note):
        return job  # the same answer, sent twice: it stands, nobody is told again
    await uow.jobs.save(job, version)
    assert job.id is not None
    verb = "approved" if approved else "declined"
    await uow.alerts.add(
        branch_id=job.branch_id,
        job_id=job.id,
        audience=STAFF,
        kind="customer_answer",
        message=f"{job.ref}: the customer {verb} the estimate through their link",
        data={"ref": job.ref, "approved": approved, "note": note},
        now=now,
    )
    return job
