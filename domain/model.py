"""Entities and value objects of the repair world, and the rules for changing a repair job."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from domain.calendar import BusinessCalendar, OpeningHours, zone
from domain.errors import IllegalTransition, InvalidValue, NotPermitted, RuleConflict
from domain.stages import CANCELLABLE, PARTS_WAIT_FROM, TERMINAL, Role, Stage, roles_for, targets

REF_PREFIX = "AT-"
_REF = re.compile(r"^AT-(\d{6,})$", re.IGNORECASE)


def format_ref(job_id: int) -> str:
    """The reference staff read aloud and print on tickets (AT-000123)."""
    return f"{REF_PREFIX}{job_id:06d}"


def parse_ref(ref: str) -> int | None:
    match = _REF.match(ref.strip())
    return int(match.group(1)) if match else None


class Tier(StrEnum):
    STANDARD = "standard"
    EXPRESS = "express"


class FaultCategory(StrEnum):
    SCREEN = "screen"
    BATTERY = "battery"
    CHARGING_PORT = "charging_port"
    WATER_DAMAGE = "water_damage"
    CAMERA = "camera"
    BACK_GLASS = "back_glass"
    SOFTWARE = "software"
    OTHER = "other"


class Outcome(StrEnum):
    REPAIRED = "repaired"
    NOT_REPAIRED = "not_repaired"
    DECLINED = "declined"


class LineKind(StrEnum):
    PART = "part"
    LABOUR = "labour"


class ApprovalSource(StrEnum):
    STAFF = "staff"  # the customer's answer, taken by a member of staff
    CUSTOMER = "customer"  # the customer's own answer, through their tracking link
    PREAPPROVED_BUDGET = "preapproved_budget"  # within what the customer agreed at intake


class EventKind(StrEnum):
    CREATED = "created"
    STAGE_CHANGED = "stage_changed"
    ESTIMATE_SET = "estimate_set"
    APPROVAL_RECORDED = "approval_recorded"
    ASSIGNED = "assigned"
    NOTE_ADDED = "note_added"
    PASSCODE_REVEALED = "passcode_revealed"
    PART_ADDED = "part_added"
    PART_ORDERED = "part_ordered"
    ETA_REVISED = "eta_revised"
    PART_BACKORDERED = "part_backordered"
    PART_SHIPPED = "part_shipped"
    PART_RECEIVED = "part_received"
    PART_FITTED = "part_fitted"
    PART_CANCELLED = "part_cancelled"
    PARTS_READY = "parts_ready"
    SUPPLIER_CHOSEN = "supplier_chosen"
    ORDER_REFUSED = "order_refused"
    ORDER_CANCELLED = "order_cancelled"
    REMINDED = "reminded"  # an uncollected device's customer was reminded
    NOTIFICATION_SENT = "notification_sent"
    NOTIFICATION_FAILED = "notification_failed"
    NOTIFICATION_DELAYED = "notification_delayed"  # an SMS held back by quiet hours, with when it goes
    NOTIFICATION_SKIPPED = "notification_skipped"  # not sent, with why (no consent, no longer relevant...)
    NOTIFICATION_RETRY = "notification_retry"  # a retryable failure: tried again later
    ESCALATED = "escalated"
    RESOURCED = "resourced"
    RESOURCE_PROPOSED = "resource_proposed"
    PICKUP_PREPARED = "pickup_prepared"  # a pickup code sent and a storage slot given
    PICKUP_REFUSED = "pickup_refused"  # a wrong pickup code
    PICKUP_LOCKED = "pickup_locked"  # too many wrong codes: pickup locked for a while
    TRACKING_ISSUED = "tracking_issued"
    TRACKING_REVOKED = "tracking_revoked"
    CUSTOMER_ERASED = "customer_erased"


# Stages before the repair starts, where the customer's approval may still be pending.
HAND_OVER_ONLY = "a device is handed over with its pickup code: POST /api/v1/jobs/{ref}/pickup"
CUSTOMER_ACTOR = "customer"  # who acted, in the history, when the customer answered through their link

_BEFORE_REPAIR = (Stage.DIAGNOSING, Stage.AWAITING_APPROVAL, Stage.AWAITING_PARTS)
_ESTIMATING = (Stage.RECEIVED, Stage.DIAGNOSING, Stage.AWAITING_APPROVAL, Stage.AWAITING_PARTS)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a member of staff with one role, and one branch unless a chain-wide manager."""

    user_id: int
    username: str
    role: Role
    branch_id: int | None

    @property
    def chain_wide(self) -> bool:
        return self.role is Role.MANAGER and self.branch_id is None


