"""Random walks through a repair job's life: whatever staff try, the job's invariants hold."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from hypothesis import event as event_
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from domain.errors import DomainError, IllegalTransition, InvalidValue, NotPermitted, RuleConflict
from domain.model import (
    Actor,
    Approval,
    Assignee,
    EstimateLine,
    EventKind,
    HandOver,
    LineKind,
    Outcome,
    RepairJob,
)
from domain.stages import CANCELLABLE, OPEN, PARTS_WAIT_FROM, TERMINAL, TRANSITIONS, Role, Stage, roles_for, targets

from .factories import NOW, make_job

ACTORS = [
    Actor(1, "dana.desk", Role.FRONT_DESK, 1),
    Actor(2, "theo.tech", Role.TECHNICIAN, 1),
    Actor(3, "tina.tech", Role.TECHNICIAN, 1),
    Actor(4, "max.manager", Role.MANAGER, 1),
    Actor(5, "chloe.chain", Role.MANAGER, None),
]
TECHNICIANS = [Assignee(a.user_id, a.username) for a in ACTORS if a.role is Role.TECHNICIAN]
# Events that are changes of the job (each bumps the version); CREATED and PASSCODE_REVEALED are not.
CHANGE_KINDS = {
    EventKind.STAGE_CHANGED,
    EventKind.ESTIMATE_SET,
    EventKind.APPROVAL_RECORDED,
    EventKind.ASSIGNED,
    EventKind.NOTE_ADDED,
}

HAPPY_PATH = {
    Stage.RECEIVED: Stage.DIAGNOSING,
    Stage.DIAGNOSING: Stage.AWAITING_APPROVAL,
    Stage.AWAITING_APPROVAL: Stage.REPAIRING,
    Stage.AWAITING_PARTS: Stage.REPAIRING,
    Stage.REPAIRING: Stage.QUALITY_CHECK,
    Stage.QUALITY_CHECK: Stage.READY_FOR_PICKUP,
}  # from ready_for_pickup: the hand-over

actors = st.sampled_from(ACTORS)
outcomes = st.none() | st.sampled_from(Outcome)
lines = st.lists(
    st.builds(
        EstimateLine,
        kind=st.sampled_from(LineKind),
        description=st.just("line"),
        quantity=st.integers(1, 3),
        unit_price_cents=st.integers(0, 15000),
    ),
    max_size=3,
)


@dataclass(frozen=True)
class Snapshot:
    stage: Stage
    held_from: Stage | None
    version: int
    events: int
    estimate: tuple[EstimateLine, ...]
    approval: Approval | None
    outcome: Outcome | None
    technician: Assignee | None
    has_passcode: bool
    pickup_slot: str | None
    collected_at: datetime | None
    paid_cents: int | None

    @classmethod
    def of(cls, job: RepairJob) -> Snapshot:
        return cls(
            job.stage,
            job.held_from,
            job.version,
            len(job.pending_events),
            job.estimate,
            job.approval,
            job.outcome,
            job.technician,
            job.has_passcode,
            job.pickup_slot,
            job.collected_at,
            job.paid_cents,
        )


class RepairJobMachine(RuleBasedStateMachine):
    job: RepairJob

    @initialize(
        budget=st.none() | st.integers(0, 30000),
        has_passcode=st.booleans(),
    )
    def start(self, budget: int | None, has_passcode: bool) -> None:
        self.job = make_job(id=1, preapproved_budget_cents=budget, has_passcode=has_passcode)
        self.job.record_intake(ACTORS[0])
        self.clock = NOW
        self.terminal: Stage | None = None
        self.passed_ready = False
        self.last_version = self.job.version

    # --- helpers -----------------------------------------------------------------------------

    def tick(self) -> datetime:
        self.clock += timedelta(minutes=7)
        return self.clock

    def attempt(self, change: Callable[[], None], *, bumps_version: bool = True) -> tuple[Snapshot, DomainError | None]:
        """Run a change; a refusal leaves the job untouched, a success adds one event."""
        before = Snapshot.of(self.job)
        try:
            change()
        except DomainError as error:
            assert Snapshot.of(self.job) == before
            return before, error
        assert len(self.job.pending_events) == before.events + 1
        assert self.job.version == before.version + (1 if bumps_version else 0)
        return before, None

    # --- rules -------------------------------------------------------------------------------

    @rule(actor=actors, to=st.sampled_from(Stage), outcome=outcomes)
    def transition_anywhere(self, actor: Actor, to: Stage, outcome: Outcome | None) -> None:
        self.transition(actor, to, outcome)

    @rule(actor=actors, pick=st.integers(0, 63), outcome=outcomes)
    def transition_along_the_table(self, actor: Actor, pick: int, outcome: Outcome | None) -> None:
        """A move that exists from the current stage (holds and cancellations, which cut walks short,
        are left to `transition_anywhere`)."""
        candidates = [t for t in targets(self.job.stage) if t not in (Stage.ON_HOLD, Stage.CANCELLED)] or list(Stage)
        self.transition(actor, candidates[pick % len(candidates)], outcome)

    @rule(actor=actors, outcome=outcomes)
    def advance(self, actor: Actor, outcome: Outcome | None) -> None:
        """The next move of an ordinary repair (or the way back from a hold), so that walks get deep."""
        if self.job.stage is Stage.READY_FOR_PICKUP:
            self.hand_over(actor, True, None, None)
            return
        to = self.job.held_from or HAPPY_PATH.get(self.job.stage, Stage.RECEIVED)
        self.transition(actor, to, outcome)

    def transition(self, actor: Actor, to: Stage, outcome: Outcome | None) -> None:
        now = self.tick()
        before, error = self.attempt(lambda: self.job.transition(actor, to, now, outcome=outcome))
        frm = before.stage
        if (frm, to) not in TRANSITIONS:
            assert isinstance(error, IllegalTransition)
            return
        if actor.role not in roles_for(frm, to):
            assert isinstance(error, NotPermitted)
            return
        if to is Stage.COLLECTED:  # never a move: only the hand-over collects
            assert isinstance(error, IllegalTransition)
            assert to.value not in error.allowed
            return
        if error is not None:
            assert isinstance(error, IllegalTransition)
            assert to.value not in error.allowed or outcome is not None
            return

        event = self.job.pending_events[-1]
        assert event.kind is EventKind.STAGE_CHANGED
        assert (event.from_stage, event.to_stage) == (frm, to)
        assert event.actor == actor.username
        assert self.job.stage is to
        if frm is Stage.ON_HOLD:
            if to is Stage.CANCELLED:
                assert before.held_from in CANCELLABLE
            else:
                assert to is before.held_from
        if to is Stage.ON_HOLD:
            assert self.job.held_from is frm
        if to is Stage.AWAITING_APPROVAL and frm is not Stage.ON_HOLD:
            # Not checked on the way back from a hold: an estimate can be emptied while the job awaits
            # approval (see test_job_rules.test_estimate_awaiting_approval_cannot_be_emptied).
            assert self.job.estimate
        if frm in (Stage.DIAGNOSING, Stage.AWAITING_APPROVAL) and to in (Stage.AWAITING_PARTS, Stage.REPAIRING):
            budget = self.job.preapproved_budget_cents
            total = sum(line.total_cents for line in before.estimate)
            within_budget = bool(before.estimate) and budget is not None and total <= budget
            customer_said_yes = (
                frm is Stage.AWAITING_APPROVAL and before.approval is not None and before.approval.approved
            )
            assert within_budget or customer_said_yes
            assert self.job.approval is not None
            assert self.job.approval.approved
        if to is Stage.READY_FOR_PICKUP:
            self.passed_ready = True
        if to in TERMINAL:
            self.terminal = to
        event_(f"entered {to}")

    @rule(
        actor=actors,
        code_checked=st.booleans(),
        reason=st.none() | st.sampled_from(["", "  ", "customer lost the message"]),
        paid=st.none() | st.integers(0, 20000),
    )
    def hand_over(self, actor: Actor, code_checked: bool, reason: str | None, paid: int | None) -> None:
        now = self.tick()
        hand = HandOver(code_checked, paid, False, reason)
        before, error = self.attempt(lambda: self.job.hand_over(actor, hand, now))
        if before.stage is not Stage.READY_FOR_PICKUP:
            assert isinstance(error, IllegalTransition)
            return
        if actor.role not in roles_for(Stage.READY_FOR_PICKUP, Stage.COLLECTED):
            assert isinstance(error, NotPermitted)
            return
        if not code_checked and actor.role is not Role.MANAGER:
            assert isinstance(error, NotPermitted)
            return
        if not code_checked and not (reason or "").strip():
            assert isinstance(error, InvalidValue) and error.field == "reason"
            return
        assert error is None
        event = self.job.pending_events[-1]
        assert (event.kind, event.from_stage, event.to_stage) == (
            EventKind.STAGE_CHANGED,
            Stage.READY_FOR_PICKUP,
            Stage.COLLECTED,
        )
        assert (event.data["handed_over_by"], event.data["with_code"]) == (actor.username, code_checked)
        assert (self.job.collected_at, self.job.paid_cents, self.job.pickup_slot) == (now, paid, None)
        self.terminal = Stage.COLLECTED
        event_("handed over")

    @rule(actor=actors, new_lines=lines)
    def set_estimate(self, actor: Actor, new_lines: list[EstimateLine]) -> None:
        now = self.tick()
        before, error = self.attempt(lambda: self.job.set_estimate(actor, new_lines, now, None))
        if error is None:
            assert self.job.pending_events[-1].kind is EventKind.ESTIMATE_SET
            assert self.job.estimate == tuple(new_lines)
            assert before.stage in (Stage.RECEIVED, Stage.DIAGNOSING, Stage.AWAITING_APPROVAL) or (
                before.stage is Stage.AWAITING_PARTS and before.approval is None
            )
            assert self.job.approval is None
        elif actor.role is Role.FRONT_DESK:
            assert isinstance(error, NotPermitted)

    @rule(actor=actors, approved=st.booleans())
    def record_approval(self, actor: Actor, approved: bool) -> None:
        now = self.tick()
        before, error = self.attempt(lambda: self.job.record_approval(actor, approved, now, None))
        if error is None:
            assert before.stage is Stage.AWAITING_APPROVAL or (
                before.stage is Stage.AWAITING_PARTS and before.approval is None and before.estimate
            )
            assert self.job.pending_events[-1].kind is EventKind.APPROVAL_RECORDED
            assert self.job.approval is not None
            assert self.job.approval.approved is approved

    @rule(actor=actors)
    def parts_added(self, actor: Actor) -> None:
        now = self.tick()
        before = Snapshot.of(self.job)
        try:
            self.job.parts_added(actor, ["IPH13-SCREEN-OLED"], now)
        except DomainError:
            assert Snapshot.of(self.job) == before
            return
        assert actor.role is not Role.FRONT_DESK
        if before.stage is Stage.ON_HOLD:
            assert self.job.held_from is Stage.AWAITING_PARTS and self.job.version == before.version
        elif before.stage is Stage.AWAITING_PARTS:
            assert self.job.version == before.version  # already waiting: nothing changes
        else:
            assert before.stage not in TERMINAL and before.stage is not Stage.READY_FOR_PICKUP
            assert self.job.stage is Stage.AWAITING_PARTS
            assert self.job.pending_events[-1].to_stage is Stage.AWAITING_PARTS
            assert self.job.version == before.version + 1

    @rule(actor=actors, technician=st.none() | st.sampled_from(TECHNICIANS))
    def assign(self, actor: Actor, technician: Assignee | None) -> None:
        now = self.tick()
        before, error = self.attempt(lambda: self.job.assign(actor, technician, now))
        if error is None:
            assert before.stage not in TERMINAL
            assert self.job.technician == technician
            assert self.job.pending_events[-1].kind is EventKind.ASSIGNED

    @rule(actor=actors, note=st.sampled_from(["called the customer", "", "part ordered"]))
    def add_note(self, actor: Actor, note: str) -> None:
        now = self.tick()
        _, error = self.attempt(lambda: self.job.add_note(actor, note, now))
        assert error is None
        assert self.job.pending_events[-1].kind is EventKind.NOTE_ADDED

    @rule(actor=actors)
    def reveal_passcode(self, actor: Actor) -> None:
        now = self.tick()
        before, error = self.attempt(lambda: self.job.reveal_passcode(actor, now), bumps_version=False)
        assigned = before.technician is not None and before.technician.user_id == actor.user_id
        allowed = actor.role is Role.MANAGER or (actor.role is Role.TECHNICIAN and assigned)
        if not allowed:
            assert isinstance(error, NotPermitted)
        elif not before.has_passcode:
            assert isinstance(error, RuleConflict)
        else:
            assert error is None
            assert self.job.pending_events[-1].kind is EventKind.PASSCODE_REVEALED

    # --- invariants --------------------------------------------------------------------------

    @invariant()
    def stage_is_a_stage(self) -> None:
        assert isinstance(self.job.stage, Stage)

    @invariant()
    def terminal_stages_are_final(self) -> None:
        if self.terminal is not None:
            assert self.job.stage is self.terminal
            assert not self.job.is_open
            assert not self.job.has_passcode

    @invariant()
    def version_only_moves_with_changes(self) -> None:
        assert self.job.version >= self.last_version
        self.last_version = self.job.version
        changes = sum(1 for e in self.job.pending_events if e.kind in CHANGE_KINDS)
        assert self.job.version == 1 + changes

    @invariant()
    def stage_changes_follow_the_table(self) -> None:
        for event in self.job.pending_events:
            if event.kind is EventKind.STAGE_CHANGED and event.data.get("reason") == "parts_added":
                assert event.from_stage in PARTS_WAIT_FROM and event.to_stage is Stage.AWAITING_PARTS
            elif event.kind is EventKind.STAGE_CHANGED:
                assert (event.from_stage, event.to_stage) in TRANSITIONS
        moves = [e for e in self.job.pending_events if e.kind is EventKind.STAGE_CHANGED]
        expected_from = Stage.RECEIVED
        for event in moves:
            assert event.from_stage is expected_from
            expected_from = event.to_stage
        assert self.job.stage is expected_from

    @invariant()
    def held_from_iff_on_hold(self) -> None:
        if self.job.stage is Stage.ON_HOLD:
            assert self.job.held_from in OPEN - {Stage.ON_HOLD}
        else:
            assert self.job.held_from is None

    @invariant()
    def outcome_once_ready(self) -> None:
        if self.job.stage in (Stage.READY_FOR_PICKUP, Stage.COLLECTED) or self.job.held_from is Stage.READY_FOR_PICKUP:
            assert self.passed_ready
        if self.passed_ready:
            assert self.job.outcome is not None
        else:
            assert self.job.outcome is None


RepairJobMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestRepairJobMachine = RepairJobMachine.TestCase
