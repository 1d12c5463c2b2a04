"""Use cases of a repair job, from intake to collection.

Each takes an open unit of work and the acting member of staff, and returns domain objects. The API,
the workers and the CLI all go through these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from domain.errors import InvalidValue, NotPermitted, RuleConflict, VersionConflict
from domain.express import record_override
from domain.model import (
    Actor,
    Assignee,
    Branch,
    Customer,
    Device,
    EstimateLine,
    FaultCategory,
    JobEvent,
    Outcome,
    RepairJob,
    Tier,
)
from domain.notifications import Template
from domain.sla import SlaPolicy
from domain.stages import Role, Stage
from service.persistence.jobs import JobFilter, Page
from service.secrets import PasscodeCipher
from service.settings import Settings
from service.uow import UnitOfWork
from service.usecases import express, pickup, tracking
from service.usecases.notifications import notify

_INTAKE_ROLES = (Role.FRONT_DESK, Role.MANAGER)
_ASSIGNABLE_ROLES = (Role.TECHNICIAN, Role.MANAGER)


@dataclass(frozen=True, slots=True)
class IntakeCommand:
    customer: Customer
    device: Device
    fault_category: FaultCategory
    fault_description: str
    tier: Tier
    preapproved_budget_cents: int | None = None
    passcode: str | None = None
    branch_code: str | None = None  # only for a chain-wide manager, who has no branch of their own
    express_override_reason: str | None = None  # a manager taking express beyond the day's capacity


async def intake(
    uow: UnitOfWork,
    actor: Actor,
    cmd: IntakeCommand,
    *,
    now: datetime,
    sla: SlaPolicy,
    cipher: PasscodeCipher,
    express_capacity: int,
) -> RepairJob:
    """`express_capacity`: the chain's default express intakes a day (a branch may set its own)."""
    if actor.role not in _INTAKE_ROLES:
        raise NotPermitted("only the front desk or a manager takes devices in")
    branch = await _intake_branch(uow, actor, cmd.branch_code)
    override = await express.admit_intake(
        uow, actor, branch, cmd.tier, cmd.express_override_reason, now=now, default_capacity=express_capacity
    )
    customer_id = await uow.customers.add(cmd.customer, now)
    job = RepairJob(
        id=None,
        branch_id=branch.id or 0,
        branch_code=branch.code,
        customer=Customer(
            customer_id,
            cmd.customer.name,
            cmd.customer.phone,
            cmd.customer.email,
            cmd.customer.sms_consent,
            cmd.customer.language,
        ),
        device=cmd.device,
        fault_category=cmd.fault_category,
        fault_description=cmd.fault_description,
        tier=cmd.tier,
        due_at=sla.due_at(cmd.tier, branch.calendar, now),
        created_at=now,
        updated_at=now,
        preapproved_budget_cents=cmd.preapproved_budget_cents,
        has_passcode=bool(cmd.passcode),
    )
    job.record_intake(actor)
    if override:
        record_override(job, override)
    ciphertext = cipher.encrypt(cmd.passcode) if cmd.passcode else None
    job = await uow.jobs.add(job, customer_id, ciphertext)
    await tracking.issue(uow, job, actor, now=now, cipher=cipher)  # the job_received message carries the link
    await notify(uow, job.id or 0, Template.JOB_RECEIVED, now=now)
    return job


async def _intake_branch(uow: UnitOfWork, actor: Actor, branch_code: str | None) -> Branch:
    if actor.branch_id is not None:
        if branch_code is not None:
            own = await uow.branches.by_id(actor.branch_id)
            if own is None or own.code != branch_code:
                raise InvalidValue("branch", "staff take devices in for their own branch only")
            return own
        branch = await uow.branches.by_id(actor.branch_id)
    elif branch_code is None:
        raise InvalidValue("branch", "a chain-wide manager names the branch that takes the device")
    else:
        branch = await uow.branches.by_code(branch_code)
    if branch is None:
        raise InvalidValue("branch", "no such branch")
    return branch


async def get_job(uow: UnitOfWork, actor: Actor, ref: str) -> RepairJob:
    return await uow.jobs.get(actor, ref)


async def list_jobs(uow: UnitOfWork, actor: Actor, filters: JobFilter, limit: int, cursor: str | None) -> Page:
    return await uow.jobs.list(actor, filters, limit, cursor)


async def job_history(uow: UnitOfWork, actor: Actor, ref: str) -> list[JobEvent]:
    job = await uow.jobs.get(actor, ref)
    assert job.id is not None
    return await uow.jobs.events(job.id)


async def _for_change(uow: UnitOfWork, actor: Actor, ref: str, expected_version: int) -> RepairJob:
    job = await uow.jobs.get(actor, ref)
    if job.version != expected_version:
        raise VersionConflict(f"{job.ref} is at version {job.version}, not {expected_version}")
    return job


