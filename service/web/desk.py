"""What the counter and the pickup desk share: amounts in euros, local times, HTMX answers, and domain
errors put in the desk's words (with the HTTP status the API gives them)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from litestar import Request, Response
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from domain.calendar import zone
from domain.errors import DomainError, InvalidValue, NotFound, NotPermitted, RuleConflict, VersionConflict
from service.errors import IdempotencyKeyReused, RateLimited
from service.web.pages import SIGN_IN, Page, on_sign_in_required
from service.web.session import SignInRequired

MAX_CENTS = 100_000_000  # what the API takes (`schemas.Cents`)
_EUROS = re.compile(r"(\d{1,7})(?:\.(\d{1,2}))?")
# Spaces people (and French number formats) put in amounts, and the euro sign.
_AMOUNT_NOISE = str.maketrans("", "", " \u00a0\u202f€")

# The most specific first: CapacityReached is a RuleConflict and an InvalidValue (409, as in the API).
_FAMILIES: tuple[tuple[type[DomainError], int, str], ...] = (
    (RateLimited, 429, "desk_err_rate_limited"),
    (IdempotencyKeyReused, 422, "desk_err_resubmitted"),
    (VersionConflict, 412, "desk_err_version"),
    (NotFound, 404, "desk_err_not_found"),
    (NotPermitted, 403, "desk_err_not_permitted"),
    (RuleConflict, 409, "desk_err_conflict"),
    (InvalidValue, 422, "desk_err_invalid"),
)


def parse_euros(raw: str, field: str) -> int | None:
    """Cents from what the desk typed ("89", "89,90", "1 089.5 €"); None when nothing was typed."""
    text = raw.translate(_AMOUNT_NOISE).replace(",", ".")
    if not text:
        return None
    match = _EUROS.fullmatch(text)
    if match is None:
        raise InvalidValue(field, "not an amount in euros")
    cents = int(match.group(1)) * 100 + int((match.group(2) or "0").ljust(2, "0"))
    if cents > MAX_CENTS:
        raise InvalidValue(field, "too large an amount")
    return cents


def euros_input(cents: int | None, language: str) -> str:
    """An amount as an input shows it ("89,00" / "89.00"), which `parse_euros` reads again."""
    if cents is None:
        return ""
    return f"{cents // 100}{',' if language == 'fr' else '.'}{cents % 100:02d}"


def money(cents: int | None, language: str) -> str:
    """89,00 € (fr) / €89.00 (en)."""
    amount = f"{(cents or 0) / 100:,.2f}"
    if language == "fr":
        return amount.replace(",", "\u202f").replace(".", ",") + "\u00a0€"
    return f"€{amount}"


def local(at: datetime | None, timezone: str, language: str, *, with_date: bool = True) -> str:
    """A time as the branch's clock shows it: what staff and customers read."""
    if at is None:
        return ""
    shown = at.astimezone(zone(timezone))
    if not with_date:
        return shown.strftime("%H:%M")
    return shown.strftime("%d/%m/%Y %H:%M" if language == "fr" else "%d %b %Y, %H:%M")


def status_of(exc: DomainError) -> int:
    return next((status for cls, status, _ in _FAMILIES if isinstance(exc, cls)), 409)


def words_of(exc: DomainError, t: Callable[[str], str]) -> str:
    """A domain error as the desk reads it: what kind of refusal in their language, then the rule's own
    detail (English, as the API says it)."""
    key = next((key for cls, _, key in _FAMILIES if isinstance(exc, cls)), "desk_err_other")
    return f"{t(key)} ({exc.detail})"


def is_htmx(request: Request[Any, Any, Any]) -> bool:
    return request.headers.get("hx-request") == "true"


def sign_in_then(page_path: str) -> Callable[[Request[Any, Any, Any], SignInRequired], Response[Any]]:
    """`on_sign_in_required`, but a form sent or a fragment asked for comes back to its page after the
    sign-in, not to its own address (a POST endpoint or a bare fragment)."""

    def on_sign_in_lost(request: Request[Any, Any, Any], exc: SignInRequired) -> Response[Any]:
        if request.method == "GET" and not is_htmx(request):
            return on_sign_in_required(request, exc)  # a page: back to itself
        target = f"{SIGN_IN}?next={quote(page_path)}"
        if is_htmx(request):
            return Response(None, status_code=200, headers={"HX-Redirect": target})
        return Redirect(target, status_code=HTTP_303_SEE_OTHER)

    return on_sign_in_lost


def render(page: Page, template: str, status: int = 200, **context: Any) -> Template:
    response = page.render(template, **context)
    response.status_code = status
    return response


def helpers(page: Page) -> dict[str, Any]:
    """Formatting the desk templates need, in the page's language."""
    return {
        "money": lambda cents: money(cents, page.language),
        "local": lambda at, timezone, with_date=True: local(at, timezone, page.language, with_date=with_date),
    }
