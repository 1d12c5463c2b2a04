"""The job page: summary, stage buttons, estimate editor, approval, parts with their ETA timeline,
passcode reveal, notes and history. Handlers only translate forms to the use cases the API calls, and
domain errors to messages on the page.

Every change form carries the version of the job the user saw (the API's If-Match): a change made
meanwhile by someone else refuses the save with a "someone changed this job" banner, never overwrites.
After a change, an HTMX request gets the job's fragment back (every form then carries the new version);
a plain form post is redirected to the page (no re-post on reload). The parts forms (`job_parts.py`)
answer through the same `apply`, `settle` and `answer`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER
from pydantic import ValidationError

from domain.errors import DomainError, InvalidValue, NotFound
from domain.model import JobEvent, RepairJob
from domain.notifications import money
from domain.parts import EtaRevision, Part, PartLine, PartStatus, format_po
from domain.stages import Stage
from service.api.schemas import NoteIn
from service.uow import UnitOfWork
from service.usecases import branches, jobs, parts
from service.usecases.parts import PARTS_ROLES, JobParts
from service.usecases.sourcing import Quotes
from service.web.i18n import translator
from service.web.job_view import (
    EstimateRow,
    Problem,
    Timeline,
    describe,
    edit_rows,
    estimate_editable,
    lines_from_rows,
    may_reveal,
    problem_of,
    rows_from_form,
    rows_of,
    timeline,
    when,
)
from service.web.pages import Page, SignInForm, on_sign_in_required
from service.web.session import SignInRequired

CATALOGUE_SHOWN = 200  # suggestions in the part form; any catalogue SKU may still be typed
Change = Callable[[UnitOfWork, int], Awaitable[Any]]  # one use case, given the version the user saw
Parse = Callable[[], Change]  # reads the form (InvalidValue) before any transaction opens


@dataclass(frozen=True, slots=True)
class Typed:
    """What the user sent, shown again when the change is refused (nothing typed is lost)."""

    version: int | None = None  # the version the user saw: the forms keep it until they reload
    rows: list[EstimateRow] | None = None
    note: str = ""
    move_note: str = ""
    part_sku: str = ""
    part_quantity: str = "1"


@dataclass(frozen=True, slots=True)
class PartRow:
    line: PartLine
    revisions: list[EtaRevision]
    timeline: Timeline | None
    late_by: timedelta
    supplier: str | None  # who it is ordered from

    @property
    def orderable(self) -> bool:
        """Not (or no longer) on order: staff may order it, or compare the suppliers first."""
        return self.line.status in (PartStatus.NEEDED, PartStatus.CANCELLED)

    @property
    def receivable(self) -> bool:
        """On order and not all in yet: the delivery can be counted in."""
        return self.line.order_id is not None and self.line.waiting and not self.orderable


@dataclass(frozen=True, slots=True)
class EventRow:
    event: JobEvent
    words: str


@dataclass(frozen=True, slots=True)
class JobData:
    """One consistent read of everything the page shows."""

    parts: JobParts
    history: list[JobEvent]
    tz: ZoneInfo
    catalogue: list[Part]  # what a part line may name, the device's own parts first
    suppliers: dict[int, str]


@dataclass(frozen=True, slots=True)
class Shown:
    """How a request ends on the page: a refusal to show, a code revealed, a change saved."""

    problem: Problem | None = None
    revealed: str | None = None
    saved: str | None = None
    typed: Typed = field(default_factory=Typed)
    quotes: Quotes | None = None  # the suppliers' offers for one line, asked for by the user


class JobPages(Controller):
    path = "/app"
    include_in_schema = False
    exception_handlers = {SignInRequired: on_sign_in_required}

    @get("/jobs/{ref:str}")
    async def job(
        self, request: Request[Any, Any, Any], page: NamedDependency[Page], ref: FromPath[str]
    ) -> Response[Any]:
        return await answer(request, page, ref, Shown())

    @get([f"/jobs/{{ref:str}}/{form}" for form in ("move", "estimate", "approval", "notes", "passcode")])
    async def back_to_job(self, page: NamedDependency[Page], ref: FromPath[str]) -> Redirect:
        """A form's address opened as a page (signed in again after the session ran out): the job itself."""
        return Redirect(f"/app/jobs/{ref}", status_code=HTTP_303_SEE_OTHER)

    @post("/jobs/{ref:str}/move", status_code=200)
    async def move(
        self, request: Request[Any, Any, Any], page: NamedDependency[Page], ref: FromPath[str], data: SignInForm
    ) -> Response[Any]:
        cipher, settings = request.app.state.cipher, page.settings

        def parse() -> Change:
            to, note = _stage(data.get("to", "")), _optional_note(data.get("note", ""))
            return lambda uow, version: jobs.move(
                uow, page.actor, ref, version, to, now=page.now, settings=settings, cipher=cipher, note=note
            )

        typed = Typed(version_of(data), move_note=data.get("note", ""))
        return await apply(request, page, ref, "move", typed, parse)

    @post("/jobs/{ref:str}/estimate", status_code=200)
    async def estimate(
        self, request: Request[Any, Any, Any], page: NamedDependency[Page], ref: FromPath[str], data: SignInForm
    ) -> Response[Any]:
        """Save the estimate, or (`action` add / remove-N) only redraw the editor with a row more or less."""
        action = data.get("action", "save")
        rows = rows_from_form(data)
        typed = Typed(version_of(data), rows=edit_rows(rows, action))
        if action != "save":
            return await _redraw_editor(request, page, ref, typed)

        def parse() -> Change:
            lines = lines_from_rows(rows)
            return lambda uow, version: jobs.set_estimate(uow, page.actor, ref, version, lines, now=page.now)

        return await apply(request, page, ref, "estimate", typed, parse)

    @post("/jobs/{ref:str}/approval", status_code=200)
    async def approval(
        self, request: Request[Any, Any, Any], page: NamedDependency[Page], ref: FromPath[str], data: SignInForm
    ) -> Response[Any]:
        """The customer's answer, taken at the counter or on the phone."""

        def parse() -> Change:
            approved = _yes_or_no(data.get("approved", ""))
            return lambda uow, version: jobs.record_approval(uow, page.actor, ref, version, approved, now=page.now)

        return await apply(request, page, ref, "approval", Typed(version_of(data)), parse)

    @post("/jobs/{ref:str}/notes", status_code=200)
    async def notes(
        self, request: Request[Any, Any, Any], page: NamedDependency[Page], ref: FromPath[str], data: SignInForm
    ) -> Response[Any]:
        def parse() -> Change:
            note = _note(data.get("note", ""))
            return lambda uow, version: jobs.add_note(uow, page.actor, ref, version, note, now=page.now)

        return await apply(request, page, ref, "notes", Typed(version_of(data), note=data.get("note", "")), parse)

    @post("/jobs/{ref:str}/passcode", status_code=200)
    async def passcode(
        self, request: Request[Any, Any, Any], page: NamedDependency[Page], ref: FromPath[str], data: SignInForm
    ) -> Response[Any]:
        """Show the unlock code once; the use case records the reveal (reading is no change: no version)."""
        t = translator(page.language)
        try:
            async with page.db.transaction() as uow:
                code = await jobs.reveal_passcode(uow, page.actor, ref, now=page.now, cipher=request.app.state.cipher)
        except DomainError as exc:
            return await answer(request, page, ref, Shown(problem_of(exc, "passcode", t)))
        shown = await answer(request, page, ref, Shown(revealed=code))
        shown.headers["Cache-Control"] = "no-store"  # the code is never kept by a cache or the history
        return shown


