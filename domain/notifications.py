"""What we tell customers, in which language, on which channel, and when an SMS may go.

Pure: templates render from plain values (the job's facts, the branch's calendar); the rules say which
channels a customer agreed to and when a text message may be sent. Sending is `integrations.notify`'s.

- Language: the customer's ("fr" or "en"); anything else falls back to French.
- Consent: email when the customer gave an address; SMS only with `sms_consent` (and a phone).
- Quiet hours: no SMS from 20:00 to 08:00 branch time. A message due then is delayed to 08:00, never dropped.
- Relevance: a message waits (quiet hours, a retry), so what it says is checked again when it goes; one
  whose reason has passed (the parts came in, the device was collected) is not sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from domain.calendar import WEEKDAYS, OpeningHours
from domain.errors import InvalidValue
from domain.model import Customer, RepairJob
from domain.parts import PartLine
from domain.stages import Stage

LANGUAGES = ("fr", "en")
DEFAULT_LANGUAGE = "fr"
QUIET_FROM = time(20, 0)
QUIET_UNTIL = time(8, 0)


class Template(StrEnum):
    JOB_RECEIVED = "job_received"
    ESTIMATE_READY = "estimate_ready"
    PARTS_DELAYED = "parts_delayed"
    READY_FOR_PICKUP = "ready_for_pickup"
    UNCOLLECTED_REMINDER = "uncollected_reminder"


class ChannelName(StrEnum):
    EMAIL = "email"
    SMS = "sms"


@dataclass(frozen=True, slots=True)
class Message:
    subject: str  # email only; an SMS has none
    body: str


@dataclass(frozen=True, slots=True)
class Facts:
    """What a template may say: the job, the branch and the trigger's own data."""

    ref: str
    customer_name: str
    device: str  # "Apple iPhone 13"
    branch_name: str
    hours: OpeningHours
    tz: ZoneInfo
    data: Mapping[str, Any]  # per template: tracking_url, total_cents, new_date (ISO 8601), outcome


def language_of(customer: Customer) -> str:
    return customer.language if customer.language in LANGUAGES else DEFAULT_LANGUAGE


def recipient(customer: Customer, channel: ChannelName) -> str | None:
    """Where this channel reaches the customer, or None when it must not be used (no address, no consent)."""
    if channel is ChannelName.EMAIL:
        return customer.email or None
    return customer.phone if customer.sms_consent and customer.phone else None


def sms_send_time(now: datetime, tz: ZoneInfo) -> datetime:
    """`now` outside quiet hours, else the next 08:00 branch time (UTC)."""
    local = now.astimezone(tz)
    if QUIET_UNTIL <= local.time() < QUIET_FROM:
        return now
    day = local.date() + timedelta(days=1) if local.time() >= QUIET_FROM else local.date()
    return datetime.combine(day, QUIET_UNTIL, tzinfo=tz).astimezone(UTC)


STALE = "no longer relevant"  # how a skipped message's reason starts when its reason has passed
ALREADY_TOLD = "already told"


def stale_reason(template: Template, job: RepairJob, lines: Sequence[PartLine]) -> str | None:
    """Why a message asked for earlier must not be sent now (its reason has passed), or None to send it.
    `lines`: the job's part lines (only a parts delay reads them)."""
    if template is Template.JOB_RECEIVED:
        return None  # a fact of the past: true whenever it is told
    if template is Template.PARTS_DELAYED:
        if not job.is_open:
            return f"{STALE}: the job is {job.stage}"
        return None if any(line.waiting for line in lines) else f"{STALE}: the parts have arrived"
    if template is Template.ESTIMATE_READY:
        # Answered (a job stays in awaiting_approval until moved on), or moved on: nothing to ask any more.
        unanswered = job.awaits_answer and job.approval is None
        return None if unanswered else f"{STALE}: the estimate is no longer awaiting an answer"
    # Ready for pickup and the reminders: only while the device waits on the shelf.
    if job.stage is Stage.READY_FOR_PICKUP:
        return None
    if job.stage is Stage.COLLECTED:
        return f"{STALE}: the device was collected"
    return f"{STALE}: the device is no longer ready for pickup ({job.stage})"


def announced_day(data: Mapping[str, Any], tz: ZoneInfo) -> date | None:
    """The new date a parts delay tells, as the customer reads it (the branch's local day)."""
    raw = data.get("new_date")
    return datetime.fromisoformat(str(raw)).astimezone(tz).date() if raw else None


def already_told(data: Mapping[str, Any], told: Iterable[Mapping[str, Any]], tz: ZoneInfo) -> bool:
    """Whether a parts delay's new date is one of those the customer was told already (`told`: the data of
    the job's parts delays sent or being sent): the same day twice is noise, whatever the hour."""
    day = announced_day(data, tz)
    return day is not None and any(announced_day(other, tz) == day for other in told)


# --- words -----------------------------------------------------------------------------------------

