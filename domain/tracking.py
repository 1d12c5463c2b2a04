"""What a customer sees through their tracking link, in plain words (French or English).

Pure: the view is built from the job, the forecast of its part lines and the branch. The link is a bearer
secret that gets forwarded, screenshotted and left in browser histories, so the view holds nothing that
identifies a person or a device: no name (not even a first name: "NOM Prénom" is common on French
tickets, so the first word of a name may well be the surname), phone, email, IMEI, serial number,
passcode, fault description (free text the customer dictated) or staff notes. The reference, the device's
make and model, the stage, the dates, the estimate and the branch's hours are what the customer needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from domain.errors import RuleConflict
from domain.model import Branch, Outcome, RepairJob
from domain.notifications import DEFAULT_LANGUAGE, LANGUAGES, date_in_words, hours_in_words, money
from domain.parts import PartLine
from domain.sla import Forecast
from domain.stages import Stage

# The steps a customer recognises, in order; each stage shows as one of them (`_STEP_OF`).
_STEPS = {
    "fr": ("Reçu", "Diagnostic", "Devis", "Réparation", "Prêt", "Récupéré"),
    "en": ("Received", "Diagnosis", "Estimate", "Repair", "Ready", "Collected"),
}
_STEP_OF = {
    Stage.RECEIVED: 0,
    Stage.DIAGNOSING: 1,
    Stage.AWAITING_APPROVAL: 2,
    Stage.AWAITING_PARTS: 3,
    Stage.REPAIRING: 3,
    Stage.QUALITY_CHECK: 3,
    Stage.READY_FOR_PICKUP: 4,
    Stage.COLLECTED: 5,
}

# (title, explanation) per stage and language.
_STAGE_WORDS: Mapping[str, Mapping[Stage, tuple[str, str]]] = {
    "fr": {
        Stage.RECEIVED: ("Appareil reçu", "Votre appareil est bien arrivé à l'atelier ; un technicien va l'examiner."),
        Stage.DIAGNOSING: ("Diagnostic en cours", "Un technicien cherche l'origine de la panne."),
        Stage.AWAITING_APPROVAL: (
            "Devis en attente de votre accord",
            "Le devis est prêt : dites-nous si nous pouvons lancer la réparation.",
        ),
        Stage.AWAITING_PARTS: ("En attente de pièces", "Nous attendons une pièce pour réparer votre appareil."),
        Stage.REPAIRING: ("Réparation en cours", "Un technicien répare votre appareil."),
        Stage.QUALITY_CHECK: ("Contrôle final", "La réparation est faite ; nous vérifions que tout fonctionne."),
        Stage.READY_FOR_PICKUP: ("Prêt à retirer", "Votre appareil est réparé et vous attend en boutique."),
        Stage.COLLECTED: ("Récupéré", "Vous avez récupéré votre appareil. Merci de votre confiance !"),
        Stage.ON_HOLD: ("En pause", "La réparation est momentanément en pause ; nous revenons vers vous."),
        Stage.CANCELLED: ("Annulé", "Ce dossier de réparation a été annulé."),
    },
    "en": {
        Stage.RECEIVED: ("Device received", "Your device has arrived at the workshop; a technician will look at it."),
        Stage.DIAGNOSING: ("Being diagnosed", "A technician is finding out what is wrong."),
        Stage.AWAITING_APPROVAL: (
            "Estimate awaiting your answer",
            "The estimate is ready: tell us whether we may go ahead with the repair.",
        ),
        Stage.AWAITING_PARTS: ("Waiting for parts", "We are waiting for a part to repair your device."),
        Stage.REPAIRING: ("Being repaired", "A technician is repairing your device."),
        Stage.QUALITY_CHECK: ("Final checks", "The repair is done; we are checking that everything works."),
        Stage.READY_FOR_PICKUP: ("Ready for pickup", "Your device is repaired and waiting for you at the shop."),
        Stage.COLLECTED: ("Collected", "You have collected your device. Thank you for your trust!"),
        Stage.ON_HOLD: ("On hold", "The repair is paused for the moment; we will get back to you."),
        Stage.CANCELLED: ("Cancelled", "This repair job was cancelled."),
    },
}
_NOT_REPAIRED = {
    "fr": "Nous n'avons pas pu réparer votre appareil ; il vous attend en boutique.",
    "en": "We could not repair your device; it is waiting for you at the shop.",
}
_DECLINED = {
    "fr": "Vous avez refusé le devis ; votre appareil vous attend en boutique.",
    "en": "You declined the estimate; your device is waiting for you at the shop.",
}
_ANSWERED = {
    "fr": "Merci, nous avons bien reçu votre réponse au devis.",
    "en": "Thank you, we have your answer to the estimate.",
}


@dataclass(frozen=True, slots=True)
class EstimateLineView:
    description: str
    quantity: int
    total_cents: int


@dataclass(frozen=True, slots=True)
class EstimateView:
    lines: tuple[EstimateLineView, ...]
    total_cents: int
    total: str  # in words: "129,50 €" / "€129.50"


@dataclass(frozen=True, slots=True)
class AnswerView:
    approved: bool
    at: datetime
    source: str  # customer (through the link), staff (told to the shop) or preapproved_budget


@dataclass(frozen=True, slots=True)
class BranchView:
    name: str
    hours: str  # in words: "lun-sam 09:00-19:00"
    opening_hours: Mapping[str, list[list[str]]]
    timezone: str


@dataclass(frozen=True, slots=True)
class TrackingView:
    """Everything the customer's page shows; nothing else about the job leaves through the link."""

    ref: str
    language: str
    device: str  # make and model only
    stage: Stage
    stage_title: str
    stage_text: str
    steps: tuple[str, ...]
    step: int | None  # index into `steps`; None when cancelled
    promised_at: datetime
    promised: str  # in words, branch time
    parts_delay: str | None  # in plain words, only when a part makes the repair late
    expected_ready_at: datetime | None  # the forecast, when parts push it past the promise
    estimate: EstimateView | None
    awaits_answer: bool  # approve/decline are offered
    answer: AnswerView | None
    outcome: str | None
    branch: BranchView
    link_expires_at: datetime | None


