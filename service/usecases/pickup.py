"""Pickup: a code and a shelf when a device is ready, the hand-over at the counter, the express lookup.

- `prepare` runs in the transaction of the move to ready_for_pickup: the device gets the branch's first
  free storage slot, the customer a new code (only its salted, keyed hash is stored) through the outbox
  (sealed: the code is in clear only in what is sent).
- `hand_over` checks the customer's code (or takes a manager's reason instead) and moves the job to
  collected. A wrong code is committed (the count, the event, the lock) although the request fails.
- `lookup` finds the job waiting for pickup from its code or its reference, with its slot.

The hash key is derived from ATELIER_JWT_SECRET (`domain.pickup.derive_key`), which is not in the
database: a stolen database alone does not give the codes away. Rotating that secret makes the codes
already sent unusable (a manager then hands those devices over with a reason).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.errors import IllegalTransition, InvalidValue, NotFound, NotPermitted, RuleConflict, VersionConflict
from domain.model import Actor, EventKind, HandOver, JobEvent, RepairJob, format_ref, parse_ref
from domain.notifications import Template
from domain.pickup import (
    SALT_BYTES,
    Attempts,
    Lockout,
    WrongCode,
    derive_key,
    first_free_slot,
    format_code,
    hash_code,
    normalise_code,
    unique_code,
    verify_code,
)
from domain.stages import Role, Stage, roles_for
from service.errors import ConfigurationError, RateLimited
from service.persistence.escalations import MANAGER
from service.persistence.pickup import PickupRepository
from service.secrets import PasscodeCipher
from service.settings import Settings
from service.uow import Database, UnitOfWork
from service.usecases.notifications import notify, seal

DESK_ROLES = (Role.FRONT_DESK, Role.MANAGER)
PICKUP_CODE = "pickup_code"  # the sealed secret the ready-for-pickup message says
# Picks each character of a new code: a CSPRNG (a module attribute, so that a test can script the draws).
draw: Callable[[str], str] = secrets.choice


def code_key(settings: Settings) -> bytes:
    if settings.jwt_secret is None:
        raise ConfigurationError("ATELIER_JWT_SECRET is needed to hash pickup codes")
    return derive_key(settings.jwt_secret.get_secret_value())


def lockout(settings: Settings) -> Lockout:
    return Lockout(settings.pickup_max_failures, timedelta(minutes=settings.pickup_lockout_minutes))


# --- ready for pickup ----------------------------------------------------------------------------


async def prepare(
    uow: UnitOfWork,
    job: RepairJob,
    *,
    now: datetime,
    settings: Settings,
    cipher: PasscodeCipher,
) -> None:
    """The job has just entered ready_for_pickup (not back from a hold): slot, code, message."""
    assert job.id is not None
    repo = PickupRepository(uow.connection)
    own_slots = await repo.branch_slots(job.branch_id)  # locks the branch: one draw of slot and code at a time
    slot = first_free_slot(
        settings.storage_slots if own_slots is None else own_slots, await repo.taken_slots(job.branch_id)
    )
    key = code_key(settings)
    in_use = await repo.codes_in_use(job.branch_id, but=job.id)
    code = unique_code(draw, lambda candidate: any(verify_code(key, candidate, stored) for stored in in_use))
    job.prepare_pickup(slot, now)
    await repo.prepared(job.id, slot, hash_code(key, code, secrets.token_bytes(SALT_BYTES)))
    await uow.jobs.record_events(job)
    if slot is None:
        await _alert_managers(
            uow, job.branch_id, job.id, "no_storage_slot", "no free storage slot: shelve it by hand", now
        )
    outcome = job.outcome.value if job.outcome else None
    sealed = seal(cipher, {PICKUP_CODE: format_code(code)})
    await notify(uow, job.id, Template.READY_FOR_PICKUP, {"outcome": outcome}, now=now, sealed=sealed)


# --- the hand-over -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PickupRequest:
    """What the counter sends: the customer's code, or (a manager only) the reason to do without it."""

    code: str | None = None
    paid_cents: int | None = None
    id_checked: bool = False
    reason: str | None = None


async def hand_over(
    db: Database,
    actor: Actor,
    ref: str,
    request: PickupRequest,
    *,
    now: datetime,
    settings: Settings,
    expected_version: int | None = None,
) -> RepairJob:
    """Hand the device over (collected). Owns its transaction: a wrong code is counted and recorded, and
    committed, before the refusal (WrongCode) reaches the caller."""
    refused: WrongCode | None = None
    async with db.transaction() as uow:
        try:
            return await hand_over_in(uow, actor, ref, request, now=now, settings=settings, expected=expected_version)
        except WrongCode as exc:
            refused = exc  # leaving the block normally commits the count
    assert refused is not None
    raise refused


