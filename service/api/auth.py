"""Bearer tokens for staff: issuing them and turning them back into an `Actor` on each request.

The token carries the role and branch, so authenticating a request costs no database round trip;
tokens are short-lived (one shift) for that reason.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from litestar import Controller, Request, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.middleware import AuthenticationResult
from litestar.security.jwt import JWTAuth, JWTAuthenticationMiddleware, Token

from domain.model import Actor
from domain.stages import Role
from service.api.openapi import BODY, ClosedJSON, PublicOperation, problems
from service.api.schemas import TokenIn, TokenOut
from service.ratelimit import admit_sign_in
from service.uow import Database
from service.usecases import staff

# Supplier webhooks authenticate by signature (Standard Webhooks), not by a staff token.
# The web pages (`/app`) authenticate with their own cookie session (service/web/session.py).
PUBLIC_PATHS = [
    "^/health",
    "^/schema",
    "^/api/v1/auth/token$",
    "^/api/v1/webhooks/suppliers/",
    "^/app/",
    "^/static/",
    "^/$",
]


async def _actor_from_token(token: Token, _connection: ASGIConnection[Any, Any, Any, Any]) -> Actor | None:
    try:
        return Actor(int(token.sub), str(token.extras["usr"]), Role(token.extras["role"]), token.extras.get("br"))
    except (KeyError, ValueError):
        return None


class _VerifiedTokenCache(JWTAuthenticationMiddleware):
    """Checks each distinct token's signature and claims once, then only its expiry.

    A token cannot change, and the actor is built from its claims alone, so re-verifying it (base64, JSON,
    HMAC, claim conversion: about a fifth of a GET's CPU) on every request of a shift buys nothing. The cache
    belongs to this middleware instance, hence to one app and one secret; it is bounded.
    """

    _MAX_ENTRIES = 10_000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._verified: dict[str, tuple[float, AuthenticationResult]] = {}

    async def authenticate_token(
        self, encoded_token: str, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        hit = self._verified.get(encoded_token)
        if hit is not None and hit[0] > time.time():
            return hit[1]
        result = await super().authenticate_token(encoded_token, connection)
        if len(self._verified) >= self._MAX_ENTRIES:
            self._verified.clear()
        self._verified[encoded_token] = (result.auth.exp.timestamp(), result)
        return result


def build_jwt_auth(secret: str, ttl_seconds: int) -> JWTAuth[Actor, Token]:
    return JWTAuth[Actor, Token](
        authentication_middleware_class=_VerifiedTokenCache,
        retrieve_user_handler=_actor_from_token,
        token_secret=secret,
        default_token_expiration=timedelta(seconds=ttl_seconds),
        exclude=PUBLIC_PATHS,
        exclude_opt_key="public",
    )


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["auth"]

    @post(
        "/token",
        status_code=200,
        opt={"public": True},
        operation_class=PublicOperation,
        responses=problems(*BODY, 401, 429),
    )
    async def token(
        self, data: ClosedJSON[TokenIn], db: NamedDependency[Database], request: Request[Any, Any, Any]
    ) -> TokenOut:
        """Exchange a username and password for a bearer token. 429 with Retry-After past the sign-in
        limits (per address and per username)."""
        await admit_sign_in(request, data.username)
        async with db.transaction(write=False) as uow:
            actor = await staff.authenticate(uow, data.username, data.password)
        jwt_auth: JWTAuth[Actor, Token] = request.app.state.jwt_auth
        ttl = jwt_auth.default_token_expiration
        encoded = jwt_auth.create_token(
            identifier=str(actor.user_id),
            token_expiration=ttl,
            token_extras={"usr": actor.username, "role": actor.role.value, "br": actor.branch_id},
        )
        return TokenOut(encoded, "bearer", int(ttl.total_seconds()))