# --- the link's lifetime and the customer's answer -----------------------------------------------


def closed_at(job: RepairJob) -> datetime | None:
    """When the device left our care: its collection, or (cancelled) the job's last change."""
    if job.stage is Stage.COLLECTED:
        return job.collected_at or job.updated_at
    if job.stage is Stage.CANCELLED:
        return job.updated_at
    return None


def link_expires_at(job: RepairJob, days_after: int) -> datetime | None:
    closed = closed_at(job)
    return closed + timedelta(days=days_after) if closed is not None else None


def link_open(job: RepairJob, days_after: int, now: datetime) -> bool:
    expires = link_expires_at(job, days_after)
    return expires is None or now < expires


def can_answer(job: RepairJob) -> bool:
    """Whether the page offers approve/decline: an answer is expected and none is recorded yet."""
    return job.awaits_answer and job.approval is None


def answer_through_link(job: RepairJob, approved: bool, now: datetime, note: str | None) -> bool:
    """Record the customer's own answer; False when that same answer already stands (a form sent twice),
    so a double click neither changes the job nor alerts staff twice. A different answer once one is
    recorded, or an answer when none is expected, is a conflict: the customer calls the shop."""
    if job.awaits_answer and job.approval is not None:
        if job.approval.approved == approved:
            return False
        raise RuleConflict("an answer to this estimate is already recorded: call the shop to change it")
    if not job.awaits_answer:
        raise RuleConflict("no answer is expected for this repair now")
    job.record_customer_answer(approved, now, note)
    return True


# --- words ---------------------------------------------------------------------------------------


def language_or_default(language: str | None) -> str:
    return language if language in LANGUAGES else DEFAULT_LANGUAGE


