"""What the job page and the bench show, computed apart from the handlers: the history in plain words,
the ETA timeline of a part line, the estimate editor's rows, and the domain errors as messages. Pure
functions of domain objects and the page's words: no database, no request."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from domain.errors import DomainError, InvalidValue, NotFound, NotPermitted, VersionConflict
from domain.model import EstimateLine, EventKind, JobEvent, LineKind, RepairJob
from domain.notifications import money
from domain.parts import EtaRevision, PartLine
from domain.stages import Role, Stage
from service.api.schemas import EstimateIn
from service.errors import SupplierFailure
from service.web.i18n import stage_name, translator

Words = Callable[[str], str]
MAX_ROWS = 50  # as many estimate lines as the API takes

# --- times and amounts -----------------------------------------------------------------------


def when(moment: datetime | None, tz: ZoneInfo) -> str:
    """A date and time in the branch's own time: what the shop's clock on the wall says."""
    return moment.astimezone(tz).strftime("%d/%m %H:%M") if moment else "—"


def price_text(cents: int, language: str) -> str:
    """A unit price as staff type it back: "89,00" in French, "89.00" in English."""
    separator = "," if language == "fr" else "."
    return f"{cents // 100}{separator}{cents % 100:02d}"


_PRICE = re.compile(r"^(\d{1,7})(?:[.,](\d{1,2}))?€?$")


def price_cents(text: str, field: str) -> int:
    """Euros as typed at a French or English keyboard ("89", "89,5", "89.50 €") into cents."""
    match = _PRICE.match(re.sub(r"[\s\u202f]", "", text))
    if not match:
        raise InvalidValue(field, "a price in euros, like 89.00")
    return int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))


# --- the estimate editor ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EstimateRow:
    """One line of the editor, as typed (kept as text, so a refused save shows exactly what was typed)."""

    kind: str = LineKind.PART.value
    description: str = ""
    quantity: str = "1"
    price: str = ""

    @property
    def blank(self) -> bool:
        return not self.description.strip() and not self.price.strip()


def rows_of(lines: Sequence[EstimateLine], language: str) -> list[EstimateRow]:
    rows = [
        EstimateRow(line.kind.value, line.description, str(line.quantity), price_text(line.unit_price_cents, language))
        for line in lines
    ]
    return rows or [EstimateRow()]


def rows_from_form(form: Mapping[str, str]) -> list[EstimateRow]:
    """The editor's rows from its fields (`kind-N`, `description-N`, `quantity-N`, `price-N`), in order.

    One row more than an estimate takes is kept: a form with too many rows is then refused by the API's
    rules (`lines_from_rows`), never cut to the first MAX_ROWS and saved without the rest."""
    indexes = sorted(
        {int(key.split("-", 1)[1]) for key in form if key.startswith("description-") and key[12:].isdigit()}
    )
    return [
        EstimateRow(
            form.get(f"kind-{i}", LineKind.PART.value),
            form.get(f"description-{i}", ""),
            form.get(f"quantity-{i}", "1"),
            form.get(f"price-{i}", ""),
        )
        for i in indexes[: MAX_ROWS + 1]
    ]


def edit_rows(rows: list[EstimateRow], action: str) -> list[EstimateRow]:
    """`add` appends an empty row, `remove-N` drops row N; the editor always keeps one row."""
    if action == "add" and len(rows) < MAX_ROWS:
        return [*rows, EstimateRow()]
    if action.startswith("remove-") and action[7:].isdigit():
        index = int(action[7:])
        rows = [row for i, row in enumerate(rows) if i != index]
    return rows or [EstimateRow()]


def lines_from_rows(rows: Sequence[EstimateRow]) -> list[EstimateLine]:
    """The estimate lines of the filled rows, checked by the API's own rules (EstimateIn)."""
    filled = [(number, row) for number, row in enumerate(rows, start=1) if not row.blank]
    bodies = [_line_body(number, row) for number, row in filled]
    try:
        checked = EstimateIn.model_validate({"lines": bodies})
    except ValidationError as exc:
        raise _invalid(exc, [number for number, _ in filled]) from exc
    return [line.to_domain() for line in checked.lines]