async def _change(
    uow: UnitOfWork, actor: Actor, ref: str, expected_version: int, mutate: Callable[[RepairJob], None]
) -> RepairJob:
    """Load the version the caller saw, apply one domain change, save it guarded by that version."""
    job = await _for_change(uow, actor, ref, expected_version)
    mutate(job)
    await uow.jobs.save(job, expected_version)
    return job


async def move(
    uow: UnitOfWork,
    actor: Actor,
    ref: str,
    expected_version: int,
    to: Stage,
    *,
    now: datetime,
    settings: Settings,
    cipher: PasscodeCipher,
    note: str | None = None,
    outcome: Outcome | None = None,
) -> RepairJob:
    held: list[bool] = []

    def mutate(job: RepairJob) -> None:
        held.append(job.stage is Stage.ON_HOLD)
        job.transition(actor, to, now, note, outcome)

    job = await _change(uow, actor, ref, expected_version, mutate)
    if held[0]:  # back from hold: the customer was told already, the slot and code still stand
        return job
    if job.stage is Stage.READY_FOR_PICKUP:
        await pickup.prepare(uow, job, now=now, settings=settings, cipher=cipher)  # its message says the code
    else:
        await _notify_stage(uow, job, now)
    return job


async def _notify_stage(uow: UnitOfWork, job: RepairJob, now: datetime) -> None:
    """The stages the customer hears about, in the transaction of the move."""
    if job.stage is Stage.AWAITING_APPROVAL:
        await ask_about_estimate(uow, job, now)


async def ask_about_estimate(uow: UnitOfWork, job: RepairJob, now: datetime) -> None:
    """Send the customer the estimate to approve or decline (through their link)."""
    assert job.id is not None
    await notify(uow, job.id, Template.ESTIMATE_READY, {"total_cents": job.estimate_total_cents}, now=now)


async def set_estimate(
    uow: UnitOfWork,
    actor: Actor,
    ref: str,
    expected_version: int,
    lines: Sequence[EstimateLine],
    *,
    now: datetime,
    note: str | None = None,
) -> RepairJob:
    job = await _change(uow, actor, ref, expected_version, lambda job: job.set_estimate(actor, lines, now, note))
    # A new estimate while the customer's answer is awaited replaces the one they were asked about (or,
    # parts ordered early, is the first they hear of): ask again, unless a pre-approved budget covers it.
    if job.stage in (Stage.AWAITING_APPROVAL, Stage.AWAITING_PARTS) and job.estimate_needs_customer:
        await ask_about_estimate(uow, job, now)
    return job


async def record_approval(
    uow: UnitOfWork,
    actor: Actor,
    ref: str,
    expected_version: int,
    approved: bool,
    *,
    now: datetime,
    note: str | None = None,
) -> RepairJob:
    return await _change(uow, actor, ref, expected_version, lambda job: job.record_approval(actor, approved, now, note))


async def assign(
    uow: UnitOfWork, actor: Actor, ref: str, expected_version: int, technician: str | None, *, now: datetime
) -> RepairJob:
    job = await _for_change(uow, actor, ref, expected_version)
    assignee = await _assignee(uow, actor, job, technician)
    job.assign(actor, assignee, now)
    await uow.jobs.save(job, expected_version)
    return job


async def _assignee(uow: UnitOfWork, actor: Actor, job: RepairJob, username: str | None) -> Assignee | None:
    if username is None:
        return None
    user = await uow.users.by_username(username)
    unknown = InvalidValue("technician", "no active technician by that name")
    if user is None or not user.active or user.role not in _ASSIGNABLE_ROLES:
        raise unknown
    if user.branch_id not in (None, job.branch_id):
        # Another branch's staff do not exist for a branch's own staff (as its jobs do not): only a
        # chain-wide manager, who sees every branch, is told why.
        raise InvalidValue("technician", "the technician works at another branch") if actor.chain_wide else unknown
    return Assignee(user.id, user.username)


async def add_note(
    uow: UnitOfWork, actor: Actor, ref: str, expected_version: int, note: str, *, now: datetime
) -> RepairJob:
    return await _change(uow, actor, ref, expected_version, lambda job: job.add_note(actor, note, now))


async def reveal_passcode(uow: UnitOfWork, actor: Actor, ref: str, *, now: datetime, cipher: PasscodeCipher) -> str:
    job = await uow.jobs.get(actor, ref)
    job.reveal_passcode(actor, now)
    assert job.id is not None
    ciphertext = await uow.jobs.passcode_ciphertext(job.id)
    if ciphertext is None:  # erased between the read and now
        job.pending_events.clear()
        raise RuleConflict("this job holds no passcode")
    plaintext = cipher.decrypt(ciphertext)
    await uow.jobs.record_events(job)
    return plaintext