def when_in_words(moment: datetime, tz: ZoneInfo, language: str) -> str:
    """ "mardi 24 novembre à 14:00" / "Tuesday 24 November at 14:00", in the branch's time."""
    local = moment.astimezone(tz)
    at = "à" if language == "fr" else "at"
    return f"{date_in_words(local.date(), language)} {at} {local.strftime('%H:%M')}"


def stage_words(job: RepairJob, language: str) -> tuple[str, str]:
    title, text = _STAGE_WORDS[language][job.stage]
    if job.stage is Stage.READY_FOR_PICKUP and job.outcome in (Outcome.DECLINED, Outcome.NOT_REPAIRED):
        text = _DECLINED[language] if job.outcome is Outcome.DECLINED else _NOT_REPAIRED[language]
    if job.stage is Stage.AWAITING_APPROVAL and job.approval is not None:
        text = _ANSWERED[language]
    return title, text


def parts_delay(
    job: RepairJob, lines: Sequence[PartLine], outlook: Forecast, tz: ZoneInfo, language: str, now: datetime
) -> str | None:
    """The parts delay in plain words, or None when no awaited part makes the repair late."""
    if not job.is_open or job.stage is Stage.READY_FOR_PICKUP or not any(line.waiting for line in lines):
        return None
    fr = language == "fr"
    if outlook.at_risk and outlook.ready_at is not None:
        ready, promised = when_in_words(outlook.ready_at, tz, language), when_in_words(job.due_at, tz, language)
        if fr:
            return (
                f"Une pièce arrive plus tard que prévu : votre appareil devrait être prêt {ready} "
                f"au lieu de {promised}. Nous sommes désolés pour ce retard."
            )
        return (
            f"A part is arriving later than planned: your device should be ready {ready} instead of {promised}. "
            "We are sorry for the delay."
        )
    if now > job.due_at:
        if fr:
            return "Une pièce se fait attendre ; nous vous donnerons une nouvelle date dès que possible."
        return "A part is still on its way; we will give you a new date as soon as we can."
    if any(line.is_late(now) for line in lines):
        if fr:
            return "Une pièce a pris du retard chez notre fournisseur, mais la date promise tient toujours."
        return "A part is running late at our supplier, but the promised date still holds."
    return None


# --- the view ------------------------------------------------------------------------------------


def tracking_view(
    job: RepairJob,
    branch: Branch,
    lines: Sequence[PartLine],
    outlook: Forecast,
    *,
    language: str,
    now: datetime,
    days_after: int,
) -> TrackingView:
    language = language_or_default(language)
    tz = branch.calendar.tz
    title, text = stage_words(job, language)
    step_stage = job.held_from if job.stage is Stage.ON_HOLD and job.held_from else job.stage
    delay = parts_delay(job, lines, outlook, tz, language, now)
    return TrackingView(
        ref=job.ref,
        language=language,
        device=f"{job.device.brand} {job.device.model}",
        stage=job.stage,
        stage_title=title,
        stage_text=text,
        steps=_STEPS[language],
        step=_STEP_OF.get(step_stage),
        promised_at=job.due_at,
        promised=when_in_words(job.due_at, tz, language),
        parts_delay=delay,
        expected_ready_at=outlook.ready_at if delay is not None and outlook.at_risk else None,
        estimate=_estimate(job, language),
        awaits_answer=can_answer(job),
        answer=_answer(job),
        outcome=job.outcome.value if job.outcome else None,
        branch=BranchView(branch.name, hours_in_words(branch.hours, language), branch.hours.to_mapping(), str(tz)),
        link_expires_at=link_expires_at(job, days_after),
    )


def _estimate(job: RepairJob, language: str) -> EstimateView | None:
    if not job.estimate:
        return None
    lines = tuple(EstimateLineView(line.description, line.quantity, line.total_cents) for line in job.estimate)
    return EstimateView(lines, job.estimate_total_cents, money(job.estimate_total_cents, language))


def _answer(job: RepairJob) -> AnswerView | None:
    approval = job.approval
    if approval is None:
        return None
    return AnswerView(approval.approved, approval.at, approval.source.value)