_DAYS = {
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_SHORT_DAYS = {
    "fr": ("lun", "mar", "mer", "jeu", "ven", "sam", "dim"),
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
}
_MONTHS = {
    "fr": (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}


def date_in_words(day: date, language: str) -> str:
    """ "mardi 1er décembre" / "Tuesday 1 December"."""
    weekday = _DAYS[language][day.weekday()]
    month = _MONTHS[language][day.month - 1]
    if language == "fr":
        return f"{weekday} {'1er' if day.day == 1 else day.day} {month}"
    return f"{weekday} {day.day} {month}"


def hours_in_words(hours: OpeningHours, language: str) -> str:
    """Consecutive days with the same hours together: "lun-sam 09:00-19:00", or
    "Mon-Fri 09:00-12:00 and 14:00-18:00; Sat 09:00-12:00"."""
    joiner = " et " if language == "fr" else " and "
    groups: list[tuple[int, int, str]] = []
    for index in range(len(WEEKDAYS)):
        intervals = hours.days[index]
        if not intervals:
            continue
        text = joiner.join(f"{i.opens.strftime('%H:%M')}-{i.closes.strftime('%H:%M')}" for i in intervals)
        if groups and groups[-1][1] == index - 1 and groups[-1][2] == text:
            groups[-1] = (groups[-1][0], index, text)
        else:
            groups.append((index, index, text))
    names = _SHORT_DAYS[language]
    parts = [f"{names[first]}{'' if first == last else '-' + names[last]} {text}" for first, last, text in groups]
    return "; ".join(parts)


def money(cents: int, language: str) -> str:
    euros, rest = divmod(cents, 100)
    if language == "fr":
        return f"{euros:,}".replace(",", "\u202f") + f",{rest:02d} €"
    return f"€{euros:,}.{rest:02d}"


# --- templates -------------------------------------------------------------------------------------


def render(template: Template, channel: ChannelName, language: str, facts: Facts) -> Message:
    """The message for one channel: an email greets and signs; an SMS is one short paragraph."""
    language = language if language in LANGUAGES else DEFAULT_LANGUAGE
    subject, text = _TEXTS[template](language, facts)
    if channel is ChannelName.SMS:
        return Message("", f"{facts.branch_name}: {text}")
    if language == "fr":
        body = f"Bonjour {facts.customer_name},\n\n{text}\n\nÀ bientôt,\n{facts.branch_name}\n"
    else:
        body = f"Hello {facts.customer_name},\n\n{text}\n\nSee you soon,\n{facts.branch_name}\n"
    return Message(f"{subject} ({facts.ref})", body)


def _job_received(language: str, f: Facts) -> tuple[str, str]:
    link = f.data.get("tracking_url")
    if language == "fr":
        text = f"Nous avons bien reçu votre {f.device} (dossier {f.ref})."
        text += f" Suivez la réparation ici : {link}" if link else " Nous vous tiendrons informé(e)."
        return "Appareil reçu", text
    text = f"We have received your {f.device} (job {f.ref})."
    text += f" Follow the repair here: {link}" if link else " We will keep you posted."
    return "Device received", text


def _estimate_ready(language: str, f: Facts) -> tuple[str, str]:
    total = f.data.get("total_cents")
    link = f.data.get("tracking_url")  # where the customer can approve or decline it themselves
    if language == "fr":
        amount = f" Montant : {money(int(total), language)}." if total is not None else ""
        ask = f"Acceptez-le ou refusez-le ici : {link}" if link else "Merci de nous donner votre accord."
        return "Devis prêt", f"Le devis pour votre {f.device} est prêt.{amount} {ask}"
    amount = f" Total: {money(int(total), language)}." if total is not None else ""
    ask = f"Approve or decline it here: {link}" if link else "Please tell us if we may go ahead."
    return "Estimate ready", f"The estimate for your {f.device} is ready.{amount} {ask}"


def _parts_delayed(language: str, f: Facts) -> tuple[str, str]:
    day = announced_day(f.data, f.tz)
    if day is None:
        raise InvalidValue("new_date", "a parts delay names the new date")
    when = date_in_words(day, language)
    if language == "fr":
        return "Pièce en retard", f"Une pièce pour votre {f.device} arrive en retard. Nouvelle date prévue : {when}."
    return "Part delayed", f"A part for your {f.device} is late. The new expected date is {when}."


def _ready_for_pickup(language: str, f: Facts) -> tuple[str, str]:
    hours = hours_in_words(f.hours, language)
    repaired = f.data.get("outcome", "repaired") == "repaired"
    code = f.data.get("pickup_code")  # asked for at the counter before the device is handed over
    if language == "fr":
        state = "est réparé et vous attend" if repaired else "n'a pas été réparé ; il vous attend"
        text = f"Votre {f.device} {state} en boutique. Horaires : {hours}."
        text += f" Votre code de retrait : {code}." if code else ""
        return "Prêt à retirer", text
    state = "is repaired and ready" if repaired else "was not repaired; it is ready"
    text = f"Your {f.device} {state} for pickup. Opening hours: {hours}."
    text += f" Your pickup code: {code}." if code else ""
    return "Ready for pickup", text


def _uncollected(language: str, f: Facts) -> tuple[str, str]:
    hours = hours_in_words(f.hours, language)
    if language == "fr":
        return "Rappel", f"Votre {f.device} vous attend toujours en boutique. Horaires : {hours}."
    return "Reminder", f"Your {f.device} is still waiting for you at the shop. Opening hours: {hours}."


_TEXTS = {
    Template.JOB_RECEIVED: _job_received,
    Template.ESTIMATE_READY: _estimate_ready,
    Template.PARTS_DELAYED: _parts_delayed,
    Template.READY_FOR_PICKUP: _ready_for_pickup,
    Template.UNCOLLECTED_REMINDER: _uncollected,
}