def _line_body(number: int, row: EstimateRow) -> dict[str, Any]:
    if not row.quantity.strip().isdigit():
        raise InvalidValue(f"line {number} quantity", "a whole number, at least 1")
    return {
        "kind": row.kind,
        "description": row.description,
        "quantity": int(row.quantity.strip()),
        "unit_price_cents": price_cents(row.price, f"line {number} unit price"),
    }


def _invalid(exc: ValidationError, numbers: Sequence[int]) -> InvalidValue:
    """The first complaint of the API's schema, naming the row as staff see it (line 2, not lines[1])."""
    error = exc.errors()[0]
    location = list(error["loc"])
    if len(location) >= 2 and location[0] == "lines" and isinstance(location[1], int):
        name = " ".join(str(part) for part in location[2:]).replace("unit_price_cents", "unit price")
        return InvalidValue(f"line {numbers[location[1]]} {name}".strip(), str(error["msg"]))
    return InvalidValue(".".join(str(part) for part in location) or "lines", str(error["msg"]))


def estimate_editable(job: RepairJob, role: Role) -> bool:
    """Whether to offer the editor: the domain's rule (set_estimate) seen from the page; the use case
    still decides."""
    if role not in (Role.TECHNICIAN, Role.MANAGER):
        return False
    estimating = (Stage.RECEIVED, Stage.DIAGNOSING, Stage.AWAITING_APPROVAL, Stage.AWAITING_PARTS)
    return job.stage in estimating and not (job.stage is Stage.AWAITING_PARTS and job.approval is not None)


def may_reveal(job: RepairJob, user_id: int, role: Role) -> bool:
    """The reveal button only for who the use case lets read the code: a manager or the assigned technician."""
    assigned = job.technician is not None and job.technician.user_id == user_id
    return job.has_passcode and (role is Role.MANAGER or (role is Role.TECHNICIAN and assigned))


# --- errors ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """A refused change, shown where it was asked (`section`) instead of an error page."""

    section: str
    message: str
    status: int
    stale: bool = False


def problem_of(exc: DomainError, section: str, t: Words) -> Problem:
    if isinstance(exc, VersionConflict):
        return Problem(section, t("job_stale"), 412, stale=True)
    if isinstance(exc, InvalidValue):
        return Problem(section, f"{t('job_err_invalid')} — {exc.field}: {exc.reason}", 422)
    if isinstance(exc, NotPermitted):
        return Problem(section, f"{t('job_err_not_permitted')} — {exc.detail}", 403)
    if isinstance(exc, NotFound):
        return Problem(section, f"{t('job_err_not_found')} — {exc.detail}", 404)
    if isinstance(exc, SupplierFailure):  # unreachable (503, try again) or refused (409)
        return Problem(section, f"{t('job_err_supplier')} — {exc.detail}", exc.status)
    return Problem(section, f"{t('job_err_conflict')} — {exc.detail}", 409)


# --- history in plain words ------------------------------------------------------------------


