"""What the customer's link shows and allows: pure rules, no I/O."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime, timedelta

import pytest

from domain.calendar import OpeningHours
from domain.errors import RuleConflict
from domain.model import Approval, ApprovalSource, Branch, Customer, Device, Outcome, RepairJob
from domain.notifications import ChannelName, Facts, Template, render
from domain.parts import PartLine, PartStatus
from domain.sla import SlaPolicy, forecast
from domain.stages import Stage
from domain.tracking import (
    TrackingView,
    answer_through_link,
    can_answer,
    link_open,
    parts_delay,
    stage_words,
    tracking_view,
    when_in_words,
)
from service.api.tracking_page import page
from service.usecases.tracking import new_token, token_hash, well_formed
from tests.unit.factories import DESK, NOW, TECH, drive_to, estimate, make_job

HOURS = OpeningHours.from_mapping({d: [["09:00", "19:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat")})
BRANCH = Branch(1, "valence", "Atelier Valence", "Europe/Paris", HOURS)
TZ = BRANCH.calendar.tz
SLA = SlaPolicy()
DAYS = 30


def view_of(
    job: RepairJob, lines: list[PartLine] | None = None, language: str = "fr", now: datetime = NOW
) -> TrackingView:
    job.id = job.id or 42
    lines = lines or []
    outlook = forecast(job.tier, job.due_at, lines, BRANCH.calendar, SLA, now)
    return tracking_view(job, BRANCH, lines, outlook, language=language, now=now, days_after=DAYS)


def ordered(eta: datetime, promised: datetime | None = None, status: PartStatus = PartStatus.ORDERED) -> PartLine:
    return PartLine(
        1,
        job_id=42,
        branch_id=1,
        sku="IPH13-SCREEN",
        quantity=1,
        created_at=NOW,
        status=status,
        promised_at=promised or eta,
        eta=eta,
    )


# --- nothing private -----------------------------------------------------------------------------


def test_the_view_and_the_page_hold_nothing_that_identifies_the_customer_or_the_device() -> None:
    job = make_job(
        customer=Customer(10, "MARTIN Camille", "+33612345678", "camille.martin@example.org", True, "fr"),
        device=Device("Apple", "iPhone 13", imei="490154203237518", serial_number="F2LXK0ABCDEF", colour="blue"),
        fault_description="screen cracked, passcode 4821 written on a post-it",
    )
    job = drive_to(job, Stage.AWAITING_APPROVAL)
    job.approval = Approval(True, DESK.username, NOW, ApprovalSource.STAFF, "customer was rude on the phone")
    view = view_of(job)
    shown = repr(dataclasses.asdict(view)) + page(view, approval_path="/track/x/approval")
    for private in (
        "MARTIN",
        "Camille",
        "+33612345678",
        "0612345678",
        "camille.martin",
        "490154203237518",
        "F2LXK0ABCDEF",
        "4821",
        "post-it",
        "rude",
        DESK.username,
        TECH.username,
    ):
        assert private not in shown, private
    assert view.device == "Apple iPhone 13" and view.ref == "AT-000042"


# --- words ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", list(Stage))
def test_every_stage_has_plain_words_in_both_languages(stage: Stage) -> None:
    job = make_job(stage=stage)
    fr, en = stage_words(job, "fr"), stage_words(job, "en")
    assert all(fr) and all(en) and fr != en
    assert "_" not in fr[0] + fr[1] + en[0] + en[1]  # words, not codes like awaiting_approval


def test_ready_for_pickup_says_whether_it_was_repaired() -> None:
    repaired = make_job(stage=Stage.READY_FOR_PICKUP, outcome=Outcome.REPAIRED)
    declined = make_job(stage=Stage.READY_FOR_PICKUP, outcome=Outcome.DECLINED)
    broken = make_job(stage=Stage.READY_FOR_PICKUP, outcome=Outcome.NOT_REPAIRED)
    assert "réparé et vous attend" in stage_words(repaired, "fr")[1]
    assert "refusé le devis" in stage_words(declined, "fr")[1]
    assert "could not repair" in stage_words(broken, "en")[1]


def test_steps_follow_the_stage_and_a_held_job_shows_where_it_stopped() -> None:
    assert view_of(drive_to(make_job(), Stage.DIAGNOSING)).step == 1
    held = drive_to(make_job(), Stage.REPAIRING)
    held.transition(TECH, Stage.ON_HOLD, NOW)
    view = view_of(held, language="en")
    assert view.stage_title == "On hold" and view.steps[view.step or 0] == "Repair"
    assert view_of(drive_to(make_job(), Stage.CANCELLED)).step is None


def test_promised_date_in_words_in_the_branch_timezone() -> None:
    late_evening = datetime(2026, 11, 30, 23, 30, tzinfo=TZ).astimezone(TZ)  # Monday 30 November, Paris
    assert when_in_words(late_evening, TZ, "fr") == "lundi 30 novembre à 23:30"
    assert when_in_words(late_evening, TZ, "en") == "Monday 30 November at 23:30"
    view = view_of(make_job(due_at=datetime(2026, 3, 5, 9, 30, tzinfo=TZ)))
    assert view.promised == "jeudi 5 mars à 09:30"


# --- parts delay ---------------------------------------------------------------------------------


def test_a_part_past_the_promise_says_the_new_ready_date() -> None:
    job = drive_to(make_job(due_at=NOW + timedelta(days=1)), Stage.AWAITING_PARTS)
    late = ordered(NOW + timedelta(days=6), promised=NOW + timedelta(hours=20))
    view = view_of(job, [late])
    assert view.parts_delay is not None and view.parts_delay.startswith("Une pièce arrive plus tard que prévu")
    assert view.expected_ready_at is not None and view.expected_ready_at > job.due_at
    assert when_in_words(view.expected_ready_at, TZ, "fr") in view.parts_delay
    english = view_of(job, [late], language="en").parts_delay
    assert english is not None and english.startswith("A part is arriving later than planned")


def test_a_late_part_that_keeps_the_promise_is_said_so() -> None:
    job = drive_to(make_job(due_at=NOW + timedelta(days=10)), Stage.AWAITING_PARTS)
    slipped = ordered(NOW + timedelta(days=2), promised=NOW + timedelta(days=1))
    delay = parts_delay(
        job, [slipped], forecast(job.tier, job.due_at, [slipped], BRANCH.calendar, SLA, NOW), TZ, "en", NOW
    )
    assert delay == "A part is running late at our supplier, but the promised date still holds."


def test_no_delay_when_on_time_received_or_already_ready() -> None:
    job = drive_to(make_job(due_at=NOW + timedelta(days=10)), Stage.AWAITING_PARTS)
    assert view_of(job, [ordered(NOW + timedelta(days=1))]).parts_delay is None
    assert view_of(job, [ordered(NOW - timedelta(days=1), status=PartStatus.RECEIVED)]).parts_delay is None
    ready = drive_to(make_job(due_at=NOW - timedelta(days=1)), Stage.READY_FOR_PICKUP)
    assert view_of(ready, [ordered(NOW + timedelta(days=5), promised=NOW)]).parts_delay is None


def test_a_promise_broken_while_a_part_has_no_date_yet() -> None:
    job = drive_to(make_job(due_at=NOW - timedelta(hours=1)), Stage.AWAITING_PARTS)
    undated = PartLine(1, job_id=42, branch_id=1, sku="IPH13-SCREEN", quantity=1, created_at=NOW)
    assert view_of(job, [undated]).parts_delay == (
        "Une pièce se fait attendre ; nous vous donnerons une nouvelle date dès que possible."
    )


# --- the link's lifetime -------------------------------------------------------------------------


def test_the_link_works_until_30_days_after_collection() -> None:
    job = drive_to(make_job(), Stage.READY_FOR_PICKUP)
    assert link_open(job, DAYS, NOW + timedelta(days=400))  # still in our care: no end
    collected = drive_to(make_job(), Stage.COLLECTED)
    assert collected.collected_at == NOW
    assert link_open(collected, DAYS, NOW + timedelta(days=30) - timedelta(seconds=1))
    assert not link_open(collected, DAYS, NOW + timedelta(days=30))
    assert view_of(collected).link_expires_at == NOW + timedelta(days=30)


def test_a_cancelled_jobs_link_ends_30_days_after_the_cancellation() -> None:
    cancelled = drive_to(make_job(), Stage.CANCELLED)
    assert link_open(cancelled, DAYS, cancelled.updated_at + timedelta(days=29))
    assert not link_open(cancelled, DAYS, cancelled.updated_at + timedelta(days=30))


# --- the customer's answer -----------------------------------------------------------------------


def test_the_customers_answer_is_their_own_decision_with_a_version_bump() -> None:
    job = make_job()
    job.transition(TECH, Stage.DIAGNOSING, NOW)
    job.set_estimate(TECH, estimate(12000), NOW, None)
    job.transition(TECH, Stage.AWAITING_APPROVAL, NOW)
    job.pending_events.clear()
    version = job.version
    assert can_answer(job)
    assert answer_through_link(job, True, NOW, "go ahead") is True
    assert job.version == version + 1
    assert job.approval is not None and job.approval.source is ApprovalSource.CUSTOMER
    [event] = job.pending_events
    assert (event.actor, event.data["source"], event.note) == ("customer", "customer", "go ahead")
    assert not can_answer(job)
    # The same answer again (a double click) changes nothing; another one is for the shop.
    assert answer_through_link(job, True, NOW, None) is False and job.version == version + 1
    with pytest.raises(RuleConflict):
        answer_through_link(job, False, NOW, None)


@pytest.mark.parametrize("stage", [Stage.RECEIVED, Stage.DIAGNOSING, Stage.REPAIRING, Stage.COLLECTED])
def test_no_answer_when_none_is_expected(stage: Stage) -> None:
    job = drive_to(make_job(), stage)
    with pytest.raises(RuleConflict):
        answer_through_link(job, True, NOW, None)


def test_the_page_offers_the_buttons_only_while_an_answer_is_expected() -> None:
    job = make_job()
    job.transition(TECH, Stage.DIAGNOSING, NOW)
    job.set_estimate(TECH, estimate(12000, 2950), NOW, None)
    job.transition(TECH, Stage.AWAITING_APPROVAL, NOW)
    html = page(view_of(job), approval_path="/track/tok/approval")
    assert '<form method="post" action="/track/tok/approval">' in html
    assert "149,50 €" in html and "J'accepte le devis" in html and "Je refuse le devis" in html
    answer_through_link(job, False, NOW, None)
    html = page(view_of(job), approval_path="/track/tok/approval")
    assert "<form" not in html and "Devis refusé le lundi 2 mars à 10:30." in html


# --- tokens --------------------------------------------------------------------------------------


def test_tokens_are_random_256_bits_and_found_by_their_hash_only() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    for token in list(tokens)[:20]:
        assert len(token) == 43 and well_formed(token)  # 32 bytes, url-safe base64
        assert token_hash(token) == hashlib.sha256(token.encode()).hexdigest()
    assert not well_formed("AT-000042") and not well_formed("x" * 200) and not well_formed("a/b" * 10)
    assert not well_formed(new_token() + "\n")


# --- the estimate message ------------------------------------------------------------------------


def _facts(**data: object) -> Facts:
    return Facts("AT-000042", "Camille", "Apple iPhone 13", "Atelier Valence", HOURS, TZ, data)


def test_estimate_ready_says_the_customer_can_answer_through_the_link() -> None:
    link = "https://atelier.example/track/tok"
    fr = render(Template.ESTIMATE_READY, ChannelName.SMS, "fr", _facts(total_cents=12950, tracking_url=link))
    en = render(Template.ESTIMATE_READY, ChannelName.EMAIL, "en", _facts(total_cents=12950, tracking_url=link))
    assert fr.body.endswith(f"Montant : 129,50 €. Acceptez-le ou refusez-le ici : {link}")
    assert f"Total: €129.50. Approve or decline it here: {link}" in en.body
    without = render(Template.ESTIMATE_READY, ChannelName.SMS, "fr", _facts(total_cents=12950))
    assert without.body.endswith("Merci de nous donner votre accord.")
