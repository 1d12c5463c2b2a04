"""The pickup desk: the customer's code typed (or scanned), the job and its shelf slot, the hand-over.

Same use cases and limits as the API (`pickup.lookup`, `pickup.hand_over`; PICKUP_IP and PICKUP_JOB):
the page guesses codes no faster than a script could. A wrong code says how many tries are left, a
locked pickup when it unlocks. Every answer is the result panel alone for HTMX, the whole page otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Template

from domain.errors import DomainError, InvalidValue, NotFound
from domain.model import EventKind, Outcome, RepairJob, parse_ref
from domain.pickup import WrongCode
from domain.stages import Role, Stage
from service.errors import RateLimited
from service.ratelimit import PICKUP_IP, PICKUP_JOB, RateLimits, client_ip
from service.usecases import branches, jobs, pickup
from service.web.desk import (
    euros_input,
    helpers,
    is_htmx,
    local,
    parse_euros,
    render,
    sign_in_then,
    status_of,
    words_of,
)
from service.web.i18n import translator
from service.web.pages import Page, SignInForm
from service.web.session import SignInRequired

PICKUP = "/app/pickup"
TYPED_MAX = 40  # as the API's `code`
Typed = Annotated[str, QueryParameter(max_length=1000)]  # longer than a scan can be: checked in words below
_ATTEMPTS = (EventKind.PICKUP_REFUSED, EventKind.PICKUP_LOCKED)


class TooFast(RateLimited):
    """This desk (its IP) or this job asked too often: the API's limits, not a pickup locked by wrong codes."""


async def _admit(limits: RateLimits, *checks: tuple[str, str]) -> None:
    try:
        for name, key in checks:
            await limits.check(name, key)
    except RateLimited as exc:
        raise TooFast(exc.detail, retry_after=exc.retry_after) from exc


@dataclass(frozen=True, slots=True)
class Shown:
    """A job at the desk, with what its panel shows."""

    job: RepairJob
    timezone: str  # of its branch: unlock times are read on the shop's clock

    @property
    def due_cents(self) -> int:
        """What the customer pays: the estimate of a repaired device; nothing when it was not repaired."""
        return self.job.estimate_total_cents if self.job.outcome is Outcome.REPAIRED else 0


class PickupDeskPages(Controller):
    path = "/app"
    include_in_schema = False
    exception_handlers = {SignInRequired: sign_in_then(PICKUP)}

    @get("/pickup")
    async def desk(self, page: NamedDependency[Page]) -> Template:
        return page.render("pickup.html.j2", typed="", **helpers(page))

    @get("/pickup/find")
    async def find(
        self,
        request: Request[Any, Any, Any],
        page: NamedDependency[Page],
        state: State,
        code: Typed = "",
        ref: Typed = "",
    ) -> Template:
        """The job waiting for pickup with this code, or this reference (what the input holds decides)."""
        typed = (code or ref).strip()
        by_code = parse_ref(typed) is None
        try:
            shown = await _lookup(request, page, state.limits, typed, by_code=by_code)
        except DomainError as exc:
            return _answer(request, page, status_of(exc), typed=typed, **_lookup_refusal(exc, page, typed, by_code))
        form = {"code": typed if by_code else "", "paid": euros_input(shown.due_cents, page.language)}
        return _answer(request, page, shown=shown, form=form, code_known=by_code)

    @post("/pickup/{ref:str}", status_code=200)
    async def hand_over(
        self,
        request: Request[Any, Any, Any],
        page: NamedDependency[Page],
        state: State,
        ref: FromPath[str],
        data: SignInForm,
    ) -> Template:
        form = {name: data.get(name, "").strip() for name in ("code", "paid", "id_checked", "reason")}
        try:
            job = await _hand_over(request, page, state.limits, ref, form)
        except DomainError as exc:
            return await _hand_over_refusal(request, page, ref, form, exc)
        return _answer(request, page, done=job)


async def _lookup(
    request: Request[Any, Any, Any], page: Page, limits: RateLimits, typed: str, *, by_code: bool
) -> Shown:
    if not typed or len(typed) > TYPED_MAX or "\x00" in typed:
        raise InvalidValue("code", "not a pickup code")
    await _admit(limits, (PICKUP_IP, client_ip(request)))
    code, ref = (typed, None) if by_code else (None, typed)
    async with page.db.transaction(write=False) as uow:
        job = await pickup.lookup(uow, page.actor, code=code, ref=ref, now=page.now, settings=page.settings)
        branch = await branches.branch_of(uow, page.actor, job.branch_code)
    return Shown(job, branch.timezone)


def _lookup_refusal(exc: DomainError, page: Page, typed: str, by_code: bool) -> dict[str, Any]:
    t = translator(page.language)
    if isinstance(exc, InvalidValue):
        return {"errors": {"typed": t("pickup_err_code_format" if typed else "pickup_err_empty")}}
    if isinstance(exc, NotFound) and by_code:
        return {"message": t("pickup_err_no_device")}
    if isinstance(exc, RateLimited):
        return {"message": _too_many(exc, page, None)}
    return {"message": words_of(exc, t)}


