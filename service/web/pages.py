"""The staff's pages: sign-in and sign-out, the language, and the board. Handlers only translate: the
data comes from the same use cases as the API."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from domain.model import Actor, Tier
from service.errors import AuthenticationFailed, RateLimited
from service.ratelimit import admit_sign_in
from service.settings import Settings
from service.uow import Database
from service.usecases import board as board_usecase
from service.usecases import staff
from service.web.i18n import LANGUAGES, duration_words, stage_name, translator
from service.web.session import SignInRequired, language_of, sign_in, sign_out, staff_of

HOME = "/app/board"
SIGN_IN = "/app/signin"


@dataclass(frozen=True, slots=True)
class Page:
    """What a signed-in page handler needs, as one dependency."""

    actor: Actor
    language: str
    db: Database
    settings: Settings
    now: datetime
    path: str

    def render(self, template: str, **context: Any) -> Template:
        return Template(template_name=template, context={**self.common(), **context})

    def common(self) -> dict[str, Any]:
        return {
            "actor": self.actor,
            "lang": self.language,
            "t": translator(self.language),
            "stage_name": lambda stage: stage_name(stage, self.language),
            "duration": lambda delta: duration_words(delta.total_seconds(), self.language),
            "now": self.now,
            "request_path": self.path,
        }


def provide_page(request: Request[Any, Any, Any], state: State) -> Page:
    now: datetime = state.clock()
    return Page(staff_of(request, now), language_of(request), state.db, state.settings, now, request.url.path)


def on_sign_in_required(request: Request[Any, Any, Any], _exc: SignInRequired) -> Response[Any]:
    """To the sign-in page, then back here; an HTMX fragment asks the browser to go there as a whole."""
    target = f"{SIGN_IN}?next={quote(request.url.path)}"
    if request.headers.get("hx-request"):
        return Response(None, status_code=200, headers={"HX-Redirect": target})
    return Redirect(target, status_code=HTTP_303_SEE_OTHER)


def _safe_next(value: str | None) -> str:
    """Only a path of ours: never an open redirect to another site."""
    if value and value.startswith("/app/") and not value.startswith("//"):
        return value
    return HOME


SignInForm = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]


class SignInPages(Controller):
    path = "/app"
    include_in_schema = False

    @get("/signin")
    async def sign_in_form(
        self, request: Request[Any, Any, Any], next_: Annotated[str | None, QueryParameter(name="next")] = None
    ) -> Template:
        language = language_of(request)
        return _signin_page(language, _safe_next(next_))

    @post("/signin", status_code=HTTP_303_SEE_OTHER)
    async def sign_in(self, request: Request[Any, Any, Any], data: SignInForm, state: State) -> Response[Any]:
        language = data.get("lang") if data.get("lang") in LANGUAGES else language_of(request)
        assert language is not None
        t = translator(language)
        try:
            await admit_sign_in(request, data.get("username", ""))
            async with state.db.transaction(write=False) as uow:
                actor = await staff.authenticate(uow, data.get("username", ""), data.get("password", ""))
        except AuthenticationFailed:
            template = _signin_page(language, _safe_next(data.get("next")), error=t("wrong_credentials"))
            template.status_code = 401
            return template
        except RateLimited as exc:
            wait = math.ceil(exc.retry_after)
            template = _signin_page(language, _safe_next(data.get("next")), error=t("too_many_sign_ins").format(s=wait))
            template.status_code = 429
            template.headers["Retry-After"] = str(wait)
            return template
        settings: Settings = state.settings
        until = state.clock() + timedelta(seconds=settings.token_ttl_seconds)
        sign_in(request, actor, language, until=until)
        return Redirect(_safe_next(data.get("next")), status_code=HTTP_303_SEE_OTHER)

    @post("/signout", status_code=HTTP_303_SEE_OTHER)
    async def sign_out(self, request: Request[Any, Any, Any]) -> Redirect:
        sign_out(request)
        return Redirect(SIGN_IN, status_code=HTTP_303_SEE_OTHER)


def _signin_page(language: str, next_path: str, *, error: str | None = None) -> Template:
    context = {"lang": language, "t": translator(language), "next": next_path, "error": error, "actor": None}
    return Template(template_name="signin.html.j2", context=context)


class StaffPages(Controller):
    path = "/app"
    include_in_schema = False
    exception_handlers = {SignInRequired: on_sign_in_required}

    @get("/")
    async def home(self, page: NamedDependency[Page]) -> Redirect:
        return Redirect(HOME, status_code=HTTP_303_SEE_OTHER)

    @post("/language", status_code=HTTP_303_SEE_OTHER)
    async def language(
        self, request: Request[Any, Any, Any], page: NamedDependency[Page], data: SignInForm
    ) -> Redirect:
        chosen = data.get("lang")
        if chosen in LANGUAGES:
            request.session["lang"] = chosen
        return Redirect(_safe_next(data.get("next")), status_code=HTTP_303_SEE_OTHER)

    @get("/board")
    async def board(
        self,
        page: NamedDependency[Page],
        tier: Annotated[Tier | None, QueryParameter()] = None,
        late: Annotated[bool, QueryParameter()] = False,
    ) -> Template:
        return page.render(
            "board.html.j2", **await self._board(page, tier, late), refresh=page.settings.web_board_refresh_seconds
        )

    @get("/board/columns")
    async def board_columns(
        self,
        page: NamedDependency[Page],
        tier: Annotated[str, QueryParameter(max_length=20)] = "",
        late: Annotated[bool, QueryParameter()] = False,
    ) -> Template:
        """The board's columns alone: what the page polls to stay live without a reload."""
        return page.render("_board_columns.html.j2", **await self._board(page, tier, late))

    @staticmethod
    async def _board(page: Page, tier: str, late: bool) -> dict[str, Any]:
        chosen = Tier(tier) if tier in (Tier.EXPRESS.value, Tier.STANDARD.value) else None  # "": every tier
        async with page.db.transaction(write=False) as uow:
            shown = await board_usecase.board(
                uow, page.actor, now=page.now, sla=page.settings.sla_policy, tier=chosen, late_only=late
            )
        return {"board": shown, "tier": chosen.value if chosen else "", "late": late}


PAGE_DEPENDENCIES: dict[str, Callable[..., Any]] = {"page": provide_page}


@get("/", include_in_schema=False, opt={"public": True})
async def root() -> Redirect:
    """Staff who type the shop's address land on their pages."""
    return Redirect(HOME, status_code=HTTP_303_SEE_OTHER)
