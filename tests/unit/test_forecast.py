"""When a job waiting for parts can be ready (business calendar, bench time), and how parts move a job
into awaiting_parts and what it takes to leave it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.calendar import BusinessCalendar, OpeningHours
from domain.errors import DomainError, IllegalTransition, NotPermitted, RuleConflict
from domain.model import ApprovalSource, EventKind, JobEvent, RepairJob, Tier
from domain.parts import EtaSource, PartLine
from domain.sla import Forecast, SlaPolicy, forecast
from domain.stages import PARTS_WAIT_FROM, Role, Stage

from .factories import DESK, LATER, MANAGER, NOW, TECH, drive_to, estimate, make_job

# Valence: Monday to Saturday 09:00-19:00, Paris time (UTC+1 in March until the 29th, then UTC+2).
VALENCE = BusinessCalendar(
    OpeningHours.from_mapping({day: [["09:00", "19:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat")}),
    ZoneInfo("Europe/Paris"),
)
SLA = SlaPolicy()  # repair time once the parts are in: express 1 business hour, standard 8


def utc(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    """2 March 2026 is a Monday; 09:00 in Valence is 08:00 UTC in early March."""
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


# --- repair time and ready time ----------------------------------------------------------------


def test_repair_time_is_by_tier_and_configurable() -> None:
    assert SLA.repair_time(Tier.EXPRESS) == timedelta(hours=1)
    assert SLA.repair_time(Tier.STANDARD) == timedelta(hours=8)
    custom = SlaPolicy(express_repair_hours=0.5, standard_repair_hours=16)
    assert custom.repair_time(Tier.EXPRESS) == timedelta(minutes=30)
    assert custom.repair_time(Tier.STANDARD) == timedelta(hours=16)


@pytest.mark.parametrize(
    ("tier", "parts_arrive", "ready"),
    [
        # Monday 10:00 Paris, open: one hour later.
        (Tier.EXPRESS, utc(2, 9), utc(2, 10)),
        # Monday 18:30 Paris: half an hour before closing, half an hour after Tuesday's opening.
        (Tier.EXPRESS, utc(2, 17, 30), utc(3, 8, 30)),
        # Monday 22:00 Paris, closed: from Tuesday's opening.
        (Tier.EXPRESS, utc(2, 21), utc(3, 9)),
        # Monday 14:00 Paris: five hours on Monday, three on Tuesday -> Tuesday 12:00 Paris.
        (Tier.STANDARD, utc(2, 13), utc(3, 11)),
        # Saturday 18:00 Paris: one hour on Saturday, Sunday closed, seven on Monday -> 16:00 Paris.
        (Tier.STANDARD, utc(7, 17), utc(9, 15)),
        # Sunday: nothing counts until Monday 09:00 Paris.
        (Tier.EXPRESS, utc(8, 12), utc(9, 9)),
        # Saturday 28 March 18:00 (UTC+1), Monday 30 March is summer time (UTC+2): 16:00 Paris = 14:00 UTC.
        (Tier.STANDARD, utc(28, 17), utc(30, 14)),
    ],
    ids=["open", "over-closing", "at-night", "standard-overnight", "over-sunday", "on-sunday", "over-dst"],
)
def test_ready_at_adds_the_repair_time_in_business_hours(tier: Tier, parts_arrive: datetime, ready: datetime) -> None:
    result = SLA.ready_at(tier, VALENCE, parts_arrive)
    assert result == ready
    assert result.utcoffset() == timedelta(0)


def test_ready_at_uses_the_policys_repair_time() -> None:
    slow = SlaPolicy(express_repair_hours=3)
    assert slow.ready_at(Tier.EXPRESS, VALENCE, utc(2, 9)) == utc(2, 12)


# --- forecast ----------------------------------------------------------------------------------


def awaited(line_id: int, eta: datetime | None) -> PartLine:
    """An ordered line that the supplier promised for `eta` (None: no date given)."""
    line = PartLine(line_id, job_id=100, branch_id=1, sku=f"PART-{line_id}", quantity=1, created_at=utc(2, 8))
    line.ordered(
        supplier_id=3,
        supplier_sku=f"S-{line_id}",
        order_id=11,
        unit_price_cents=5000,
        eta=eta,
        backordered=False,
        at=utc(2, 8),
        actor="theo.tech",
    )
    return line


def received(line_id: int, eta: datetime) -> PartLine:
    line = awaited(line_id, eta)
    line.receive(1, utc(2, 9), "dana.desk")
    return line


def test_forecast_in_time_is_not_at_risk() -> None:
    lines = [awaited(1, utc(3, 8))]  # Tuesday 09:00 Paris
    result = forecast(Tier.EXPRESS, utc(3, 11), lines, VALENCE, SLA, now=utc(2, 9))
    assert result == Forecast(parts_eta=utc(3, 8), ready_at=utc(3, 9), at_risk=False, waiting_without_date=False)


def test_forecast_ready_after_the_due_date_is_at_risk() -> None:
    lines = [awaited(1, utc(3, 8))]
    result = forecast(Tier.EXPRESS, utc(3, 8, 59), lines, VALENCE, SLA, now=utc(2, 9))
    assert result.ready_at == utc(3, 9)
    assert result.at_risk


def test_forecast_ready_exactly_at_the_due_date_is_not_at_risk() -> None:
    lines = [awaited(1, utc(3, 8))]
    assert not forecast(Tier.EXPRESS, utc(3, 9), lines, VALENCE, SLA, now=utc(2, 9)).at_risk


def test_forecast_waits_for_the_last_awaited_part() -> None:
    lines = [awaited(1, utc(3, 8)), awaited(2, utc(5, 13)), received(3, utc(9, 8))]
    result = forecast(Tier.STANDARD, utc(9, 8), lines, VALENCE, SLA, now=utc(2, 9))
    assert result.parts_eta == utc(5, 13)  # the received line's later ETA no longer matters
    assert result.ready_at == utc(6, 11)  # Thursday 14:00 Paris + 8 h: five on Thursday, three on Friday
    assert not result.at_risk


def test_forecast_with_a_passed_eta_counts_from_now() -> None:
    lines = [awaited(1, utc(2, 9))]  # due Monday; still not here on Wednesday 14:00 Paris
    now = utc(4, 13)
    result = forecast(Tier.EXPRESS, utc(4, 12), lines, VALENCE, SLA, now=now)
    assert result.parts_eta == utc(2, 9)  # the supplier's date is reported as it is
    assert result.ready_at == utc(4, 14)
    assert result.at_risk
    # On Monday the same line was not a risk at all.
    assert not forecast(Tier.EXPRESS, utc(4, 12), lines, VALENCE, SLA, now=utc(2, 8)).at_risk


def test_no_forecast_while_an_awaited_part_has_no_date() -> None:
    lines = [awaited(1, utc(3, 8)), awaited(2, None)]
    result = forecast(Tier.EXPRESS, utc(2, 10), lines, VALENCE, SLA, now=utc(2, 9))
    assert result == Forecast(parts_eta=None, ready_at=None, at_risk=False, waiting_without_date=True)


def test_no_forecast_when_no_part_is_awaited() -> None:
    lines = [received(1, utc(3, 8))]
    result = forecast(Tier.EXPRESS, utc(2, 10), lines, VALENCE, SLA, now=utc(2, 9))
    assert result == Forecast(parts_eta=None, ready_at=None, at_risk=False, waiting_without_date=False)
    assert forecast(Tier.EXPRESS, utc(2, 10), [], VALENCE, SLA, now=utc(2, 9)) == result


def test_a_revised_eta_moves_the_forecast() -> None:
    line = awaited(1, utc(3, 8))
    line.revise_eta(utc(6, 8), EtaSource.STAFF, utc(2, 10), "dana.desk", "supplier phoned")
    result = forecast(Tier.EXPRESS, utc(4, 12), [line], VALENCE, SLA, now=utc(2, 10))
    assert result.parts_eta == utc(6, 8)
    assert result.ready_at == utc(6, 9)
    assert result.at_risk


# --- parts move a job into awaiting_parts ------------------------------------------------------


def refused(job: RepairJob, change: Callable[[], None], error: type[DomainError]) -> DomainError:
    """Run `change`, check it raised `error` and left the job as it was."""
    before = (job.stage, job.held_from, job.version, len(job.pending_events), job.estimate, job.approval)
    with pytest.raises(error) as info:
        change()
    assert (job.stage, job.held_from, job.version, len(job.pending_events), job.estimate, job.approval) == before
    return info.value


@pytest.mark.parametrize("stage", sorted(PARTS_WAIT_FROM - {Stage.AWAITING_PARTS}))
def test_parts_added_moves_the_job_to_awaiting_parts(stage: Stage) -> None:
    job = drive_to(make_job(), stage)
    version, events = job.version, len(job.pending_events)
    job.parts_added(TECH, ["IPH13-SCREEN-OLED", "IPH13-ADHESIVE"], LATER)
    assert job.stage is Stage.AWAITING_PARTS
    assert job.version == version + 1
    assert job.updated_at == LATER
    assert len(job.pending_events) == events + 1
    event = job.pending_events[-1]
    assert event.kind is EventKind.STAGE_CHANGED
    assert (event.from_stage, event.to_stage) == (stage, Stage.AWAITING_PARTS)
    assert (event.at, event.actor) == (LATER, TECH.username)
    assert event.data["reason"] == "parts_added"
    assert event.data["skus"] == ["IPH13-SCREEN-OLED", "IPH13-ADHESIVE"]


def test_parts_added_by_a_manager_is_allowed() -> None:
    job = drive_to(make_job(), Stage.DIAGNOSING)
    job.parts_added(MANAGER, ["IPH13-SCREEN-OLED"], LATER)
    assert job.stage is Stage.AWAITING_PARTS
    assert job.pending_events[-1].actor == MANAGER.username


def test_more_parts_for_a_job_already_waiting_change_nothing() -> None:
    job = drive_to(make_job(), Stage.AWAITING_PARTS)
    before = (job.stage, job.version, len(job.pending_events), job.updated_at)
    job.parts_added(TECH, ["IPH13-ADHESIVE"], LATER)
    assert (job.stage, job.version, len(job.pending_events), job.updated_at) == before


@pytest.mark.parametrize("held_from", [Stage.DIAGNOSING, Stage.REPAIRING, Stage.AWAITING_PARTS])
def test_parts_added_to_a_held_job_keep_it_held_and_resume_to_awaiting_parts(held_from: Stage) -> None:
    job = drive_to(make_job(), held_from)
    job.transition(TECH, Stage.ON_HOLD, NOW)
    job.parts_added(TECH, ["IPH13-SCREEN-OLED"], LATER)
    assert job.stage is Stage.ON_HOLD
    assert job.held_from is Stage.AWAITING_PARTS
    if held_from is not Stage.AWAITING_PARTS:
        refused(job, lambda: job.transition(TECH, held_from, LATER), IllegalTransition)
    assert job.allowed_targets(Role.TECHNICIAN) == [Stage.AWAITING_PARTS.value]
    job.transition(TECH, Stage.AWAITING_PARTS, LATER)
    assert job.stage is Stage.AWAITING_PARTS
    assert job.held_from is None


def test_parts_added_to_a_job_held_after_repair_are_refused() -> None:
    job = drive_to(make_job(), Stage.READY_FOR_PICKUP)
    job.transition(DESK, Stage.ON_HOLD, NOW)
    refused(job, lambda: job.parts_added(TECH, ["IPH13-SCREEN-OLED"], LATER), RuleConflict)


@pytest.mark.parametrize("stage", [Stage.READY_FOR_PICKUP, Stage.COLLECTED, Stage.CANCELLED])
def test_parts_added_after_the_repair_or_to_a_closed_job_are_refused(stage: Stage) -> None:
    assert stage not in PARTS_WAIT_FROM
    job = drive_to(make_job(), stage)
    refused(job, lambda: job.parts_added(MANAGER, ["IPH13-SCREEN-OLED"], LATER), RuleConflict)


def test_the_front_desk_cannot_add_parts() -> None:
    job = drive_to(make_job(), Stage.DIAGNOSING)
    refused(job, lambda: job.parts_added(DESK, ["IPH13-SCREEN-OLED"], LATER), NotPermitted)


def test_recorded_history_is_not_a_new_version() -> None:
    job = drive_to(make_job(), Stage.AWAITING_PARTS)
    version, updated_at, events = job.version, job.updated_at, len(job.pending_events)
    shipped = JobEvent(EventKind.PART_SHIPPED, LATER, None, data={"line_id": 1})
    received_ = JobEvent(EventKind.PART_RECEIVED, LATER, "dana.desk", data={"line_id": 1})
    job.record([shipped, received_])
    assert job.pending_events[events:] == [shipped, received_]
    assert (job.version, job.updated_at) == (version, updated_at)


@pytest.mark.parametrize("how", ["parts-added", "parts-added-while-held", "staff-move"])
def test_a_job_waiting_for_a_part_after_the_repair_started_cannot_be_cancelled(how: str) -> None:
    """Cancellation is only possible before work on the device has started (stages.CANCELLABLE, README)."""
    job = drive_to(make_job(), Stage.REPAIRING)
    if how == "staff-move":
        job.transition(TECH, Stage.AWAITING_PARTS, LATER)
    else:
        if how == "parts-added-while-held":
            job.transition(TECH, Stage.ON_HOLD, NOW)
        job.parts_added(TECH, ["IPH13-FLEX-CABLE"], LATER)
    refused(job, lambda: job.transition(DESK, Stage.CANCELLED, LATER), IllegalTransition)


def test_a_job_back_from_the_bench_for_a_part_resumes_with_its_approval() -> None:
    job = drive_to(make_job(), Stage.REPAIRING)
    job.parts_added(TECH, ["IPH13-FLEX-CABLE"], LATER)
    job.transition(TECH, Stage.REPAIRING, LATER)
    assert job.stage is Stage.REPAIRING
    assert job.approval is not None
    assert job.approval.source is ApprovalSource.STAFF


# --- leaving awaiting_parts needs an approval --------------------------------------------------


def waiting_unanswered(prices: tuple[int, ...] = (12000,), budget: int | None = None) -> RepairJob:
    """A job that got parts while diagnosing, before the customer answered (no estimate if no prices)."""
    job = drive_to(make_job(preapproved_budget_cents=budget), Stage.DIAGNOSING)
    if prices:
        job.set_estimate(TECH, estimate(*prices), NOW, None)
    job.parts_added(TECH, ["IPH13-SCREEN-OLED"], NOW)
    assert job.stage is Stage.AWAITING_PARTS
    assert job.approval is None
    return job


@pytest.mark.parametrize(
    ("prices", "budget"),
    [((12000,), None), ((12000,), 11999), ((), 50000)],
    ids=["no-budget", "over-budget", "no-estimate"],
)
def test_repairing_a_waiting_job_without_an_answer_or_a_budget_is_refused(
    prices: tuple[int, ...], budget: int | None
) -> None:
    job = waiting_unanswered(prices, budget)
    refused(job, lambda: job.transition(TECH, Stage.REPAIRING, LATER), IllegalTransition)
    assert Stage.REPAIRING.value not in job.allowed_targets(Role.TECHNICIAN)


@pytest.mark.parametrize("budget", [12000, 20000], ids=["exactly", "under"])
def test_repairing_a_waiting_job_within_the_budget_approves_from_the_budget(budget: int) -> None:
    job = waiting_unanswered((12000,), budget)
    assert Stage.REPAIRING.value in job.allowed_targets(Role.TECHNICIAN)
    job.transition(TECH, Stage.REPAIRING, LATER)
    assert job.stage is Stage.REPAIRING
    assert job.approval is not None
    assert job.approval.approved
    assert job.approval.source is ApprovalSource.PREAPPROVED_BUDGET
    assert job.approval.at == LATER
    assert job.pending_events[-1].data["approval"] == {"approved": True, "source": "preapproved_budget"}


def test_the_customers_answer_is_taken_while_waiting_for_parts() -> None:
    job = waiting_unanswered()
    version = job.version
    job.record_approval(DESK, True, LATER, "yes, by phone")
    assert job.version == version + 1
    assert job.pending_events[-1].kind is EventKind.APPROVAL_RECORDED
    assert job.approval is not None
    assert (job.approval.approved, job.approval.by, job.approval.source) == (True, DESK.username, ApprovalSource.STAFF)
    job.transition(TECH, Stage.REPAIRING, LATER)
    assert job.stage is Stage.REPAIRING
    assert job.approval.source is ApprovalSource.STAFF


def test_a_declined_estimate_while_waiting_for_parts_is_not_repaired_even_within_the_budget() -> None:
    job = waiting_unanswered((12000,), budget=50000)
    job.record_approval(DESK, False, LATER, "too expensive")
    refused(job, lambda: job.transition(TECH, Stage.REPAIRING, LATER), IllegalTransition)


def test_no_answer_is_taken_while_waiting_for_parts_without_an_estimate() -> None:
    job = waiting_unanswered(prices=())
    refused(job, lambda: job.record_approval(DESK, True, LATER, None), RuleConflict)


@pytest.mark.parametrize("answered", [True, False], ids=["approved", "declined"])
def test_only_one_answer_is_taken_while_waiting_for_parts(answered: bool) -> None:
    job = waiting_unanswered()
    job.record_approval(DESK, answered, LATER, None)
    refused(job, lambda: job.record_approval(DESK, not answered, LATER, None), RuleConflict)


def test_a_job_approved_before_waiting_takes_no_other_answer_or_estimate() -> None:
    job = drive_to(make_job(), Stage.AWAITING_PARTS)  # approved while awaiting approval
    refused(job, lambda: job.record_approval(DESK, False, LATER, None), RuleConflict)
    refused(job, lambda: job.set_estimate(TECH, estimate(1), LATER, None), RuleConflict)


def test_the_estimate_may_change_while_waiting_for_parts_until_the_customer_answers() -> None:
    job = waiting_unanswered((12000,))
    version = job.version
    job.set_estimate(TECH, estimate(9000, 4000), LATER, "the adhesive too")
    assert job.version == version + 1
    assert job.estimate_total_cents == 13000
    assert job.pending_events[-1].kind is EventKind.ESTIMATE_SET
    job.record_approval(DESK, True, LATER, None)
    refused(job, lambda: job.set_estimate(TECH, estimate(1), LATER, None), RuleConflict)


def test_an_estimate_written_while_waiting_for_parts_lets_the_customer_answer() -> None:
    job = waiting_unanswered(prices=())
    job.set_estimate(TECH, estimate(12000), LATER, None)
    job.record_approval(DESK, True, LATER, None)
    job.transition(TECH, Stage.REPAIRING, LATER)
    assert job.stage is Stage.REPAIRING