async def _hand_over(
    request: Request[Any, Any, Any], page: Page, limits: RateLimits, ref: str, form: dict[str, str]
) -> RepairJob:
    paid = parse_euros(form["paid"], "paid_cents")
    code, reason = form["code"] or None, form["reason"] or None
    if code is not None and len(code) > TYPED_MAX:
        raise InvalidValue("code", "not a pickup code")
    if reason is not None and page.actor.role is not Role.MANAGER:
        reason = None  # the form shows the field to managers only
    await _admit(limits, (PICKUP_IP, client_ip(request)), (PICKUP_JOB, str(parse_ref(ref) or ref.strip().upper())))
    request_ = pickup.PickupRequest(code, paid, bool(form["id_checked"]), reason)
    return await pickup.hand_over(page.db, page.actor, ref, request_, now=page.now, settings=page.settings)


async def _hand_over_refusal(
    request: Request[Any, Any, Any], page: Page, ref: str, form: dict[str, str], exc: DomainError
) -> Template:
    """The job again, with the refusal next to the field at fault (or above the form), to try again."""
    try:
        shown = await _load(page, ref)
    except DomainError:
        return _answer(request, page, status_of(exc), message=words_of(exc, translator(page.language)))
    errors, message = await _refusal_words(page, shown, exc, typed_code=bool(form["code"]))
    if isinstance(exc, WrongCode):
        form = {**form, "code": ""}  # typed again, never shown back
    return _answer(request, page, status_of(exc), shown=shown, form=form, errors=errors, message=message)


async def _refusal_words(
    page: Page, shown: Shown, exc: DomainError, *, typed_code: bool
) -> tuple[dict[str, str], str | None]:
    """(messages next to fields, message above the form) for a refused hand-over."""
    t = translator(page.language)
    if isinstance(exc, WrongCode):
        return {"code": await _wrong_code(page, shown)}, None
    if isinstance(exc, RateLimited):
        return {}, _too_many(exc, page, shown.timezone)
    if isinstance(exc, InvalidValue) and exc.field == "paid_cents":
        return {"paid": t("counter_err_amount")}, None
    if isinstance(exc, InvalidValue) and exc.field == "code":
        return {"code": t("pickup_err_code_format" if typed_code else "pickup_err_code_missing")}, None
    if isinstance(exc, InvalidValue) and exc.field == "reason":
        return {"reason": exc.reason}, None
    return {}, words_of(exc, t)


async def _wrong_code(page: Page, shown: Shown) -> str:
    """How many wrong codes so far, from the job's history (the refusal's own record), and what follows."""
    t = translator(page.language)
    async with page.db.transaction(write=False) as uow:
        history = await jobs.job_history(uow, page.actor, shown.job.ref)
    last = next((event for event in reversed(history) if event.kind in _ATTEMPTS), None)
    failures, most = int(last.data.get("failures", 0)) if last else 0, page.settings.pickup_max_failures
    if last is not None and last.kind is EventKind.PICKUP_LOCKED:
        until = local(datetime.fromisoformat(last.data["until"]), shown.timezone, page.language, with_date=False)
        return t("pickup_wrong_locked").format(n=failures, max=most, time=until)
    return t("pickup_wrong_code").format(n=failures, max=most, left=most - failures)


def _too_many(exc: RateLimited, page: Page, timezone: str | None) -> str:
    """When the desk may try again: too many tries from this desk, or a pickup locked by wrong codes."""
    t = translator(page.language)
    minutes = max(1, math.ceil(exc.retry_after / 60))
    if isinstance(exc, TooFast) or timezone is None:
        return t("pickup_err_too_fast").format(minutes=minutes)
    until = local(page.now + timedelta(seconds=exc.retry_after), timezone, page.language, with_date=False)
    return t("pickup_locked").format(time=until, minutes=minutes)


async def _load(page: Page, ref: str) -> Shown:
    async with page.db.transaction(write=False) as uow:
        job = await jobs.get_job(uow, page.actor, ref)
        branch = await branches.branch_of(uow, page.actor, job.branch_code)
    return Shown(job, branch.timezone)


def _answer(request: Request[Any, Any, Any], page: Page, status: int = 200, **result: Any) -> Template:
    context: dict[str, Any] = {"typed": "", "errors": {}, "form": {}, **result, **helpers(page)}
    context["request_path"] = PICKUP  # where the language switch comes back to: never a POST-only address
    context["ready"] = bool(context.get("shown")) and context["shown"].job.stage is Stage.READY_FOR_PICKUP
    return render(page, "_pickup_result.html.j2" if is_htmx(request) else "pickup.html.j2", status, **context)
