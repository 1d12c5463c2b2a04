"""Bearer tokens for staff: issuing them and turning them back into an `Actor` on each request.

The token carries the role and branch, so authenticating a request costs no database round trip;
tokens are short-lived (one shift) for that reason.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Controller, Request, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.params import JSONBody
from litestar.security.jwt import JWTAuth, Token

from domain.model import Actor
from domain.stages import Role
from service.api.schemas import TokenIn, TokenOut
from service.uow import Database
from service.usecases import staff

PUBLIC_PATHS = ["^/health", "^/schema", "^/api/v1/auth/token$"]


async def _actor_from_token(token: Token, _connection: ASGIConnection[Any, Any, Any, Any]) -> Actor | None:
    try:
        return Actor(int(token.sub), str(token.extras["usr"]), Role(token.extras["role"]), token.extras.get("br"))
    except (KeyError, ValueError):
        return None


def build_jwt_auth(secret: str, ttl_seconds: int) -> JWTAuth[Actor, Token]:
    return JWTAuth[Actor, Token](
        retrieve_user_handler=_actor_from_token,
        token_secret=secret,
        default_token_expiration=timedelta(seconds=ttl_seconds),
        exclude=PUBLIC_PATHS,
        exclude_opt_key="public",
    )


class AuthController(Controller):
    path = "/api/v1/auth"
    tags = ["auth"]

    @post("/token", status_code=200, opt={"public": True}, security=[])
    async def token(
        self, data: JSONBody[TokenIn], db: NamedDependency[Database], request: Request[Any, Any, Any]
    ) -> TokenOut:
        """Exchange a username and password for a bearer token."""
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


def provide_actor(request: Request[Actor, Any, Any]) -> Actor:
    return request.user


actor_dependency = Provide(provide_actor, sync_to_thread=False)