@dataclass(frozen=True, slots=True)
class Branch:
    id: int | None
    code: str
    name: str
    timezone: str
    hours: OpeningHours

    @property
    def calendar(self) -> BusinessCalendar:
        return BusinessCalendar(self.hours, zone(self.timezone))


@dataclass(frozen=True, slots=True)
class Customer:
    id: int | None
    name: str
    phone: str  # E.164
    email: str | None = None
    sms_consent: bool = False
    language: str = "fr"  # of the messages we send: "fr" or "en"


@dataclass(frozen=True, slots=True)
class Device:
    brand: str
    model: str
    imei: str | None = None
    serial_number: str | None = None
    colour: str | None = None
    condition: str = ""
    accessories: tuple[str, ...] = ()
    erased: bool = False  # its identifiers were erased with its owner's personal data

    def __post_init__(self) -> None:
        if not self.imei and not self.serial_number and not self.erased:
            raise InvalidValue("device", "an IMEI or a serial number is required")


@dataclass(frozen=True, slots=True)
class EstimateLine:
    kind: LineKind
    description: str
    quantity: int
    unit_price_cents: int
    sku: str | None = None

    def __post_init__(self) -> None:
        if self.quantity < 1:
            raise InvalidValue("quantity", "must be at least 1")
        if self.unit_price_cents < 0:
            raise InvalidValue("unit_price_cents", "must not be negative")

    @property
    def total_cents(self) -> int:
        return self.quantity * self.unit_price_cents

    def as_data(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "description": self.description,
            "quantity": self.quantity,
            "unit_price_cents": self.unit_price_cents,
            "sku": self.sku,
        }


def needs_answer(*, estimate_total_cents: int | None, budget_cents: int | None, answered: bool) -> bool:
    """Whether the repair waits for the customer's answer: an estimate not answered yet that no pre-approved
    budget covers. One rule for the job itself and for the bench queue, which reads stored columns."""
    if answered or estimate_total_cents is None:
        return False
    return budget_cents is None or estimate_total_cents > budget_cents


@dataclass(frozen=True, slots=True)
class Approval:
    approved: bool
    by: str
    at: datetime
    source: ApprovalSource
    note: str | None = None


@dataclass(frozen=True, slots=True)
class HandOver:
    """What the counter records when a device leaves: whether the customer's code was checked (else a
    manager's reason), the amount paid and whether an identity document was seen."""

    code_checked: bool
    paid_cents: int | None = None
    id_checked: bool = False
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.paid_cents is not None and self.paid_cents < 0:
            raise InvalidValue("paid_cents", "must not be negative")


@dataclass(frozen=True, slots=True)
class JobEvent:
    """One entry of a job's history. `data` carries what changed (never the passcode)."""

    kind: EventKind
    at: datetime
    actor: str | None
    from_stage: Stage | None = None
    to_stage: Stage | None = None
    note: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True, slots=True)
class Assignee:
    user_id: int
    username: str


