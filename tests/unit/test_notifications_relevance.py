"""A message that waited (quiet hours, a retry) is judged again when it may go: pure rules, no I/O. And the
history's words for what became of a message."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from domain.model import EventKind, JobEvent, RepairJob
from domain.notifications import Template, already_told, announced_day, stale_reason
from domain.parts import PartLine, PartStatus
from domain.stages import Stage
from service.web.job_view import describe
from tests.unit.factories import DESK, NOW, drive_to, make_job

PARIS = ZoneInfo("Europe/Paris")


def job_in(stage: Stage) -> RepairJob:
    return drive_to(make_job(id=42), stage)


def line(status: PartStatus) -> PartLine:
    return PartLine(1, 42, 1, "IPH13-SCREEN-OLED", 1, NOW, status=status)


# --- relevance -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", list(Stage))
def test_job_received_is_always_worth_telling(stage: Stage) -> None:
    assert stale_reason(Template.JOB_RECEIVED, job_in(stage), []) is None


@pytest.mark.parametrize("status", [PartStatus.NEEDED, PartStatus.ORDERED, PartStatus.SHIPPED, PartStatus.BACKORDERED])
def test_a_parts_delay_holds_while_a_part_is_awaited(status: PartStatus) -> None:
    lines = [line(PartStatus.RECEIVED), line(status)]
    assert stale_reason(Template.PARTS_DELAYED, job_in(Stage.AWAITING_PARTS), lines) is None


def test_a_parts_delay_has_passed_once_the_parts_are_in() -> None:
    lines = [line(PartStatus.RECEIVED), line(PartStatus.CANCELLED)]
    reason = stale_reason(Template.PARTS_DELAYED, job_in(Stage.AWAITING_PARTS), lines)
    assert reason == "no longer relevant: the parts have arrived"


@pytest.mark.parametrize("stage", [Stage.COLLECTED, Stage.CANCELLED])
def test_a_parts_delay_has_passed_once_the_job_is_closed(stage: Stage) -> None:
    reason = stale_reason(Template.PARTS_DELAYED, job_in(stage), [line(PartStatus.ORDERED)])
    assert reason == f"no longer relevant: the job is {stage}"


def test_an_estimate_is_worth_telling_only_while_the_customer_has_not_answered() -> None:
    waiting = job_in(Stage.AWAITING_APPROVAL)
    assert stale_reason(Template.ESTIMATE_READY, waiting, []) is None
    answered = job_in(Stage.AWAITING_APPROVAL)
    answered.record_approval(DESK, True, NOW, None)
    assert stale_reason(Template.ESTIMATE_READY, answered, []) == (
        "no longer relevant: the estimate is no longer awaiting an answer"
    )
    assert stale_reason(Template.ESTIMATE_READY, job_in(Stage.REPAIRING), []) is not None


@pytest.mark.parametrize("template", [Template.READY_FOR_PICKUP, Template.UNCOLLECTED_REMINDER])
def test_pickup_messages_hold_only_while_the_device_is_on_the_shelf(template: Template) -> None:
    assert stale_reason(template, job_in(Stage.READY_FOR_PICKUP), []) is None
    assert stale_reason(template, job_in(Stage.COLLECTED), []) == "no longer relevant: the device was collected"
    assert stale_reason(template, job_in(Stage.REPAIRING), []) == (
        "no longer relevant: the device is no longer ready for pickup (repairing)"
    )


# --- one parts delay per date ---------------------------------------------------------------------


def test_the_announced_day_is_the_branchs_local_day() -> None:
    # 23:30Z on 30 November is already 1 December in Paris.
    assert str(announced_day({"new_date": "2026-11-30T23:30:00+00:00"}, PARIS)) == "2026-12-01"
    assert announced_day({}, PARIS) is None


def test_a_date_told_already_is_told_once_whatever_the_hour() -> None:
    told = [{"new_date": datetime(2026, 12, 14, 9, 0, tzinfo=UTC).isoformat()}]
    one_hour_later = {"new_date": datetime(2026, 12, 14, 10, 0, tzinfo=UTC).isoformat()}
    next_day = {"new_date": datetime(2026, 12, 15, 9, 0, tzinfo=UTC).isoformat()}
    same_local_day = {"new_date": "2026-12-14T23:30:00+01:00"}  # 22:30Z: still Monday 14 in Paris
    assert already_told(one_hour_later, told, PARIS)
    assert already_told(same_local_day, told, PARIS)
    assert not already_told(next_day, told, PARIS)
    assert not already_told(one_hour_later, [], PARIS)


# --- the history in words --------------------------------------------------------------------------


def event(kind: EventKind, **data: object) -> JobEvent:
    base = {"channel": "sms", "template": "parts_delayed", "language": "fr", "recipient": "+33612345678"}
    return JobEvent(kind, NOW, None, data={**base, "attempts": 1, **data})


def test_a_delayed_message_says_when_it_goes() -> None:
    delayed = event(EventKind.NOTIFICATION_DELAYED, until="2026-11-24T07:00:00+00:00", reason="quiet hours")
    assert describe(delayed, "en", PARIS) == "Message (sms) delayed to 24/11 08:00 (no texts at night)"
    assert describe(delayed, "fr", PARIS) == "Message (sms) différé au 24/11 08:00 (pas de SMS la nuit)"


@pytest.mark.parametrize(
    ("why", "en", "fr"),
    [
        ("no_consent", "no consent to texts", "pas d'accord pour les SMS"),
        ("no_address", "no email address", "pas d'adresse e-mail"),
        ("no_channel", "channel not set up", "canal non configuré"),
        ("stale", "no longer relevant", "plus d'actualité"),
        ("already_told", "customer already told this date", "client déjà prévenu de cette date"),
    ],
)
def test_a_skipped_message_says_why_in_words(why: str, en: str, fr: str) -> None:
    skipped = event(EventKind.NOTIFICATION_SKIPPED, why=why, reason="whatever was stored")
    assert describe(skipped, "en", PARIS) == f"Message (sms) not sent: {en}"
    assert describe(skipped, "fr", PARIS) == f"Message (sms) non envoyé : {fr}"


def test_a_skip_reason_without_words_shows_the_stored_reason() -> None:
    skipped = event(EventKind.NOTIFICATION_SKIPPED, why="something_new", reason="a new reason")
    assert describe(skipped, "en", PARIS) == "Message (sms) not sent: a new reason"


def test_a_retry_says_the_try_and_when_the_next_is() -> None:
    retry = event(EventKind.NOTIFICATION_RETRY, attempts=2, next_try_at="2026-03-02T09:34:00+00:00", error="503")
    assert describe(retry, "en", PARIS) == "Message (sms) failed (try 2), trying again 02/03 10:34"
    assert describe(retry, "fr", PARIS) == "Échec de l'envoi (sms, essai 2), nouvel essai le 02/03 10:34"
