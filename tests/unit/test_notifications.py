"""Templates, consent and quiet hours: pure rules, no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from domain.calendar import OpeningHours
from domain.errors import InvalidValue
from domain.model import Customer
from domain.notifications import (
    ChannelName,
    Facts,
    Template,
    date_in_words,
    hours_in_words,
    language_of,
    money,
    recipient,
    render,
    sms_send_time,
)

PARIS = ZoneInfo("Europe/Paris")
HOURS = OpeningHours.from_mapping({d: [["09:00", "19:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat")})
SPLIT = OpeningHours.from_mapping(
    {
        **{d: [["09:00", "12:00"], ["14:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
        "sat": [["09:00", "12:00"]],
    }
)


def facts(**data: object) -> Facts:
    return Facts("AT-000042", "Camille", "Apple iPhone 13", "Atelier Valence", HOURS, PARIS, data)


# --- quiet hours -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        # Winter, Paris is UTC+1.
        (datetime(2026, 11, 23, 7, 0, tzinfo=UTC), datetime(2026, 11, 23, 7, 0, tzinfo=UTC)),  # 08:00 local: open
        (datetime(2026, 11, 23, 18, 59, tzinfo=UTC), datetime(2026, 11, 23, 18, 59, tzinfo=UTC)),  # 19:59 local
        (datetime(2026, 11, 23, 19, 0, tzinfo=UTC), datetime(2026, 11, 24, 7, 0, tzinfo=UTC)),  # 20:00 -> next 08:00
        (datetime(2026, 11, 23, 22, 30, tzinfo=UTC), datetime(2026, 11, 24, 7, 0, tzinfo=UTC)),  # 23:30
        (datetime(2026, 11, 23, 23, 30, tzinfo=UTC), datetime(2026, 11, 24, 7, 0, tzinfo=UTC)),  # 00:30 next day
        (datetime(2026, 11, 24, 6, 59, tzinfo=UTC), datetime(2026, 11, 24, 7, 0, tzinfo=UTC)),  # 07:59 local
        # Summer, UTC+2.
        (datetime(2026, 7, 1, 5, 0, tzinfo=UTC), datetime(2026, 7, 1, 6, 0, tzinfo=UTC)),  # 07:00 -> 08:00 (06:00Z)
        (datetime(2026, 7, 1, 18, 30, tzinfo=UTC), datetime(2026, 7, 2, 6, 0, tzinfo=UTC)),  # 20:30
    ],
)
def test_sms_waits_for_the_end_of_quiet_hours(utc: datetime, expected: datetime) -> None:
    assert sms_send_time(utc, PARIS) == expected


def test_quiet_hours_across_the_spring_change_end_at_local_eight() -> None:
    # Night of 28-29 March 2026: clocks go from 02:00 to 03:00; 08:00 on the 29th is 06:00Z.
    assert sms_send_time(datetime(2026, 3, 28, 21, 0, tzinfo=UTC), PARIS) == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)


# --- consent and language --------------------------------------------------------------------------


def test_email_needs_an_address_and_sms_needs_consent() -> None:
    both = Customer(1, "A", "+33612345678", "a@example.org", sms_consent=True)
    neither = Customer(2, "B", "+33612345678", None, sms_consent=False)
    assert recipient(both, ChannelName.EMAIL) == "a@example.org"
    assert recipient(both, ChannelName.SMS) == "+33612345678"
    assert recipient(neither, ChannelName.EMAIL) is None
    assert recipient(neither, ChannelName.SMS) is None


def test_language_defaults_to_french() -> None:
    assert language_of(Customer(1, "A", "+33612345678")) == "fr"
    assert language_of(Customer(1, "A", "+33612345678", language="en")) == "en"
    assert language_of(Customer(1, "A", "+33612345678", language="de")) == "fr"


# --- words -----------------------------------------------------------------------------------------


def test_dates_in_words() -> None:
    assert date_in_words(date(2026, 12, 1), "fr") == "mardi 1er décembre"
    assert date_in_words(date(2026, 12, 3), "fr") == "jeudi 3 décembre"
    assert date_in_words(date(2026, 12, 1), "en") == "Tuesday 1 December"


def test_opening_hours_in_words_group_days() -> None:
    assert hours_in_words(HOURS, "fr") == "lun-sam 09:00-19:00"
    assert hours_in_words(SPLIT, "en") == "Mon-Fri 09:00-12:00 and 14:00-18:00; Sat 09:00-12:00"
    assert hours_in_words(SPLIT, "fr") == "lun-ven 09:00-12:00 et 14:00-18:00; sam 09:00-12:00"


def test_money() -> None:
    assert money(12950, "fr") == "129,50 €"
    assert money(129950, "fr") == "1\u202f299,50 €"
    assert money(12950, "en") == "€129.50"


# --- templates -------------------------------------------------------------------------------------


def test_job_received_in_french_by_email_greets_and_signs() -> None:
    message = render(Template.JOB_RECEIVED, ChannelName.EMAIL, "fr", facts())
    assert message.subject == "Appareil reçu (AT-000042)"
    assert message.body.startswith("Bonjour Camille,\n")
    assert "Nous avons bien reçu votre Apple iPhone 13 (dossier AT-000042)." in message.body
    assert message.body.rstrip().endswith("Atelier Valence")


def test_job_received_carries_the_tracking_link_when_there_is_one() -> None:
    message = render(Template.JOB_RECEIVED, ChannelName.SMS, "en", facts(tracking_url="https://t.example/x1"))
    assert message.subject == ""
    assert message.body == (
        "Atelier Valence: We have received your Apple iPhone 13 (job AT-000042). "
        "Follow the repair here: https://t.example/x1"
    )


def test_estimate_ready_states_the_total() -> None:
    fr = render(Template.ESTIMATE_READY, ChannelName.SMS, "fr", facts(total_cents=12950))
    en = render(Template.ESTIMATE_READY, ChannelName.EMAIL, "en", facts(total_cents=12950))
    assert "Montant : 129,50 €." in fr.body
    assert en.subject == "Estimate ready (AT-000042)"
    assert "Total: €129.50." in en.body


def test_parts_delayed_says_the_new_date_in_the_branch_timezone() -> None:
    # 23:30Z on 30 November is already Tuesday 1 December in Paris.
    data = facts(new_date="2026-11-30T23:30:00+00:00")
    assert (
        "Nouvelle date prévue : mardi 1er décembre." in render(Template.PARTS_DELAYED, ChannelName.SMS, "fr", data).body
    )
    assert (
        "The new expected date is Tuesday 1 December."
        in render(Template.PARTS_DELAYED, ChannelName.EMAIL, "en", data).body
    )


def test_parts_delayed_without_a_date_is_refused() -> None:
    with pytest.raises(InvalidValue):
        render(Template.PARTS_DELAYED, ChannelName.SMS, "fr", facts())


def test_ready_for_pickup_gives_the_opening_hours() -> None:
    message = render(Template.READY_FOR_PICKUP, ChannelName.SMS, "fr", facts(outcome="repaired"))
    assert message.body == (
        "Atelier Valence: Votre Apple iPhone 13 est réparé et vous attend en boutique. Horaires : lun-sam 09:00-19:00."
    )
    declined = render(Template.READY_FOR_PICKUP, ChannelName.EMAIL, "en", facts(outcome="declined"))
    assert "was not repaired; it is ready for pickup. Opening hours: Mon-Sat 09:00-19:00." in declined.body


def test_uncollected_reminder() -> None:
    message = render(Template.UNCOLLECTED_REMINDER, ChannelName.EMAIL, "en", facts())
    assert message.subject == "Reminder (AT-000042)"
    assert "still waiting for you" in message.body


@pytest.mark.parametrize("template", list(Template))
@pytest.mark.parametrize("language", ["fr", "en"])
def test_every_template_renders_short_on_sms(template: Template, language: str) -> None:
    message = render(template, ChannelName.SMS, language, facts(new_date="2026-12-01T10:00:00+00:00"))
    assert 0 < len(message.body) <= 320  # two SMS segments at most
    assert "{" not in message.body and "None" not in message.body