@dataclass(slots=True)
class RepairJob:
    """A device in our hands, from intake to collection. Every change bumps `version` and records a
    JobEvent in `pending_events`, which the unit of work persists with the change."""

    id: int | None
    branch_id: int
    customer: Customer
    device: Device
    fault_category: FaultCategory
    fault_description: str
    tier: Tier
    due_at: datetime
    created_at: datetime
    updated_at: datetime
    stage: Stage = Stage.RECEIVED
    held_from: Stage | None = None
    technician: Assignee | None = None
    estimate: tuple[EstimateLine, ...] = ()
    approval: Approval | None = None
    preapproved_budget_cents: int | None = None
    outcome: Outcome | None = None
    has_passcode: bool = False
    work_started_at: datetime | None = None  # first time the repair started: cancelling is over then
    pickup_slot: str | None = None  # the shelf/bin holding the device while it waits for its owner
    collected_at: datetime | None = None
    paid_cents: int | None = None  # paid at the hand-over
    version: int = 1
    branch_code: str = ""  # for display; `branch_id` is what scopes the job
    pending_events: list[JobEvent] = field(default_factory=list)

    @property
    def ref(self) -> str:
        if self.id is None:
            raise RuleConflict("the job has no reference before it is stored")
        return format_ref(self.id)

    @property
    def estimate_total_cents(self) -> int:
        return sum(line.total_cents for line in self.estimate)

    @property
    def within_budget(self) -> bool:
        return (
            bool(self.estimate)
            and self.preapproved_budget_cents is not None
            and self.estimate_total_cents <= self.preapproved_budget_cents
        )

    @property
    def is_open(self) -> bool:
        return self.stage not in TERMINAL

    # --- changes ---------------------------------------------------------------------------

    def record_intake(self, actor: Actor) -> None:
        self.pending_events.append(
            JobEvent(
                EventKind.CREATED,
                self.created_at,
                actor.username,
                to_stage=self.stage,
                data={"tier": self.tier.value, "due_at": self.due_at.isoformat()},
            )
        )

    def transition(
        self, actor: Actor, to: Stage, now: datetime, note: str | None = None, outcome: Outcome | None = None
    ) -> None:
        self._check_move(actor, to, outcome)
        if to is Stage.COLLECTED:  # only `hand_over`, which checks the customer's code
            where = HAND_OVER_ONLY.format(ref=format_ref(self.id) if self.id is not None else "{ref}")
            raise IllegalTransition(where, self.allowed_targets(actor.role))
        self._move(actor, to, now, note, outcome, {})

    def prepare_pickup(self, slot: str | None, now: datetime) -> None:
        """The device is on its shelf and the customer has been sent a pickup code (part of the move to
        ready_for_pickup: no new version)."""
        if self.stage is not Stage.READY_FOR_PICKUP:
            raise RuleConflict(f"a {self.stage} job is not waiting for pickup")
        self.pickup_slot = slot
        self.pending_events.append(JobEvent(EventKind.PICKUP_PREPARED, now, None, data={"slot": slot}))

    def hand_over(self, actor: Actor, hand: HandOver, now: datetime) -> None:
        """The device leaves with its owner: with the right pickup code, or a manager's recorded reason."""
        self._check_move(actor, Stage.COLLECTED, None)
        if not hand.code_checked:
            if actor.role is not Role.MANAGER:
                raise NotPermitted("only a manager may hand a device over without its pickup code")
            if not (hand.reason or "").strip():
                raise InvalidValue("reason", "say why the device is handed over without its code")
        data: dict[str, Any] = {
            "handed_over_by": actor.username,
            "with_code": hand.code_checked,
            "paid_cents": hand.paid_cents,
            "id_checked": hand.id_checked,
            "slot": self.pickup_slot,
        }
        if not hand.code_checked:
            data["reason"] = hand.reason
        self.pickup_slot = None
        self.collected_at = now
        self.paid_cents = hand.paid_cents
        self._move(actor, Stage.COLLECTED, now, hand.reason, None, data)

    def _check_move(self, actor: Actor, to: Stage, outcome: Outcome | None) -> None:
        frm = self.stage
        if to not in targets(frm):
            raise IllegalTransition(f"a job cannot move from {frm} to {to}", self.allowed_targets(actor.role))
        if actor.role not in roles_for(frm, to):
            raise NotPermitted(f"a {actor.role} may not move a job from {frm} to {to}")
        reason = self._precondition_failure(to, outcome)
        if reason:
            raise IllegalTransition(reason, self.allowed_targets(actor.role))

    def _move(
        self, actor: Actor, to: Stage, now: datetime, note: str | None, outcome: Outcome | None, data: dict[str, Any]
    ) -> None:
        frm = self.stage
        if frm in _BEFORE_REPAIR and to in (Stage.AWAITING_PARTS, Stage.REPAIRING):
            self._approve_from_budget_if_needed(now, data)
        if to is Stage.READY_FOR_PICKUP and frm is not Stage.ON_HOLD:
            self.outcome = self._outcome_for_pickup(outcome)
            data["outcome"] = self.outcome.value
        if to is Stage.REPAIRING and self.work_started_at is None:
            self.work_started_at = now
        if to is Stage.ON_HOLD:
            self.held_from = frm
        elif frm is Stage.ON_HOLD:
            self.held_from = None
        if to in (Stage.DIAGNOSING, Stage.REPAIRING) and self.technician is None and actor.role is Role.TECHNICIAN:
            self.technician = Assignee(actor.user_id, actor.username)
            data["technician"] = actor.username
        if to in TERMINAL and self.has_passcode:
            self.has_passcode = False  # the unlock code is erased once the device leaves our care
            data["passcode_erased"] = True
        self.stage = to
        self._changed(JobEvent(EventKind.STAGE_CHANGED, now, actor.username, frm, to, note, data))

    def set_estimate(self, actor: Actor, lines: Sequence[EstimateLine], now: datetime, note: str | None) -> None:
        if actor.role not in (Role.TECHNICIAN, Role.MANAGER):
            raise NotPermitted("only a technician or a manager writes an estimate")
        if self.stage not in _ESTIMATING or (self.stage is Stage.AWAITING_PARTS and self.approval is not None):
            raise RuleConflict(f"the estimate cannot change once the job is {self.stage} and approved")
        if not lines:
            raise InvalidValue("lines", "an estimate has at least one line")
        self.estimate = tuple(lines)
        data: dict[str, Any] = {
            "lines": [line.as_data() for line in self.estimate],
            "total_cents": self.estimate_total_cents,
        }
        if self.approval is not None:
            self.approval = None  # a new estimate needs a new answer from the customer
            data["approval_reset"] = True
        self._changed(JobEvent(EventKind.ESTIMATE_SET, now, actor.username, note=note, data=data))

    def record_approval(self, actor: Actor, approved: bool, now: datetime, note: str | None) -> None:
        """The customer's answer, taken by a member of staff (at the counter, on the phone)."""
        self._answer(approved, actor.username, ApprovalSource.STAFF, now, note)

    def record_customer_answer(self, approved: bool, now: datetime, note: str | None) -> None:
        """The customer's own answer, given through their tracking link."""
        self._answer(approved, CUSTOMER_ACTOR, ApprovalSource.CUSTOMER, now, note)

    @property
    def awaits_answer(self) -> bool:
        """Whether the customer's answer to the estimate is expected now. A job waiting for parts before the
        customer answered (parts were added early) still takes the answer."""
        unanswered = self.stage is Stage.AWAITING_PARTS and bool(self.estimate) and self.approval is None
        return self.stage is Stage.AWAITING_APPROVAL or unanswered

    @property
    def estimate_needs_customer(self) -> bool:
        """The customer must be asked about the estimate: an answer is expected and no pre-approved budget
        covers it (a job whose parts were ordered early included)."""
        total = self.estimate_total_cents if self.estimate else None
        answered = self.approval is not None
        return self.awaits_answer and needs_answer(
            estimate_total_cents=total, budget_cents=self.preapproved_budget_cents, answered=answered
        )

    def _answer(self, approved: bool, by: str, source: ApprovalSource, now: datetime, note: str | None) -> None:
        if not self.awaits_answer:
            raise RuleConflict("the customer's answer is recorded while the job awaits approval")
        self.approval = Approval(approved, by, now, source, note)
        data = {"approved": approved, "total_cents": self.estimate_total_cents, "source": source.value}
        self._changed(JobEvent(EventKind.APPROVAL_RECORDED, now, by, note=note, data=data))

    def assign(self, actor: Actor, technician: Assignee | None, now: datetime) -> None:
        if actor.role not in (Role.TECHNICIAN, Role.MANAGER):
            raise NotPermitted("only a technician or a manager assigns jobs")
        if not self.is_open:
            raise RuleConflict(f"a {self.stage} job cannot be reassigned")
        previous = self.technician.username if self.technician else None
        self.technician = technician
        data = {"from": previous, "to": technician.username if technician else None}
        self._changed(JobEvent(EventKind.ASSIGNED, now, actor.username, data=data))

    def parts_added(self, actor: Actor, skus: Sequence[str], now: datetime) -> None:
        """Waiting for parts is a fact, not a choice: a job that gets part lines waits for them (approval
        is still needed before the repair starts)."""
        if actor.role not in (Role.TECHNICIAN, Role.MANAGER):
            raise NotPermitted("only a technician or a manager adds parts to a job")
        held = self.stage is Stage.ON_HOLD and self.held_from in PARTS_WAIT_FROM
        if self.stage not in PARTS_WAIT_FROM and not held:
            raise RuleConflict(f"a {self.stage} job takes no more parts")
        if self.stage is Stage.ON_HOLD:
            self.held_from = Stage.AWAITING_PARTS
        elif self.stage is not Stage.AWAITING_PARTS:
            frm, self.stage = self.stage, Stage.AWAITING_PARTS
            data = {"reason": "parts_added", "skus": list(skus)}
            self._changed(JobEvent(EventKind.STAGE_CHANGED, now, actor.username, frm, Stage.AWAITING_PARTS, data=data))

    def record(self, events: Sequence[JobEvent]) -> None:
        """History that is not a change of the job itself (its parts moved): no new version, so a
        supplier's update never makes a technician's edit stale."""
        self.pending_events.extend(events)

    def add_note(self, actor: Actor, note: str, now: datetime) -> None:
        self._changed(JobEvent(EventKind.NOTE_ADDED, now, actor.username, note=note))

    def reveal_passcode(self, actor: Actor, now: datetime) -> None:
        """Reading the unlock code is not a change of the job, but it is always on the record."""
        assigned = self.technician is not None and self.technician.user_id == actor.user_id
        if not (actor.role is Role.MANAGER or (actor.role is Role.TECHNICIAN and assigned)):
            raise NotPermitted("only the assigned technician or a manager may read the passcode")
        if not self.has_passcode:
            raise RuleConflict("this job holds no passcode")
        self.pending_events.append(JobEvent(EventKind.PASSCODE_REVEALED, now, actor.username))

    # --- rules -----------------------------------------------------------------------------

    def allowed_targets(self, role: Role) -> list[str]:
        """The stages this role can move this job to now (for 409 bodies and stage buttons). Collection
        is not among them: it is the hand-over, with the customer's pickup code."""
        return [
            to.value
            for to in targets(self.stage)
            if to is not Stage.COLLECTED
            and role in roles_for(self.stage, to)
            and self._precondition_failure(to, None) is None
        ]

    def _precondition_failure(self, to: Stage, outcome: Outcome | None) -> str | None:
        frm = self.stage
        if to is Stage.CANCELLED and self.work_started_at is not None:
            return "work has started: the job can no longer be cancelled"
        if frm is Stage.ON_HOLD:
            if to is Stage.CANCELLED:
                return None if self.held_from in CANCELLABLE else "work has started: the job can no longer be cancelled"
            return None if to is self.held_from else f"a held job returns to {self.held_from}"
        if to is Stage.AWAITING_APPROVAL and not self.estimate:
            return "an estimate is needed before asking for approval"
        if frm is Stage.DIAGNOSING and to in (Stage.AWAITING_PARTS, Stage.REPAIRING) and not self.within_budget:
            return "skipping approval needs an estimate within the pre-approved budget"
        if frm in (Stage.AWAITING_APPROVAL, Stage.AWAITING_PARTS) and to in (Stage.AWAITING_PARTS, Stage.REPAIRING):
            if self.approval is not None and not self.approval.approved:
                return "the customer declined the estimate"
            if self.approval is None and not self.within_budget:
                return "the customer has not approved the estimate"
        if to is Stage.READY_FOR_PICKUP:
            return self._outcome_failure(outcome)
        return None

    def _outcome_failure(self, outcome: Outcome | None) -> str | None:
        frm = self.stage
        if frm is Stage.QUALITY_CHECK:
            if outcome in (None, Outcome.REPAIRED, Outcome.NOT_REPAIRED):
                return None
            return "the outcome after a check is repaired or not_repaired"
        if frm is Stage.AWAITING_APPROVAL:
            declined = self.approval is not None and not self.approval.approved
            if outcome is Outcome.NOT_REPAIRED or (declined and outcome in (None, Outcome.DECLINED)):
                return None
            return "record the customer's refusal first (or give outcome not_repaired)"
        # From diagnosing or repairing the device goes back unrepaired.
        if outcome in (None, Outcome.NOT_REPAIRED):
            return None
        return "a device that skips the check goes back not_repaired"

    def _outcome_for_pickup(self, outcome: Outcome | None) -> Outcome:
        if outcome is not None:
            return outcome
        if self.stage is Stage.QUALITY_CHECK:
            return Outcome.REPAIRED
        if self.stage is Stage.AWAITING_APPROVAL:
            return Outcome.DECLINED
        return Outcome.NOT_REPAIRED

    def _approve_from_budget_if_needed(self, now: datetime, data: dict[str, Any]) -> None:
        if self.approval is not None:  # the customer's own answer always stands
            return
        self.approval = Approval(True, "preapproved_budget", now, ApprovalSource.PREAPPROVED_BUDGET)
        data["approval"] = {"approved": True, "source": ApprovalSource.PREAPPROVED_BUDGET.value}

    def _changed(self, event: JobEvent) -> None:
        self.version += 1
        self.updated_at = event.at
        self.pending_events.append(event)
