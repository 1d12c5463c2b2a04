"""The customer's link over HTTP: the public page (HTML, or JSON with `Accept: application/json`), the
customer's answer to the estimate, and the staff endpoints that show, renew and revoke a job's link.

The public routes need no login: the token in the path is the credential. Both are rate-limited per client
IP first (a made-up token counts there, and only there), then per link once the token names a live one,
before any change. Their answers are never cached or indexed, and the page sends no Referer (the URL
holds the token).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qs

from litestar import Controller, MediaType, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, QueryParameter
from litestar.status_codes import HTTP_303_SEE_OTHER
from pydantic import ValidationError, model_validator

from domain.errors import NotFound, RuleConflict
from domain.tracking import TrackingView
from service.api.context import RequestContext
from service.api.openapi import AUTH, BODY, AnswerOperation, PageOperation, problems
from service.api.routing import ApiController
from service.api.schemas import Body, Flag, Note
from service.api.tracking_page import CONTENT_SECURITY_POLICY, conflict_notice, error_page, page
from service.errors import RateLimited
from service.ratelimit import TRACK_IP, TRACK_LINK, client_ip
from service.settings import Settings
from service.usecases import tracking

_PUBLIC = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Vary": "Accept",
}
_HTML = {**_PUBLIC, "Content-Security-Policy": CONTENT_SECURITY_POLICY}
_FORM = "application/x-www-form-urlencoded"
Lang = Annotated[str | None, QueryParameter(max_length=8)]


class AnswerIn(Body):
    approved: Flag
    note: Note | None = None

    @model_validator(mode="before")
    @classmethod
    def _decision_in_words(cls, data: Any) -> Any:
        """`{"decision": "approve"|"decline"}` (what a customer's app may send) is the same answer as
        `{"approved": true|false}`; given once."""
        if not isinstance(data, dict) or "decision" not in data:
            return data
        if "approved" in data:
            raise ValueError('give the answer once: "approved" or "decision", not both')
        decision = data["decision"]
        if not isinstance(decision, str) or decision not in _DECISIONS:
            raise ValueError('"decision" is "approve" or "decline"')
        answer = {key: value for key, value in data.items() if key != "decision"}
        return {**answer, "approved": _DECISIONS[decision]}


_DECISIONS = {"approve": True, "approved": True, "decline": False, "declined": False}


@dataclass(slots=True)
class TrackingLinkOut:
    ref: str
    tracking_url: str | None  # None: revoked
    issued_at: datetime | None
    expires_at: datetime | None  # collection (or cancellation) + ATELIER_TRACKING_DAYS_AFTER_COLLECTION
    active: bool


def _link_out(info: tracking.LinkInfo, now: datetime) -> TrackingLinkOut:
    return TrackingLinkOut(info.job.ref, info.url, info.issued_at, info.expires_at, info.active(now))


# --- public ------------------------------------------------------------------------------------------


def _wants_json(request: Request[Any, Any, Any]) -> bool:
    return request.accept.best_match(["text/html", "application/json"], default="text/html") == "application/json"


async def _admit_ip(request: Request[Any, Any, Any]) -> None:
    await request.app.state.limits.check(TRACK_IP, client_ip(request))


async def _admit_link(request: Request[Any, Any, Any], token: str) -> None:
    # Keyed by the token's hash: the buckets hold no live credential.
    await request.app.state.limits.check(TRACK_LINK, tracking.token_hash(token))


async def _live_job_view(request: Request[Any, Any, Any], token: str, lang: str | None, *, admit: bool) -> TrackingView:
    state = request.app.state
    settings: Settings = state.settings
    now = state.clock()
    days = settings.tracking_days_after_collection
    async with state.db.transaction(write=False) as uow:
        job = await tracking.find_job(uow, token, now=now, days_after=days)
        if admit:
            await _admit_link(request, token)
        return await tracking.view(uow, job, now=now, sla=settings.sla_policy, days_after=days, language=lang)


def _page_path(request: Request[Any, Any, Any]) -> str:
    return str(request.url.path).rstrip("/").removesuffix("/approval")


def _html(content: str, status: int = 200, **headers: str) -> Response[str]:
    # Litestar adds the charset itself: "text/html; charset=utf-8" here would be sent with two of them.
    return Response(content, status_code=status, media_type=MediaType.HTML, headers={**_HTML, **headers})


def _html_error(exc: NotFound | RateLimited, lang: str | None, back: str | None = None) -> Response[str]:
    if isinstance(exc, RateLimited):
        return _html(error_page(429, lang, back=back), 429, **{"Retry-After": str(max(1, math.ceil(exc.retry_after)))})
    return _html(error_page(404, lang), 404)


async def _read_answer(request: Request[Any, Any, Any], form: bool) -> tuple[bool, str | None, str | None]:
    """(approved, note, lang) from the page's form or a JSON body, checked like every other body."""
    raw = await request.body()
    lang: str | None = None
    if form:
        try:
            fields = parse_qs(raw.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=10)
        except ValueError as exc:  # far more fields than the page's form has: not an answer from it
            raise ValidationException("the form has more than 10 fields") from exc
        # The page's fields, each once, as for a JSON body: anything else is refused, not ignored.
        candidate: Any = {key: values[0] if len(values) == 1 else values for key, values in fields.items()}
        if isinstance(candidate.get("lang"), str):
            lang = candidate.pop("lang")
        if isinstance(candidate.get("approved"), str):
            candidate["approved"] = {"true": True, "false": False}.get(candidate["approved"], candidate["approved"])
        if isinstance(candidate.get("note"), str) and not candidate["note"].strip():
            candidate.pop("note")  # the page's empty note box
    else:
        try:
            candidate = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # RecursionError: nested past the decoder's depth
            raise ValidationException('the body is not JSON: send {"approved": true or false}') from exc
    try:
        answer = AnswerIn.model_validate(candidate)
    except ValidationError as exc:
        errors = [
            {"key": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"], "source": "body"}
            for e in exc.errors()
        ]
        raise ValidationException("invalid answer", extra=errors) from exc
    return answer.approved, answer.note, lang


PAGE_ANSWER = ResponseSpec(TrackingView, description="Where the repair stands: HTML, or JSON when asked for")
BACK_TO_PAGE = ResponseSpec(None, description="The page's form was answered: back to the page (Location)")


class TrackingController(Controller):
    """The customer's own page: no login, the token is the credential."""

    path = "/track"
    tags = ["tracking"]

    @get(
        "/{token:str}",
        opt={"public": True},
        operation_class=PageOperation,
        responses={200: PAGE_ANSWER, **problems(404, 422, 429)},
    )
    async def show(self, token: FromPath[str], request: Request[Any, Any, Any], lang: Lang = None) -> Response[Any]:
        """Where the repair stands, in plain words: HTML, or JSON with `Accept: application/json`.
        `lang` (fr or en) overrides the customer's language."""
        wants_json = _wants_json(request)
        try:
            await _admit_ip(request)
            view = await _live_job_view(request, token, lang, admit=True)
        except (NotFound, RateLimited) as exc:
            if wants_json:
                raise
            return _html_error(exc, lang)
        if wants_json:
            return Response(view, headers=_PUBLIC)
        return _html(page(view, approval_path=f"{_page_path(request)}/approval"))

    @post(
        "/{token:str}/approval",
        status_code=200,
        opt={"public": True},
        operation_class=AnswerOperation,
        responses={200: PAGE_ANSWER, 303: BACK_TO_PAGE, **problems(*BODY, 404, 409, 429)},
    )
    async def answer(self, token: FromPath[str], request: Request[Any, Any, Any], lang: Lang = None) -> Response[Any]:
        """The customer approves or declines the estimate: JSON `{"approved", "note"?}` answers 200 with the
        page's JSON; the page's form answers 303 back to the page. 409 when no answer is expected."""
        form = request.content_type[0] == _FORM
        state = request.app.state
        settings: Settings = state.settings
        days = settings.tracking_days_after_collection
        try:
            await _admit_ip(request)
            approved, note, form_lang = await _read_answer(request, form)
            lang = lang or form_lang
            async with state.db.transaction(write=False) as uow:  # a live link, before its own limit counts
                await tracking.find_job(uow, token, now=state.clock(), days_after=days)
            await _admit_link(request, token)
            await tracking.answer(state.db, token, approved, note, now=state.clock(), days_after=days)
        except (NotFound, RateLimited) as exc:
            if not form:
                raise
            return _html_error(exc, lang, back=_page_path(request))
        except RuleConflict:
            if not form:
                raise
            view = await _live_job_view(request, token, lang, admit=False)
            return _html(page(view, approval_path=request.url.path, notice=conflict_notice(view.language)), 409)
        if form:
            target = _page_path(request) + (f"?lang={lang}" if lang in ("fr", "en") else "")
            return Response(b"", status_code=HTTP_303_SEE_OTHER, headers={**_PUBLIC, "Location": target})
        return Response(await _live_job_view(request, token, lang, admit=False), headers=_PUBLIC)


# --- staff -------------------------------------------------------------------------------------------


class JobTrackingController(ApiController):
    """A job's link, for staff: show it (to read it out or send it again), renew it, revoke it."""

    path = "/api/v1/jobs/{ref:str}/tracking"
    tags = ["tracking"]

    @get("/", responses=problems(*AUTH, 404))
    async def show(self, ref: FromPath[str], ctx: NamedDependency[RequestContext]) -> Response[TrackingLinkOut]:
        """The job's link, when it was issued and until when it works (any staff of the branch)."""
        settings = ctx.settings
        async with ctx.db.transaction(write=False) as uow:
            info = await tracking.link_info(
                uow,
                ctx.actor,
                ref,
                cipher=ctx.cipher,
                base_url=settings.public_base_url,
                days_after=settings.tracking_days_after_collection,
            )
        return Response(_link_out(info, ctx.clock()), headers={"Cache-Control": "no-store"})

    @post("/", status_code=201, responses=problems(*AUTH, 403, 404, 409))
    async def renew(self, ref: FromPath[str], ctx: NamedDependency[RequestContext]) -> Response[TrackingLinkOut]:
        """Revoke the job's link and issue a new one (front desk, manager); the old one stops at once."""
        settings, now = ctx.settings, ctx.clock()
        async with ctx.db.transaction() as uow:
            info = await tracking.reissue(
                uow,
                ctx.actor,
                ref,
                now=now,
                cipher=ctx.cipher,
                base_url=settings.public_base_url,
                days_after=settings.tracking_days_after_collection,
            )
        return Response(_link_out(info, now), status_code=201, headers={"Cache-Control": "no-store"})

    @delete("/", status_code=204, responses=problems(*AUTH, 403, 404, 409))
    async def revoke(self, ref: FromPath[str], ctx: NamedDependency[RequestContext]) -> None:
        """The link stops working (front desk, manager); POST issues a new one."""
        async with ctx.db.transaction() as uow:
            await tracking.revoke(uow, ctx.actor, ref, now=ctx.clock())
