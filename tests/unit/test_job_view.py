"""What the job page and the bench compute apart from the handlers: prices as typed, the estimate
editor's rows, errors naming the row staff see, the history in words, the ETA timeline, the bench step."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.errors import InvalidValue, RuleConflict, VersionConflict
from domain.model import EventKind, JobEvent, LineKind
from domain.parts import EtaRevision, EtaSource, PartLine
from domain.stages import Role, Stage
from service.web.bench import next_step
from service.web.i18n import translator
from service.web.job_view import (
    EstimateRow,
    describe,
    edit_rows,
    estimate_editable,
    lines_from_rows,
    may_reveal,
    price_cents,
    problem_of,
    rows_from_form,
    timeline,
)
from tests.unit.factories import NOW, OTHER_TECH, TECH, drive_to, estimate, make_job

PARIS = ZoneInfo("Europe/Paris")
EN = translator("en")


@pytest.mark.parametrize(
    ("typed", "cents"), [("89", 8900), ("89,5", 8950), ("89.50", 8950), ("1 234,05 €", 123405), ("0", 0)]
)
def test_prices_are_read_as_typed_at_a_french_or_english_keyboard(typed: str, cents: int) -> None:
    assert price_cents(typed, "price") == cents


@pytest.mark.parametrize("typed", ["", "12.345", "-3", "ten", "1e3"])
def test_a_price_that_is_not_one_is_refused(typed: str) -> None:
    with pytest.raises(InvalidValue):
        price_cents(typed, "price")


def test_the_editor_rows_come_back_in_order_and_add_or_remove_one() -> None:
    form = {"description-1": "Fitting", "kind-1": "labour", "price-1": "30", "description-0": "Screen", "version": "3"}
    rows = rows_from_form(form)
    assert [row.description for row in rows] == ["Screen", "Fitting"]
    assert [row.description for row in edit_rows(rows, "remove-0")] == ["Fitting"]
    assert len(edit_rows(rows, "add")) == 3
    assert edit_rows([EstimateRow()], "remove-0") == [EstimateRow()]  # always one row to type in


def test_blank_rows_are_skipped_and_a_bad_one_is_named_as_staff_see_it() -> None:
    rows = [EstimateRow("part", "Screen", "1", "89"), EstimateRow(), EstimateRow("labour", "", "1", "30")]
    with pytest.raises(InvalidValue) as refused:
        lines_from_rows(rows)
    assert refused.value.field == "line 3 description"

    lines = lines_from_rows([rows[0], rows[1], EstimateRow("labour", "Fitting", "2", "30,00")])
    assert [(line.kind, line.quantity, line.unit_price_cents) for line in lines] == [
        (LineKind.PART, 1, 8900),
        (LineKind.LABOUR, 2, 3000),
    ]


def test_the_editor_and_the_reveal_button_follow_the_domains_rules() -> None:
    diagnosing = drive_to(make_job(id=1), Stage.DIAGNOSING)  # taken by TECH
    assert estimate_editable(diagnosing, Role.TECHNICIAN) and not estimate_editable(diagnosing, Role.FRONT_DESK)
    assert may_reveal(diagnosing, TECH.user_id, Role.TECHNICIAN)
    assert not may_reveal(diagnosing, OTHER_TECH.user_id, Role.TECHNICIAN)
    repairing = drive_to(make_job(id=2), Stage.REPAIRING)
    assert not estimate_editable(repairing, Role.MANAGER)


def test_a_stale_version_is_the_banner_and_other_refusals_say_why() -> None:
    stale = problem_of(VersionConflict("v3, not v2"), "notes", EN)
    assert (stale.stale, stale.status, stale.message) == (True, 412, "Someone changed this job — reload")
    conflict = problem_of(RuleConflict("this job holds no passcode"), "passcode", EN)
    assert (conflict.status, conflict.stale) == (409, False)
    assert "this job holds no passcode" in conflict.message


def test_the_history_reads_as_sentences() -> None:
    moved = JobEvent(EventKind.STAGE_CHANGED, NOW, "theo", Stage.RECEIVED, Stage.DIAGNOSING)
    priced = JobEvent(EventKind.ESTIMATE_SET, NOW, "theo", data={"total_cents": 11900})
    revised = JobEvent(
        EventKind.ETA_REVISED, NOW, None, data={"sku": "IPH13-BATTERY", "new_eta": NOW.isoformat(), "source": "staff"}
    )
    assert describe(moved, "en", PARIS) == "Received → Diagnosing"
    assert describe(priced, "fr", PARIS) == "Devis établi : 119,00 €"
    assert describe(revised, "en", PARIS) == "New ETA for IPH13-BATTERY: 02/03 10:30 (staff)"


def test_the_timeline_puts_each_revision_against_the_promise() -> None:
    promised, slipped = NOW + timedelta(days=2), NOW + timedelta(days=4)
    line = PartLine(7, 1, 1, "IPH13-BATTERY", 1, NOW, promised_at=promised, eta=slipped)
    revisions = [
        EtaRevision(7, EtaSource.ORDER, NOW, None, promised),
        EtaRevision(7, EtaSource.STAFF, NOW, promised, slipped),
    ]
    drawn = timeline(line, revisions, NOW, PARIS, EN)
    assert drawn is not None
    first, second = drawn.marks
    assert (first.tone, first.label, second.tone, second.label) == ("first", "order", "slipped", "staff")
    assert drawn.now_x == 12 and second.x_to == drawn.width - 12  # now at the start, the latest ETA at the end
    assert drawn.promise_x == first.x_to == second.x_from
    assert timeline(line, [], NOW, PARIS, EN) is None


def test_the_bench_button_is_the_next_step_the_job_allows() -> None:
    assert next_step(make_job(id=1), Role.TECHNICIAN, False) is Stage.DIAGNOSING
    diagnosing = drive_to(make_job(id=2), Stage.DIAGNOSING)
    assert next_step(diagnosing, Role.TECHNICIAN, False) is None  # no estimate yet: the job page
    diagnosing.set_estimate(TECH, estimate(8900), NOW, None)
    assert next_step(diagnosing, Role.TECHNICIAN, False) is Stage.AWAITING_APPROVAL
    within_budget = drive_to(make_job(id=3, preapproved_budget_cents=10_000), Stage.DIAGNOSING)
    within_budget.set_estimate(TECH, estimate(8900), NOW, None)
    assert next_step(within_budget, Role.TECHNICIAN, False) is Stage.REPAIRING
    assert next_step(drive_to(make_job(id=4), Stage.REPAIRING), Role.TECHNICIAN, False) is Stage.QUALITY_CHECK
    assert next_step(drive_to(make_job(id=5), Stage.QUALITY_CHECK), Role.FRONT_DESK, False) is None
    assert next_step(drive_to(make_job(id=6), Stage.AWAITING_PARTS), Role.TECHNICIAN, True) is None