async def hand_over_in(
    uow: UnitOfWork,
    actor: Actor,
    ref: str,
    request: PickupRequest,
    *,
    now: datetime,
    settings: Settings,
    expected: int | None = None,
) -> RepairJob:
    """The hand-over within the caller's transaction (the demo's seeding, a script). A WrongCode raised from
    here has recorded the failure in that transaction: only a caller that still commits keeps the count
    (as `hand_over` does)."""
    code = _request_code(request)
    job_id = parse_ref(ref)
    repo = PickupRepository(uow.connection)
    state = await repo.state(job_id) if job_id is not None else None  # locks the job's row first
    job = await uow.jobs.get(actor, ref)
    if state is None:
        raise NotFound(f"no job {ref}")
    if expected is not None and job.version != expected:
        raise VersionConflict(f"{job.ref} is at version {job.version}, not {expected}")
    _check_hand_over(job, actor)
    if code is not None:
        if state.attempts.locked(now):
            wait = state.attempts.retry_after(now)
            raise RateLimited(f"{job.ref}: too many wrong codes, pickup is locked", retry_after=wait.total_seconds())
        if state.code_hash is None:
            raise RuleConflict(f"{job.ref} has no pickup code: a manager hands it over with a reason")
        if not verify_code(code_key(settings), code, state.code_hash):
            raise await _refusal(uow, job, actor, state.attempts, now=now, settings=settings)
    version = job.version
    hand = HandOver(code is not None, request.paid_cents, request.id_checked, request.reason)
    job.hand_over(actor, hand, now)
    await uow.jobs.save(job, version)
    await repo.forget_code(job.id or 0)
    return job


def _request_code(request: PickupRequest) -> str | None:
    if request.code is not None:
        if request.reason is not None:
            raise InvalidValue("reason", "a reason is given only for a hand-over without the code")
        return normalise_code(request.code)
    if request.reason is None:
        raise InvalidValue("code", "give the customer's pickup code (a manager may give a reason instead)")
    return None


def _check_hand_over(job: RepairJob, actor: Actor) -> None:
    """Who may hand over and when, checked before any code is: a code that could not be used anyway
    is neither checked nor counted."""
    if job.stage is not Stage.READY_FOR_PICKUP:
        raise IllegalTransition(f"a {job.stage} job is not waiting for pickup", job.allowed_targets(actor.role))
    if actor.role not in roles_for(Stage.READY_FOR_PICKUP, Stage.COLLECTED):
        raise NotPermitted(f"a {actor.role} does not hand devices over")


async def _refusal(
    uow: UnitOfWork, job: RepairJob, actor: Actor, attempts: Attempts, *, now: datetime, settings: Settings
) -> WrongCode:
    """Count a wrong code (the code itself is never recorded), lock pickup at the limit; the refusal to raise."""
    assert job.id is not None
    rule = lockout(settings)
    after = rule.after_failure(attempts, now)
    await PickupRepository(uow.connection).record_attempts(job.id, after)
    failures = attempts.failures + 1
    events = [JobEvent(EventKind.PICKUP_REFUSED, now, actor.username, data={"failures": failures})]
    detail = "wrong pickup code"
    if after.locked_until is not None:
        until = after.locked_until.isoformat()
        events.append(JobEvent(EventKind.PICKUP_LOCKED, now, None, data={"failures": failures, "until": until}))
        message = f"{failures} wrong pickup codes: pickup locked for {settings.pickup_lockout_minutes} minutes"
        await _alert_managers(uow, job.branch_id, job.id, "pickup_locked", message, now, until=until)
        detail += f"; pickup of {job.ref} is locked for {settings.pickup_lockout_minutes} minutes"
    await uow.jobs.add_events(job.id, events)
    return WrongCode(detail)


async def _alert_managers(
    uow: UnitOfWork, branch_id: int, job_id: int, kind: str, message: str, now: datetime, **data: str
) -> None:
    ref = format_ref(job_id)
    await uow.alerts.add(
        branch_id=branch_id,
        job_id=job_id,
        audience=MANAGER,
        kind=kind,
        message=f"{ref}: {message}",
        data={"ref": ref, **data},
        now=now,
    )


# --- express lookup at the desk -------------------------------------------------------------------


async def lookup(
    uow: UnitOfWork, actor: Actor, *, code: str | None, ref: str | None, now: datetime, settings: Settings
) -> RepairJob:
    """The job waiting for pickup with this code (or reference), and so its slot, in one step. Codes are
    compared with the ready jobs of the caller's branch (every branch for a chain-wide manager); a
    job whose pickup is locked is not found by its code."""
    if actor.role not in DESK_ROLES:
        raise NotPermitted("the pickup lookup is for the front desk and managers")
    if (code is None) == (ref is None):
        raise InvalidValue("code", "give either the pickup code or the job's reference")
    if ref is not None:
        job = await uow.jobs.get(actor, ref)
        if job.stage is not Stage.READY_FOR_PICKUP:
            raise RuleConflict(f"{job.ref} is {job.stage}, not waiting for pickup")
        return job
    assert code is not None
    wanted, key = normalise_code(code), code_key(settings)
    ready = await PickupRepository(uow.connection).ready_codes(actor.branch_id, unlocked_at=now)
    # Every hash is checked (no early exit): the time taken says nothing about which job matched.
    found = [job_id for job_id, stored in ready if verify_code(key, wanted, stored)]
    if not found:
        raise NotFound("no device waiting for pickup has this code")
    if len(found) > 1:  # codes are unique per branch only: a chain-wide manager may meet two
        raise RuleConflict("this code matches devices at several branches: look the job up by its reference")
    return await uow.jobs.get(actor, format_ref(found[0]))