# --- form values -------------------------------------------------------------------------------


def version_of(data: dict[str, str]) -> int | None:
    raw = data.get("version", "").strip()
    return int(raw) if raw.isdigit() else None


def _stage(raw: str) -> Stage:
    try:
        return Stage(raw)
    except ValueError as exc:
        raise InvalidValue("to", "one of the stages shown") from exc


def _yes_or_no(raw: str) -> bool:
    if raw not in ("true", "false"):
        raise InvalidValue("approved", "the customer approves or declines")
    return raw == "true"


def _note(raw: str) -> str:
    """A note by the API's rules (NoteIn): 1 to 4000 characters once trimmed, no NUL."""
    try:
        return NoteIn.model_validate({"note": raw}).note
    except ValidationError as exc:
        raise InvalidValue("note", str(exc.errors()[0]["msg"])) from exc


def _optional_note(raw: str) -> str | None:
    return _note(raw) if raw.strip() else None


# --- applying a change and answering -----------------------------------------------------------


async def apply(
    request: Request[Any, Any, Any], page: Page, ref: str, section: str, typed: Typed, parse: Parse
) -> Response[Any]:
    """One change guarded by the version the user saw, in one transaction."""

    async def change_at_version() -> None:
        if typed.version is None:
            raise InvalidValue("version", "the form lost the job's version: reload the page")
        change = parse()
        async with page.db.transaction() as uow:
            await change(uow, typed.version)

    return await settle(request, page, ref, section, typed, change_at_version)


async def settle(
    request: Request[Any, Any, Any],
    page: Page,
    ref: str,
    section: str,
    typed: Typed,
    act: Callable[[], Awaitable[Any]],
) -> Response[Any]:
    """Run one action; a refusal re-renders the page with what was typed and why, a success shows the
    job again (HTMX: its fragment; a plain form: a redirect, so a reload does not post twice)."""
    t = translator(page.language)
    try:
        await act()
    except DomainError as exc:
        return await answer(request, page, ref, Shown(problem_of(exc, section, t), typed=typed))
    if not is_htmx(request):
        return Redirect(f"/app/jobs/{ref}", status_code=HTTP_303_SEE_OTHER)
    return await answer(request, page, ref, Shown(saved=section))


