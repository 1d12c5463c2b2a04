"""The technician's queue: which jobs are bench work, and the order to take them in."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from domain.calendar import BusinessCalendar, OpeningHours
from domain.model import Tier, needs_answer
from domain.parts import PartLine, PartStatus
from domain.queue import BENCH_WORK, BenchJob, at_risk, in_queue_order
from domain.sla import SlaPolicy
from domain.stages import Stage

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # Monday 10:00 in Valence
VALENCE = BusinessCalendar(
    OpeningHours.from_mapping({day: [["09:00", "19:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat")}),
    ZoneInfo("Europe/Paris"),
)
SLA = SlaPolicy()


def line(job_id: int, status: PartStatus = PartStatus.ORDERED, eta: datetime | None = None) -> PartLine:
    return PartLine(None, job_id, 1, "IPH13-SCREEN", 1, NOW, status=status, eta=eta)


def job(
    job_id: int,
    stage: Stage = Stage.DIAGNOSING,
    tier: Tier = Tier.STANDARD,
    due_in_hours: float = 48,
    lines: tuple[PartLine, ...] = (),
) -> BenchJob:
    return BenchJob(job_id, stage, tier, NOW + timedelta(hours=due_in_hours), lines)


def ids(jobs: list[BenchJob]) -> list[int]:
    return [j.job_id for j in jobs]


def test_bench_work_is_the_workshop_stages_and_awaiting_parts() -> None:
    assert (
        frozenset({Stage.RECEIVED, Stage.DIAGNOSING, Stage.REPAIRING, Stage.QUALITY_CHECK, Stage.AWAITING_PARTS})
        == BENCH_WORK
    )
    others = [job(i, stage) for i, stage in enumerate(Stage) if stage not in BENCH_WORK]
    assert {j.stage for j in others} == {
        Stage.AWAITING_APPROVAL,
        Stage.ON_HOLD,
        Stage.READY_FOR_PICKUP,
        Stage.COLLECTED,
        Stage.CANCELLED,
    }
    assert in_queue_order(others) == []


def test_express_first_then_by_due_date_then_oldest() -> None:
    jobs = [
        job(1, due_in_hours=10),
        job(2, tier=Tier.EXPRESS, due_in_hours=30),
        job(3, due_in_hours=5),
        job(4, tier=Tier.EXPRESS, due_in_hours=3),
        job(5, due_in_hours=5),
    ]
    assert ids(in_queue_order(jobs)) == [4, 2, 3, 5, 1]


def test_a_job_waiting_for_parts_goes_after_every_workable_job_whatever_its_tier() -> None:
    waiting_express = job(1, Stage.AWAITING_PARTS, Tier.EXPRESS, due_in_hours=1, lines=(line(1, eta=NOW),))
    workable_late_standard = job(2, Stage.RECEIVED, due_in_hours=200)
    parts_in = job(3, Stage.AWAITING_PARTS, due_in_hours=100, lines=(line(3, PartStatus.RECEIVED),))
    assert waiting_express.waiting_for_parts
    assert not parts_in.waiting_for_parts and parts_in.parts_ready
    assert ids(in_queue_order([waiting_express, workable_late_standard, parts_in])) == [3, 2, 1]


def test_among_jobs_waiting_for_parts_express_first_then_due_then_parts_expected_soonest() -> None:
    soon, later = NOW + timedelta(days=1), NOW + timedelta(days=4)
    jobs = [
        job(1, Stage.AWAITING_PARTS, due_in_hours=72, lines=(line(1, eta=None),)),  # not ordered yet: no date
        job(2, Stage.AWAITING_PARTS, due_in_hours=72, lines=(line(2, eta=later),)),
        job(3, Stage.AWAITING_PARTS, due_in_hours=72, lines=(line(3, eta=soon),)),
        job(4, Stage.AWAITING_PARTS, Tier.EXPRESS, due_in_hours=90, lines=(line(4, eta=later),)),
        job(5, Stage.AWAITING_PARTS, due_in_hours=24, lines=(line(5, eta=later),)),
    ]
    assert ids(in_queue_order(jobs)) == [4, 5, 3, 2, 1]


def test_parts_readiness_breaks_a_tie_of_due_dates_among_workable_jobs() -> None:
    # A repair started with one part still on its way: workable, but the one whose parts are in goes first.
    eta = NOW + timedelta(days=1)
    started = job(1, Stage.REPAIRING, due_in_hours=24, lines=(line(1, PartStatus.SHIPPED, eta),))
    ready = job(2, Stage.REPAIRING, due_in_hours=24, lines=(line(2, PartStatus.RECEIVED),))
    assert not started.waiting_for_parts and not started.parts_ready
    assert ids(in_queue_order([started, ready])) == [2, 1]


def test_parts_state_of_a_job() -> None:
    eta = NOW + timedelta(days=2)
    lines = (
        line(1, PartStatus.RECEIVED),
        line(1, PartStatus.CANCELLED),
        line(1, PartStatus.SHIPPED, eta),
        line(1, PartStatus.ORDERED, NOW + timedelta(days=1)),
    )
    waiting = job(1, Stage.AWAITING_PARTS, lines=lines)
    assert (waiting.parts_ready, waiting.parts_eta, waiting.waiting_for_parts) == (False, eta, True)
    in_hand = job(2, Stage.AWAITING_PARTS, lines=(line(2, PartStatus.FITTED), line(2, PartStatus.CANCELLED)))
    assert (in_hand.parts_ready, in_hand.parts_eta, in_hand.waiting_for_parts) == (True, None, False)
    no_parts = job(3, Stage.DIAGNOSING)
    assert (no_parts.parts_ready, no_parts.parts_eta, no_parts.waiting_for_parts) == (True, None, False)


def test_the_order_does_not_depend_on_the_order_read() -> None:
    rng = random.Random(5)
    jobs = [
        job(
            i,
            rng.choice(sorted(BENCH_WORK)),
            rng.choice(list(Tier)),
            due_in_hours=rng.choice([4, 24, 48]),
            lines=tuple(
                line(i, rng.choice(list(PartStatus)), NOW + timedelta(days=rng.randint(0, 3))) for _ in range(2)
            ),
        )
        for i in range(1, 60)
    ]
    expected = ids(in_queue_order(jobs))
    for _ in range(5):
        rng.shuffle(jobs)
        assert ids(in_queue_order(jobs)) == expected
    # Every workable job is ahead of every job waiting for parts.
    ordered = in_queue_order(jobs)
    flags = [j.waiting_for_parts for j in ordered]
    assert flags == sorted(flags)


def test_at_risk_from_the_parts_arrival_or_from_now() -> None:
    # Standard: 8 business hours at the bench once the parts are in.
    arrives_tomorrow = (line(1, eta=NOW + timedelta(days=1)),)
    assert not at_risk(job(1, Stage.AWAITING_PARTS, due_in_hours=72, lines=arrives_tomorrow), VALENCE, SLA, NOW)
    assert at_risk(job(1, Stage.AWAITING_PARTS, due_in_hours=26, lines=arrives_tomorrow), VALENCE, SLA, NOW)
    # Nothing awaited: the bench time from now (express: one business hour).
    assert not at_risk(job(2, Stage.REPAIRING, Tier.EXPRESS, due_in_hours=2), VALENCE, SLA, NOW)
    assert at_risk(job(2, Stage.REPAIRING, Tier.EXPRESS, due_in_hours=0.5), VALENCE, SLA, NOW)
    assert at_risk(job(3, Stage.DIAGNOSING, due_in_hours=-1), VALENCE, SLA, NOW)  # overdue


def test_a_job_waiting_for_the_customers_answer_goes_after_every_workable_job() -> None:
    parts_in = (line(1, PartStatus.RECEIVED),)
    unanswered = BenchJob(1, Stage.AWAITING_PARTS, Tier.EXPRESS, NOW + timedelta(hours=1), parts_in, unanswered=True)
    answered = BenchJob(2, Stage.AWAITING_PARTS, Tier.EXPRESS, NOW + timedelta(hours=2), parts_in)
    standard = job(3, due_in_hours=48)
    assert unanswered.waiting_for_customer and not unanswered.waiting_for_parts
    assert ids(in_queue_order([unanswered, standard, answered])) == [2, 3, 1]


def test_the_repair_waits_for_an_answer_only_to_an_estimate_over_any_budget() -> None:
    assert needs_answer(estimate_total_cents=5000, budget_cents=None, answered=False)
    assert needs_answer(estimate_total_cents=5000, budget_cents=4999, answered=False)
    assert not needs_answer(estimate_total_cents=5000, budget_cents=5000, answered=False)
    assert not needs_answer(estimate_total_cents=5000, budget_cents=None, answered=True)
    assert not needs_answer(estimate_total_cents=None, budget_cents=None, answered=False)  # nothing to answer yet
