"""The counter (front desk): the intake form, today's express slots, the search, and the printable ticket.

Handlers only translate: jobs come from the same use cases as the API (`jobs.intake` behind the same
Idempotency-Key machinery, `jobs.list_jobs`, `express.capacity`, `tracking.url_of`). Refusals are shown on
the page, next to the field they name, with the API's status code.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

import segno
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from domain.errors import DomainError
from domain.express import ExpressDay
from domain.model import FaultCategory, RepairJob
from service.idempotency import run_idempotent
from service.persistence.idempotency import StoredResponse
from service.persistence.jobs import JobFilter
from service.secrets import PasscodeCipher
from service.uow import UnitOfWork
from service.usecases import branches, express, jobs, tracking
from service.usecases.jobs import IntakeCommand
from service.web import intake_form
from service.web.desk import helpers, is_htmx, local, money, render, sign_in_then, status_of, words_of
from service.web.i18n import translator
from service.web.pages import Page, SignInForm
from service.web.session import SignInRequired

COUNTER = "/app/counter"
SEARCH_LIMIT = 20
SEARCH_MAX = 100  # as the API's `q`
QR_SCALE = 3


class CounterPages(Controller):
    path = "/app"
    include_in_schema = False
    exception_handlers = {SignInRequired: sign_in_then(COUNTER)}

    @get("/counter")
    async def counter(self, page: NamedDependency[Page]) -> Template:
        return await _counter_page(page, {}, {})

    @post("/counter/intake", status_code=HTTP_303_SEE_OTHER)
    async def intake(self, page: NamedDependency[Page], data: SignInForm, state: State) -> Response[Any]:
        t = translator(page.language)
        read = intake_form.read_intake(data, t)
        if read.command is None:
            return await _counter_page(page, read.values, read.errors, status=422)
        key = intake_form.valid_key(read.values[intake_form.KEY])
        try:
            ref = await _take_in(page, state.cipher, read.command, key, intake_form.fingerprint(data))
        except DomainError as exc:
            errors = intake_form.placed_refusal(exc, t)
            return await _counter_page(page, read.values, errors, status=status_of(exc))
        return Redirect(f"/app/jobs/{ref}/ticket?new=1", status_code=HTTP_303_SEE_OTHER)

    @post("/counter/check")
    async def check(self, page: NamedDependency[Page], data: SignInForm) -> Template:
        """One field checked as the desk leaves it (HTMX): the message that goes next to it."""
        t = translator(page.language)
        name = next((name for name in intake_form.CHECKED if name in data), "")
        value = data.get(name, "").strip()
        error = intake_form.field_error(name, value, t) if name else None
        message = error or (intake_form.field_ok(name, value, t) if name else "")
        return page.render("_field_msg.html.j2", ok=error is None, message=message)

    @get("/counter/express")
    async def express_slots(self, page: NamedDependency[Page]) -> Template:
        """Today's express slots alone: the counter polls it, as another desk may take one."""
        return page.render("_express_slots.html.j2", express=await _express_day(page))

    @get("/counter/search")
    async def search(
        self,
        request: Request[Any, Any, Any],
        page: NamedDependency[Page],
        q: Annotated[str, QueryParameter(max_length=1000)] = "",
    ) -> Template:
        found = await _search(page, q)
        if is_htmx(request):
            return page.render("_counter_results.html.j2", search=found, **helpers(page))
        return await _counter_page(page, {}, {}, search=found)

    @get("/jobs/{ref:str}/ticket")
    async def ticket(
        self,
        page: NamedDependency[Page],
        state: State,
        ref: FromPath[str],
        new: Annotated[bool, QueryParameter()] = False,
    ) -> Template:
        """The printable ticket (A6): what was taken in, the customer's link as a QR code, their consent."""
        try:
            context = await _ticket(page, state.cipher, ref)
        except DomainError as exc:
            return render(
                page, "ticket.html.j2", status_of(exc), job=None, error=words_of(exc, translator(page.language))
            )
        response = page.render("ticket.html.j2", new=new, **context)
        response.headers["Cache-Control"] = "no-store"  # it holds the customer's link, a secret
        return response