async def _redraw_editor(request: Request[Any, Any, Any], page: Page, ref: str, typed: Typed) -> Response[Any]:
    """A row added or removed: nothing is saved. HTMX swaps the editor alone, keeping the rest as typed."""
    fragment = "_job_estimate.html.j2" if is_htmx(request) else None
    return await answer(request, page, ref, Shown(typed=typed), fragment=fragment)


async def answer(
    request: Request[Any, Any, Any], page: Page, ref: str, shown: Shown, *, fragment: str | None = None
) -> Response[Any]:
    """The whole page, or for HTMX the job's fragment (or `fragment`), with the status of what is shown."""
    try:
        data = await _read(page, ref)
    except NotFound:
        missing = page.render("job.html.j2", job=None, ref=ref)
        missing.status_code = 404
        return missing
    template = fragment or ("_job.html.j2" if is_htmx(request) else "job.html.j2")
    answer: Template = page.render(template, **_context(page, data, shown))
    answer.status_code = shown.problem.status if shown.problem else 200
    return answer


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    return bool(request.headers.get("hx-request"))


async def _read(page: Page, ref: str) -> JobData:
    async with page.db.transaction(write=False) as uow:
        view = await parts.job_parts(uow, page.actor, ref, now=page.now, sla=page.settings.sla_policy)
        history = await jobs.job_history(uow, page.actor, ref)
        branch = await branches.branch_of(uow, page.actor, view.job.branch_code)
        # Read on every render (each HTMX change too): only what this user's page will show.
        catalogue = await _catalogue(uow, view.job) if _may_add_parts(page, view.job) else []
        on_order = any(line.supplier_id is not None for line in view.lines)
        names = {s.supplier.id: s.supplier.name for s in await uow.suppliers.list()} if on_order else {}
    return JobData(view, history, branch.calendar.tz, catalogue, names)


def _may_add_parts(page: Page, job: RepairJob) -> bool:
    return page.actor.role in PARTS_ROLES and job.is_open


async def _catalogue(uow: UnitOfWork, job: RepairJob) -> list[Part]:
    """The part form's suggestions: the device model's parts first, then the rest of the catalogue."""
    catalogue = await uow.catalogue.list(None, job.device.model, CATALOGUE_SHOWN)
    if len(catalogue) < CATALOGUE_SHOWN:
        catalogue += [p for p in await uow.catalogue.list(None, None, CATALOGUE_SHOWN) if p not in catalogue]
    return catalogue[:CATALOGUE_SHOWN]


def _context(page: Page, data: JobData, shown: Shown) -> dict[str, Any]:
    job, typed, role = data.parts.job, shown.typed, page.actor.role
    # The forms keep the version the user saw: once it is not the job's, every save is refused until a reload.
    version = typed.version if typed.version is not None else job.version
    problem = shown.problem
    return {
        "job": job,
        "ref": job.ref,
        "version": version,
        "stale": (problem is not None and problem.stale) or version != job.version,
        "problem": problem,
        "saved": shown.saved,
        "revealed": shown.revealed,
        "first_name": _first_name(job),
        "when": lambda moment: when(moment, data.tz),
        "money": lambda cents: money(cents, page.language),
        "po": format_po,
        "targets": [Stage(stage) for stage in job.allowed_targets(role)],
        "editable": estimate_editable(job, role),
        "rows": typed.rows if typed.rows is not None else rows_of(job.estimate, page.language),
        "may_reveal": may_reveal(job, page.actor.user_id, role),
        "typed": typed,
        "parts": _part_rows(page, data),
        "parts_staff": _may_add_parts(page, job),
        "catalogue": data.catalogue,
        "quotes": shown.quotes,
        "forecast": data.parts.forecast,
        "events": [EventRow(e, describe(e, page.language, data.tz)) for e in reversed(data.history)],
    }


def _first_name(job: RepairJob) -> str:
    """Enough to greet the customer at the counter; the rest of their data stays off the bench."""
    return job.customer.name.split()[0] if job.customer.name.strip() else "—"


def _part_rows(page: Page, data: JobData) -> list[PartRow]:
    t = translator(page.language)
    rows = []
    for line in data.parts.lines:
        revisions = data.parts.history.get(line.id or 0, [])
        drawn = timeline(line, revisions, page.now, data.tz, t)
        supplier = data.suppliers.get(line.supplier_id) if line.supplier_id is not None else None
        rows.append(PartRow(line, revisions, drawn, line.late_by(page.now), supplier))
    return rows
