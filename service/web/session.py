"""Staff sign-in for the web pages: an encrypted cookie session, and CSRF on every form.

The API keeps bearer tokens; pages cannot hold one safely in a browser, so a signed-in member of staff
carries an AES-GCM encrypted, HttpOnly cookie (Litestar's client-side session) holding who they are and
until when. Both the session key and the CSRF secret are derived from ATELIER_JWT_SECRET: one secret to
rotate, and rotating it signs everyone out of the pages as it does of the API.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

from litestar import Request
from litestar.config.csrf import CSRFConfig
from litestar.middleware.session.client_side import CookieBackendConfig

from domain.model import Actor
from domain.stages import Role
from service.settings import Settings

# Paths that are not pages: the API (bearer tokens), the customer's link (its token), health, schema.
NOT_PAGES = ["^/api/", "^/track/", "^/health", "^/schema", "^/static/"]
STAFF = "staff"
LANGUAGE = "lang"


class SignInRequired(Exception):
    """No signed-in member of staff (or the session ran out): the page sends them to sign in."""


def _derived(settings: Settings, label: bytes) -> bytes:
    assert settings.jwt_secret is not None
    return hmac.new(settings.jwt_secret.get_secret_value().encode(), label, hashlib.sha256).digest()


def session_config(settings: Settings) -> CookieBackendConfig:
    return CookieBackendConfig(
        secret=_derived(settings, b"atelier web session"),
        key="atelier_session",
        max_age=settings.token_ttl_seconds,
        secure=settings.environment == "production",
        samesite="lax",
        exclude=NOT_PAGES,
    )


def csrf_config(settings: Settings) -> CSRFConfig:
    return CSRFConfig(
        secret=_derived(settings, b"atelier web csrf").hex(),
        cookie_name="atelier_csrf",
        cookie_secure=settings.environment == "production",
        cookie_samesite="strict",
        exclude=NOT_PAGES,
    )


def sign_in(request: Request[Any, Any, Any], actor: Actor, language: str, *, until: datetime) -> None:
    request.clear_session()  # a new session on sign-in: nothing of an earlier one carries over
    request.set_session(
        {
            STAFF: {"id": actor.user_id, "usr": actor.username, "role": actor.role.value, "br": actor.branch_id},
            "until": until.timestamp(),
            LANGUAGE: language,
        }
    )


def sign_out(request: Request[Any, Any, Any]) -> None:
    request.clear_session()


def staff_of(request: Request[Any, Any, Any], now: datetime) -> Actor:
    """The signed-in member of staff, or SignInRequired."""
    session = request.session if "session" in request.scope else {}
    who = session.get(STAFF)
    if not who or float(session.get("until", 0)) <= now.timestamp():
        raise SignInRequired
    try:
        return Actor(int(who["id"]), str(who["usr"]), Role(who["role"]), who.get("br"))
    except (KeyError, TypeError, ValueError) as exc:
        raise SignInRequired from exc


def language_of(request: Request[Any, Any, Any]) -> str:
    session = request.session if "session" in request.scope else {}
    language = session.get(LANGUAGE)
    return language if language in ("fr", "en") else "fr"