async def _counter_page(
    page: Page, values: dict[str, str], errors: dict[str, str], *, status: int = 200, search: Search | None = None
) -> Template:
    values = {**values, intake_form.KEY: values.get(intake_form.KEY) or uuid.uuid4().hex}
    return render(
        page,
        "counter.html.j2",
        status,
        v=values,
        errors=errors,
        express=await _express_day(page),
        categories=list(FaultCategory),
        accessories=intake_form.ACCESSORIES,
        search=search,
        request_path=COUNTER,  # where the language switch comes back to: never a POST-only address
        **helpers(page),
    )


async def _express_day(page: Page) -> ExpressDay | None:
    """Today's express slots at the desk's branch; None for a chain-wide manager (no branch of their own)."""
    if page.actor.branch_id is None:
        return None
    async with page.db.transaction(write=False) as uow:
        _, day = await express.capacity(
            uow, page.actor, None, now=page.now, default_capacity=page.settings.express_capacity_per_day
        )
    return day


async def _take_in(page: Page, cipher: PasscodeCipher, cmd: IntakeCommand, key: str | None, fingerprint: str) -> str:
    """The intake, once per form shown: a second click, or the form sent again, gives the first job."""
    settings = page.settings

    async def operation(uow: UnitOfWork) -> StoredResponse:
        job = await jobs.intake(
            uow,
            page.actor,
            cmd,
            now=page.now,
            sla=settings.sla_policy,
            cipher=cipher,
            express_capacity=settings.express_capacity_per_day,
        )
        return StoredResponse(HTTP_303_SEE_OTHER, {"ref": job.ref}, {}, fingerprint)

    if key is None:  # not our form (no key): one intake, without replay
        async with page.db.transaction() as uow:
            return str((await operation(uow)).body["ref"])
    stored, _ = await run_idempotent(
        page.db, page.actor, f"web-intake-{key}", fingerprint, page.now, settings.idempotency_ttl_hours, operation
    )
    return str(stored.body["ref"])


@dataclass(frozen=True, slots=True)
class Search:
    q: str
    jobs: list[RepairJob] | None = None  # None: nothing searched
    error: str | None = None
    more: bool = False  # more jobs match than are shown


async def _search(page: Page, raw: str) -> Search:
    """Jobs of the desk's branch by reference, name, phone or IMEI, as the API's `q` finds them."""
    q = raw.strip()
    if not q:
        return Search(q)
    if len(q) > SEARCH_MAX or "\x00" in q:
        return Search(q[:SEARCH_MAX].replace("\x00", ""), error=translator(page.language)("counter_search_bad"))
    async with page.db.transaction(write=False) as uow:
        found = await jobs.list_jobs(uow, page.actor, JobFilter(q=q), SEARCH_LIMIT, None)
    return Search(q, found.items, more=found.next_cursor is not None)


async def _ticket(page: Page, cipher: PasscodeCipher, ref: str) -> dict[str, Any]:
    async with page.db.transaction(write=False) as uow:
        job = await jobs.get_job(uow, page.actor, ref)
        branch = await branches.branch_of(uow, page.actor, job.branch_code)
        link = await tracking.url_of(uow, job.id or 0, cipher=cipher, base_url=page.settings.public_base_url)
    # The ticket is the customer's: in their language, whatever the desk's.
    language = job.customer.language
    tt = translator(language)
    return {
        "job": job,
        "branch": branch,
        "link": link,
        "qr": _qr(link, tt("ticket_qr")) if link else None,  # revoked: no link to give
        "tt": tt,
        "tmoney": lambda cents: money(cents, language),
        "tlocal": lambda at: local(at, branch.timezone, language),
        "ticket_lang": language,
    }


def _qr(link: str, title: str) -> str:
    """The link as an inline SVG QR code (medium error correction: a creased ticket still scans)."""
    svg: str = segno.make(link, error="m").svg_inline(scale=QR_SCALE, title=title, omitsize=True, svgclass="qr")
    return svg
