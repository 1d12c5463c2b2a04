"""The rules for changing a repair job: stages, roles, estimates, approvals, passcodes."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from domain.errors import DomainError, IllegalTransition, InvalidValue, NotPermitted, RuleConflict
from domain.model import (
    ApprovalSource,
    Assignee,
    Device,
    EstimateLine,
    EventKind,
    HandOver,
    JobEvent,
    LineKind,
    Outcome,
    RepairJob,
    format_ref,
    parse_ref,
)
from domain.stages import CANCELLABLE, OPEN, TERMINAL, TRANSITIONS, Role, Stage, roles_for, targets

from .factories import CHAIN_MANAGER, DESK, LATER, MANAGER, NOW, OTHER_TECH, TECH, drive_to, estimate, make_job


def changes_once(job: RepairJob, change: Callable[[], None]) -> JobEvent:
    """Run `change`, check it bumped the version by one and recorded one event; return that event."""
    version, events = job.version, len(job.pending_events)
    change()
    assert job.version == version + 1
    assert len(job.pending_events) == events + 1
    return job.pending_events[-1]


def refused(job: RepairJob, change: Callable[[], None], error: type[DomainError]) -> DomainError:
    """Run `change`, check it raised `error` and left the job as it was."""
    before = (job.stage, job.version, len(job.pending_events), job.estimate, job.approval, job.outcome, job.held_from)
    with pytest.raises(error) as info:
        change()
    after = (job.stage, job.version, len(job.pending_events), job.estimate, job.approval, job.outcome, job.held_from)
    assert after == before
    return info.value


def assert_stage_event(event: JobEvent, frm: Stage, to: Stage, actor: str) -> None:
    assert event.kind is EventKind.STAGE_CHANGED
    assert (event.from_stage, event.to_stage) == (frm, to)
    assert event.actor == actor


# --- happy path ------------------------------------------------------------------------------


def test_happy_path_from_intake_to_collection() -> None:
    job = make_job()
    job.record_intake(DESK)
    assert job.version == 1
    assert [e.kind for e in job.pending_events] == [EventKind.CREATED]

    event = changes_once(job, lambda: job.transition(TECH, Stage.DIAGNOSING, LATER))
    assert_stage_event(event, Stage.RECEIVED, Stage.DIAGNOSING, TECH.username)
    assert job.technician == Assignee(TECH.user_id, TECH.username)
    assert event.data["technician"] == TECH.username
    assert job.updated_at == LATER

    event = changes_once(job, lambda: job.set_estimate(TECH, estimate(8900, 2500), LATER, "screen + labour"))
    assert event.kind is EventKind.ESTIMATE_SET
    assert job.estimate_total_cents == 11400
    assert event.data["total_cents"] == 11400

    event = changes_once(job, lambda: job.transition(TECH, Stage.AWAITING_APPROVAL, LATER))
    assert_stage_event(event, Stage.DIAGNOSING, Stage.AWAITING_APPROVAL, TECH.username)

    event = changes_once(job, lambda: job.record_approval(DESK, True, LATER, "customer said yes by phone"))
    assert event.kind is EventKind.APPROVAL_RECORDED
    assert job.approval is not None
    assert job.approval.approved
    assert job.approval.source is ApprovalSource.STAFF
    assert job.approval.by == DESK.username

    event = changes_once(job, lambda: job.transition(TECH, Stage.REPAIRING, LATER))
    assert_stage_event(event, Stage.AWAITING_APPROVAL, Stage.REPAIRING, TECH.username)
    assert job.approval.source is ApprovalSource.STAFF  # the customer's answer is kept

    event = changes_once(job, lambda: job.transition(TECH, Stage.QUALITY_CHECK, LATER))
    assert_stage_event(event, Stage.REPAIRING, Stage.QUALITY_CHECK, TECH.username)

    event = changes_once(job, lambda: job.transition(TECH, Stage.READY_FOR_PICKUP, LATER))
    assert_stage_event(event, Stage.QUALITY_CHECK, Stage.READY_FOR_PICKUP, TECH.username)
    assert job.outcome is Outcome.REPAIRED
    assert event.data["outcome"] == "repaired"
    assert job.has_passcode

    event = changes_once(job, lambda: job.hand_over(DESK, HandOver(code_checked=True, paid_cents=11400), LATER))
    assert_stage_event(event, Stage.READY_FOR_PICKUP, Stage.COLLECTED, DESK.username)
    assert (job.collected_at, job.paid_cents) == (LATER, 11400)
    assert job.has_passcode is False
    assert event.data["passcode_erased"] is True
    assert not job.is_open
    assert job.version == 9
    assert job.outcome is Outcome.REPAIRED


def test_awaiting_parts_then_repairing() -> None:
    job = drive_to(make_job(), Stage.AWAITING_PARTS)
    event = changes_once(job, lambda: job.transition(TECH, Stage.REPAIRING, LATER))
    assert_stage_event(event, Stage.AWAITING_PARTS, Stage.REPAIRING, TECH.username)


def test_failed_quality_check_goes_back_to_the_bench() -> None:
    job = drive_to(make_job(), Stage.QUALITY_CHECK)
    event = changes_once(job, lambda: job.transition(TECH, Stage.REPAIRING, LATER, note="still flickers"))
    assert_stage_event(event, Stage.QUALITY_CHECK, Stage.REPAIRING, TECH.username)
    assert event.note == "still flickers"


def test_technician_is_assigned_only_when_nobody_is() -> None:
    job = drive_to(make_job(), Stage.AWAITING_APPROVAL)
    job.record_approval(DESK, True, NOW, None)
    job.transition(OTHER_TECH, Stage.REPAIRING, NOW)
    assert job.technician == Assignee(TECH.user_id, TECH.username)


def test_a_manager_starting_diagnosis_is_not_assigned() -> None:
    job = make_job()
    job.transition(MANAGER, Stage.DIAGNOSING, NOW)
    assert job.technician is None


# --- approval preconditions ------------------------------------------------------------------


def test_asking_for_approval_needs_an_estimate() -> None:
    job = drive_to(make_job(), Stage.DIAGNOSING)
    error = refused(job, lambda: job.transition(TECH, Stage.AWAITING_APPROVAL, NOW), IllegalTransition)
    assert isinstance(error, IllegalTransition)
    assert sorted(error.allowed) == sorted([Stage.READY_FOR_PICKUP.value, Stage.ON_HOLD.value])
    assert error.allowed == job.allowed_targets(Role.TECHNICIAN)
    assert Stage.AWAITING_APPROVAL.value not in error.allowed


@pytest.mark.parametrize("to", [Stage.REPAIRING, Stage.AWAITING_PARTS])
@pytest.mark.parametrize("total", [8000, 10000], ids=["under", "exactly"])
def test_skipping_approval_within_the_preapproved_budget(to: Stage, total: int) -> None:
    job = drive_to(make_job(preapproved_budget_cents=10000), Stage.DIAGNOSING)
    job.set_estimate(TECH, estimate(total), NOW, None)
    event = changes_once(job, lambda: job.transition(TECH, to, LATER))
    assert_stage_event(event, Stage.DIAGNOSING, to, TECH.username)
    assert job.approval is not None
    assert job.approval.approved
    assert job.approval.source is ApprovalSource.PREAPPROVED_BUDGET
    assert job.approval.at == LATER
    assert event.data["approval"] == {"approved": True, "source": "preapproved_budget"}


@pytest.mark.parametrize(
    ("budget", "prices"),
    [(10000, (10001,)), (10000, (6000, 4001)), (None, (100,)), (10000, ())],
    ids=["over", "over-in-sum", "no-budget", "no-estimate"],
)
@pytest.mark.parametrize("to", [Stage.REPAIRING, Stage.AWAITING_PARTS])
def test_skipping_approval_outside_the_budget_is_refused(
    budget: int | None, prices: tuple[int, ...], to: Stage
) -> None:
    job = drive_to(make_job(preapproved_budget_cents=budget), Stage.DIAGNOSING)
    if prices:
        job.set_estimate(TECH, estimate(*prices), NOW, None)
    refused(job, lambda: job.transition(TECH, to, LATER), IllegalTransition)
    assert job.approval is None


def test_repairing_without_the_customers_answer_is_refused() -> None:
    job = drive_to(make_job(), Stage.AWAITING_APPROVAL)
    refused(job, lambda: job.transition(TECH, Stage.REPAIRING, NOW), IllegalTransition)
    refused(job, lambda: job.transition(DESK, Stage.AWAITING_PARTS, NOW), IllegalTransition)


def test_declined_estimate_cannot_be_repaired_without_a_budget() -> None:
    job = drive_to(make_job(), Stage.AWAITING_APPROVAL)
    job.record_approval(DESK, False, NOW, "too expensive")
    refused(job, lambda: job.transition(TECH, Stage.REPAIRING, NOW), IllegalTransition)


def test_declined_estimate_cannot_be_repaired_even_within_the_budget() -> None:
    job = drive_to(make_job(preapproved_budget_cents=20000), Stage.AWAITING_APPROVAL)  # estimate 120.00
    job.record_approval(DESK, False, NOW, "the customer does not want it repaired")
    refused(job, lambda: job.transition(TECH, Stage.REPAIRING, NOW), IllegalTransition)


def test_waiting_for_an_answer_within_the_budget_may_go_ahead() -> None:
    job = drive_to(make_job(preapproved_budget_cents=20000), Stage.AWAITING_APPROVAL)
    job.transition(TECH, Stage.REPAIRING, NOW)
    assert job.approval is not None
    assert job.approval.source is ApprovalSource.PREAPPROVED_BUDGET


def test_recording_an_answer_outside_awaiting_approval_is_refused() -> None:
    for stage in (Stage.RECEIVED, Stage.DIAGNOSING, Stage.REPAIRING):
        job = drive_to(make_job(), stage)
        refused(job, lambda job=job: job.record_approval(DESK, True, NOW, None), RuleConflict)


# --- estimates -------------------------------------------------------------------------------


def test_new_estimate_after_approval_resets_the_approval() -> None:
    job = drive_to(make_job(), Stage.AWAITING_APPROVAL)
    job.record_approval(DESK, True, NOW, None)
    event = changes_once(job, lambda: job.set_estimate(TECH, estimate(15000), LATER, "also the battery"))
    assert job.approval is None
    assert event.data["approval_reset"] is True
    assert job.estimate_total_cents == 15000
    refused(job, lambda: job.transition(TECH, Stage.REPAIRING, LATER), IllegalTransition)


def test_first_estimate_does_not_mention_an_approval_reset() -> None:
    job = drive_to(make_job(), Stage.DIAGNOSING)
    event = changes_once(job, lambda: job.set_estimate(TECH, estimate(100), NOW, None))
    assert "approval_reset" not in event.data


def test_estimate_awaiting_approval_cannot_be_emptied() -> None:
    # Otherwise the customer "approves" an estimate of nothing and the job goes to repair at 0.00.
    job = drive_to(make_job(), Stage.AWAITING_APPROVAL)
    refused(job, lambda: job.set_estimate(TECH, [], NOW, None), DomainError)


@pytest.mark.parametrize(
    "stage",
    [
        Stage.AWAITING_PARTS,
        Stage.REPAIRING,
        Stage.QUALITY_CHECK,
        Stage.READY_FOR_PICKUP,
        Stage.COLLECTED,
        Stage.ON_HOLD,
        Stage.CANCELLED,
    ],
)
def test_estimate_is_frozen_once_work_is_under_way(stage: Stage) -> None:
    job = drive_to(make_job(), stage)
    refused(job, lambda: job.set_estimate(MANAGER, estimate(1), NOW, None), RuleConflict)


@pytest.mark.parametrize("stage", [Stage.RECEIVED, Stage.DIAGNOSING, Stage.AWAITING_APPROVAL])
def test_estimate_is_editable_before_work(stage: Stage) -> None:
    job = drive_to(make_job(), stage)
    changes_once(job, lambda: job.set_estimate(MANAGER, estimate(4200), NOW, None))
    assert job.estimate_total_cents == 4200


def test_front_desk_cannot_write_an_estimate() -> None:
    job = drive_to(make_job(), Stage.DIAGNOSING)
    refused(job, lambda: job.set_estimate(DESK, estimate(100), NOW, None), NotPermitted)


def test_estimate_line_totals_and_validation() -> None:
    line = EstimateLine(LineKind.LABOUR, "labour", 3, 1500)
    assert line.total_cents == 4500
    with pytest.raises(InvalidValue) as info:
        EstimateLine(LineKind.PART, "screen", 0, 100)
    assert info.value.field == "quantity"
    with pytest.raises(InvalidValue) as info:
        EstimateLine(LineKind.PART, "screen", 1, -1)
    assert info.value.field == "unit_price_cents"


# --- roles -----------------------------------------------------------------------------------


def test_front_desk_cannot_start_diagnosing() -> None:
    job = make_job()
    refused(job, lambda: job.transition(DESK, Stage.DIAGNOSING, NOW), NotPermitted)


@pytest.mark.parametrize("stage", sorted(CANCELLABLE))
def test_technician_cannot_cancel(stage: Stage) -> None:
    job = drive_to(make_job(), stage)
    refused(job, lambda: job.transition(TECH, Stage.CANCELLED, NOW), NotPermitted)


@pytest.mark.parametrize("actor", [DESK, MANAGER], ids=["front_desk", "manager"])
@pytest.mark.parametrize("stage", sorted(CANCELLABLE))
def test_desk_roles_can_cancel_before_work_starts(actor, stage: Stage) -> None:
    job = drive_to(make_job(), stage)
    event = changes_once(job, lambda: job.transition(actor, Stage.CANCELLED, LATER, note="customer changed mind"))
    assert_stage_event(event, stage, Stage.CANCELLED, actor.username)
    assert job.has_passcode is False
    assert event.data["passcode_erased"] is True


@pytest.mark.parametrize("stage", [Stage.REPAIRING, Stage.QUALITY_CHECK, Stage.READY_FOR_PICKUP])
def test_cancelled_is_not_reachable_once_work_has_started(stage: Stage) -> None:
    job = drive_to(make_job(), stage)
    error = refused(job, lambda: job.transition(MANAGER, Stage.CANCELLED, NOW), IllegalTransition)
    assert isinstance(error, IllegalTransition)
    assert Stage.CANCELLED.value not in error.allowed


def test_technician_cannot_hand_the_device_back() -> None:
    job = drive_to(make_job(), Stage.READY_FOR_PICKUP)
    refused(job, lambda: job.transition(TECH, Stage.COLLECTED, NOW), NotPermitted)


def test_front_desk_cannot_pass_quality_check() -> None:
    job = drive_to(make_job(), Stage.QUALITY_CHECK)
    refused(job, lambda: job.transition(DESK, Stage.READY_FOR_PICKUP, NOW), NotPermitted)


def test_moves_outside_the_table_are_illegal_whatever_the_role() -> None:
    job = make_job()
    for actor in (DESK, TECH, MANAGER):
        refused(job, lambda actor=actor: job.transition(actor, Stage.REPAIRING, NOW), IllegalTransition)
        refused(job, lambda actor=actor: job.transition(actor, Stage.RECEIVED, NOW), IllegalTransition)


def test_allowed_targets_depend_on_role() -> None:
    job = make_job()
    assert sorted(job.allowed_targets(Role.FRONT_DESK)) == ["cancelled", "on_hold"]
    assert sorted(job.allowed_targets(Role.TECHNICIAN)) == ["diagnosing", "on_hold"]
    assert sorted(job.allowed_targets(Role.MANAGER)) == ["cancelled", "diagnosing", "on_hold"]


# --- on hold ---------------------------------------------------------------------------------

HOLDABLE = sorted(OPEN - {Stage.ON_HOLD})


@pytest.mark.parametrize("stage", HOLDABLE)
def test_on_hold_returns_only_to_the_stage_it_was_held_from(stage: Stage) -> None:
    job = drive_to(make_job(), stage)
    event = changes_once(job, lambda: job.transition(DESK, Stage.ON_HOLD, NOW, note="waiting for the customer"))
    assert_stage_event(event, stage, Stage.ON_HOLD, DESK.username)
    assert job.held_from is stage

    for other in HOLDABLE:
        if other is not stage:
            refused(job, lambda other=other: job.transition(MANAGER, other, NOW), IllegalTransition)

    event = changes_once(job, lambda: job.transition(DESK, stage, LATER))
    assert_stage_event(event, Stage.ON_HOLD, stage, DESK.username)
    assert job.stage is stage
    assert job.held_from is None


def test_cannot_hold_a_held_job() -> None:
    job = drive_to(make_job(), Stage.ON_HOLD)
    refused(job, lambda: job.transition(MANAGER, Stage.ON_HOLD, NOW), IllegalTransition)


@pytest.mark.parametrize("stage", HOLDABLE)
def test_cancel_from_on_hold_only_if_held_from_a_cancellable_stage(stage: Stage) -> None:
    job = drive_to(make_job(), stage)
    job.transition(MANAGER, Stage.ON_HOLD, NOW)
    if stage in CANCELLABLE:
        event = changes_once(job, lambda: job.transition(DESK, Stage.CANCELLED, LATER))
        assert_stage_event(event, Stage.ON_HOLD, Stage.CANCELLED, DESK.username)
        assert job.held_from is None
        assert job.has_passcode is False
    else:
        refused(job, lambda: job.transition(DESK, Stage.CANCELLED, LATER), IllegalTransition)
        assert job.held_from is stage


def test_ready_job_held_and_released_keeps_its_outcome() -> None:
    job = drive_to(make_job(), Stage.READY_FOR_PICKUP)
    job.transition(DESK, Stage.ON_HOLD, NOW)
    assert job.outcome is Outcome.REPAIRED
    event = changes_once(job, lambda: job.transition(DESK, Stage.READY_FOR_PICKUP, LATER))
    assert job.outcome is Outcome.REPAIRED
    assert "outcome" not in event.data


# --- outcomes --------------------------------------------------------------------------------


@pytest.mark.parametrize("actor", [DESK, TECH, MANAGER], ids=["front_desk", "technician", "manager"])
def test_declined_estimate_goes_back_as_declined(actor) -> None:
    job = drive_to(make_job(), Stage.AWAITING_APPROVAL)
    job.record_approval(DESK, False, NOW, "too expensive")
    event = changes_once(job, lambda: job.transition(actor, Stage.READY_FOR_PICKUP, LATER))
    assert_stage_event(event, Stage.AWAITING_APPROVAL, Stage.READY_FOR_PICKUP, actor.username)
    assert job.outcome is Outcome.DECLINED
    assert event.data["outcome"] == "declined"


def test_pickup_from_awaiting_approval_needs_a_refusal_or_not_repaired() -> None:
    job = drive_to(make_job(), Stage.AWAITING_APPROVAL)
    refused(job, lambda: job.transition(DESK, Stage.READY_FOR_PICKUP, NOW), IllegalTransition)
    refused(
        job,
        lambda: job.transition(DESK, Stage.READY_FOR_PICKUP, NOW, outcome=Outcome.DECLINED),
        IllegalTransition,
    )
    job.transition(DESK, Stage.READY_FOR_PICKUP, NOW, outcome=Outcome.NOT_REPAIRED)
    assert job.outcome is Outcome.NOT_REPAIRED


@pytest.mark.parametrize("stage", [Stage.DIAGNOSING, Stage.REPAIRING])
def test_skipping_the_check_goes_back_not_repaired(stage: Stage) -> None:
    job = drive_to(make_job(), stage)
    for wrong in (Outcome.REPAIRED, Outcome.DECLINED):
        refused(
            job, lambda wrong=wrong: job.transition(TECH, Stage.READY_FOR_PICKUP, NOW, outcome=wrong), IllegalTransition
        )
    event = changes_once(job, lambda: job.transition(TECH, Stage.READY_FOR_PICKUP, LATER))
    assert job.outcome is Outcome.NOT_REPAIRED
    assert event.data["outcome"] == "not_repaired"


def test_quality_check_outcomes() -> None:
    job = drive_to(make_job(), Stage.QUALITY_CHECK)
    refused(job, lambda: job.transition(TECH, Stage.READY_FOR_PICKUP, NOW, outcome=Outcome.DECLINED), IllegalTransition)
    job.transition(TECH, Stage.READY_FOR_PICKUP, NOW, outcome=Outcome.NOT_REPAIRED)
    assert job.outcome is Outcome.NOT_REPAIRED


# --- passcode --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "actor", [TECH, MANAGER, CHAIN_MANAGER], ids=["assigned-technician", "manager", "chain-manager"]
)
def test_reveal_passcode_is_recorded_without_a_version_bump(actor) -> None:
    job = drive_to(make_job(), Stage.REPAIRING)
    assert job.technician is not None
    assert job.technician.user_id == TECH.user_id
    version, events = job.version, len(job.pending_events)
    job.reveal_passcode(actor, LATER)
    assert job.version == version
    assert len(job.pending_events) == events + 1
    event = job.pending_events[-1]
    assert event.kind is EventKind.PASSCODE_REVEALED
    assert event.actor == actor.username
    assert event.at == LATER
    assert job.has_passcode


@pytest.mark.parametrize("actor", [DESK, OTHER_TECH], ids=["front_desk", "other-technician"])
def test_reveal_passcode_is_refused_to_others(actor) -> None:
    job = drive_to(make_job(), Stage.REPAIRING)
    refused(job, lambda: job.reveal_passcode(actor, NOW), NotPermitted)


def test_reveal_passcode_refused_to_a_technician_when_nobody_is_assigned() -> None:
    job = make_job()
    refused(job, lambda: job.reveal_passcode(TECH, NOW), NotPermitted)


@pytest.mark.parametrize("stage", sorted(TERMINAL))
def test_passcode_is_erased_when_the_device_leaves(stage: Stage) -> None:
    job = drive_to(make_job(), stage)
    assert job.has_passcode is False
    refused(job, lambda: job.reveal_passcode(MANAGER, NOW), RuleConflict)


def test_reveal_passcode_without_one_is_a_conflict() -> None:
    job = make_job(has_passcode=False)
    refused(job, lambda: job.reveal_passcode(MANAGER, NOW), RuleConflict)


def test_terminal_move_without_a_passcode_does_not_claim_an_erasure() -> None:
    job = make_job(has_passcode=False)
    event = changes_once(job, lambda: job.transition(DESK, Stage.CANCELLED, NOW))
    assert "passcode_erased" not in event.data


# --- assignment and notes --------------------------------------------------------------------


def test_assign_and_unassign() -> None:
    job = drive_to(make_job(), Stage.DIAGNOSING)
    other = Assignee(OTHER_TECH.user_id, OTHER_TECH.username)
    event = changes_once(job, lambda: job.assign(MANAGER, other, LATER))
    assert event.kind is EventKind.ASSIGNED
    assert dict(event.data) == {"from": TECH.username, "to": OTHER_TECH.username}
    assert job.technician == other
    event = changes_once(job, lambda: job.assign(OTHER_TECH, None, LATER))
    assert dict(event.data) == {"from": OTHER_TECH.username, "to": None}
    assert job.technician is None


def test_front_desk_cannot_assign() -> None:
    job = make_job()
    refused(job, lambda: job.assign(DESK, Assignee(TECH.user_id, TECH.username), NOW), NotPermitted)


@pytest.mark.parametrize("stage", sorted(TERMINAL))
def test_closed_jobs_cannot_be_reassigned(stage: Stage) -> None:
    job = drive_to(make_job(), stage)
    refused(job, lambda: job.assign(MANAGER, Assignee(OTHER_TECH.user_id, OTHER_TECH.username), NOW), RuleConflict)


def test_add_note_is_a_change() -> None:
    job = make_job()
    event = changes_once(job, lambda: job.add_note(DESK, "customer will call back", LATER))
    assert event.kind is EventKind.NOTE_ADDED
    assert event.note == "customer will call back"
    assert job.updated_at == LATER


# --- the table -------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", sorted(TERMINAL))
def test_terminal_stages_have_no_way_out(stage: Stage) -> None:
    assert targets(stage) == ()
    assert not any(frm is stage for frm, _to in TRANSITIONS)
    job = drive_to(make_job(), stage)
    for to in Stage:
        error = refused(job, lambda to=to: job.transition(MANAGER, to, NOW), IllegalTransition)
        assert isinstance(error, IllegalTransition)
        assert error.allowed == []


def test_every_open_stage_can_be_held_and_roles_for_unknown_moves_is_empty() -> None:
    for stage in OPEN - {Stage.ON_HOLD}:
        assert Stage.ON_HOLD in targets(stage)
        assert roles_for(stage, Stage.ON_HOLD) == frozenset(Role)
    assert roles_for(Stage.RECEIVED, Stage.COLLECTED) == frozenset()


# --- small value objects ---------------------------------------------------------------------


def test_device_needs_an_imei_or_a_serial() -> None:
    with pytest.raises(InvalidValue) as info:
        Device("Samsung", "Galaxy S21")
    assert info.value.field == "device"
    assert Device("Apple", "MacBook Air", serial_number="C02XK0ABJG5H").imei is None


def test_references() -> None:
    assert format_ref(123) == "AT-000123"
    assert format_ref(1234567) == "AT-1234567"
    assert parse_ref(" at-000123 ") == 123
    assert parse_ref("AT-123") is None
    assert parse_ref("123456") is None
    assert make_job(id=42).ref == "AT-000042"
    with pytest.raises(RuleConflict):
        _ = make_job().ref