class _Blank(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "—"


def describe(event: JobEvent, language: str, tz: ZoneInfo) -> str:
    """One entry of the history as a sentence in the page's language (its note is shown apart)."""
    t = translator(language)
    data = event.data
    key, values = _words_of(event, data, language, tz)
    return t(key).format_map(_Blank(values))


def _words_of(event: JobEvent, data: Mapping[str, Any], language: str, tz: ZoneInfo) -> tuple[str, dict[str, Any]]:
    kind = event.kind
    values: dict[str, Any] = {k: v for k, v in data.items() if v is not None}
    if "total_cents" in data:
        values["total"] = money(int(data["total_cents"]), language)
    if kind is EventKind.CREATED:
        values["tier"] = translator(language)(str(data.get("tier", "")))
        values["due"] = when(_parse(data.get("due_at")), tz)
    elif kind is EventKind.STAGE_CHANGED:
        values["frm"] = stage_name(event.from_stage, language) if event.from_stage else "—"
        values["to"] = stage_name(event.to_stage, language) if event.to_stage else "—"
        if data.get("reason") == "parts_added":
            return "ev_stage_parts", values
    elif kind is EventKind.APPROVAL_RECORDED:
        return ("ev_approval_yes" if data.get("approved") else "ev_approval_no"), values
    elif kind is EventKind.ASSIGNED and not data.get("to"):
        return "ev_unassigned", values
    elif kind is EventKind.ETA_REVISED:
        values["new"] = when(_parse(data.get("new_eta")), tz)
        values["source"] = translator(language)(f"job_src_{data.get('source', '')}")
    elif kind is EventKind.PART_ORDERED:
        values["promised"] = when(_parse(data.get("promised_at")), tz)
    elif kind is EventKind.PART_BACKORDERED and not data.get("backordered"):
        return "ev_part_back_in", values
    elif kind is EventKind.NOTIFICATION_DELAYED:
        values["until"] = when(_parse(data.get("until")), tz)
    elif kind is EventKind.NOTIFICATION_RETRY:
        values["next"] = when(_parse(data.get("next_try_at")), tz)
    elif kind is EventKind.NOTIFICATION_SKIPPED:
        why = f"ev_why_{data.get('why')}"
        words = translator(language)(why)
        values["why"] = words if words != why else data.get("reason") or "—"  # a reason without words yet
    return f"ev_{kind.value}", values


def _parse(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


# --- the ETA timeline of a part line ---------------------------------------------------------

_WIDTH, _LEFT, _RIGHT, _ROW, _TOP = 600, 12, 12, 18, 22


@dataclass(frozen=True, slots=True)
class Mark:
    """One revision on the timeline: from the ETA it replaced to the new one, on its own row."""

    x_from: float
    x_to: float
    y: float
    tone: str  # "first", "slipped" or "earlier": the CSS class (and the legend's words)
    label: str
    label_x: float
    anchor: str  # SVG text-anchor: labels stay inside the drawing


@dataclass(frozen=True, slots=True)
class Timeline:
    width: int
    height: int
    promise_x: float | None
    now_x: float | None
    marks: list[Mark]
    start: str
    end: str


def timeline(
    line: PartLine, revisions: Sequence[EtaRevision], now: datetime, tz: ZoneInfo, t: Words
) -> Timeline | None:
    """The promise against each revision of the ETA, on one time axis; None before any date is known."""
    if not revisions:
        return None
    moments = [r.new_eta for r in revisions] + [r.old_eta for r in revisions if r.old_eta] + [now]
    if line.promised_at:
        moments.append(line.promised_at)
    low, high = min(moments), max(moments)
    if high - low < timedelta(hours=1):
        low, high = low - timedelta(hours=12), high + timedelta(hours=12)
    span = (high - low).total_seconds()

    def x(moment: datetime) -> float:
        return round(_LEFT + (_WIDTH - _LEFT - _RIGHT) * (moment - low).total_seconds() / span, 1)

    marks = [_mark(i, r, x, t) for i, r in enumerate(revisions)]
    height = _TOP + _ROW * len(revisions) + 18
    promise = x(line.promised_at) if line.promised_at else None
    return Timeline(_WIDTH, height, promise, x(now), marks, when(low, tz), when(high, tz))


def _mark(index: int, revision: EtaRevision, x: Callable[[datetime], float], t: Words) -> Mark:
    end = x(revision.new_eta)
    start = x(revision.old_eta) if revision.old_eta else end
    tone = "first" if revision.old_eta is None else ("slipped" if revision.slipped else "earlier")
    anchor = "end" if end > _WIDTH / 2 else "start"
    label_x = end - 8 if anchor == "end" else end + 8
    return Mark(
        start, end, _TOP + _ROW * index + _ROW / 2, tone, t(f"job_src_{revision.source.value}"), label_x, anchor
    )
