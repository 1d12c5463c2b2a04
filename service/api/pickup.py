"""Pickup over HTTP: the hand-over at the counter and the express lookup.

Both guess at a secret (the customer's code), so both are rate limited before any work is done: per
client IP, and the hand-over also per job (429 with Retry-After). A wrong code is 403 naming `code`.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from pydantic import StringConstraints

from domain.model import parse_ref
from domain.pickup import WrongCode
from service.api.context import RequestContext
from service.api.jobs import NO_NUL, IfMatch, etag, expected_version_from
from service.api.problems import problem
from service.api.schemas import Body, Cents, Flag, JobOut, Note, job_out
from service.ratelimit import PICKUP_IP, PICKUP_JOB, client_ip
from service.usecases import pickup

# What the counter types or scans: a code (any case, spaces, dashes) or a reference.
Typed = Annotated[str | None, QueryParameter(min_length=1, max_length=40, pattern=NO_NUL)]


class PickupIn(Body):
    """The customer's code; or, for a manager handing over without it, the reason (recorded)."""

    code: Annotated[str, StringConstraints(min_length=1, max_length=40)] | None = None
    paid_cents: Cents | None = None
    id_checked: Flag = False
    reason: Note | None = None


def _on_wrong_code(request: Request[Any, Any, Any], exc: WrongCode) -> Response[dict[str, Any]]:
    errors = [{"field": exc.field, "reason": "not the pickup code of this job"}]
    return problem(request, 403, "Wrong pickup code", exc.detail, "wrong-pickup-code", errors=errors)


def _job_response(body: JobOut) -> Response[JobOut]:
    return Response(body, headers={"ETag": etag(body.version)})


class PickupController(Controller):
    path = "/api/v1"
    tags = ["pickup"]
    exception_handlers = {WrongCode: _on_wrong_code}

    @post("/jobs/{ref:str}/pickup", status_code=200)
    async def hand_over(
        self,
        ref: FromPath[str],
        data: JSONBody[PickupIn],
        request: Request[Any, Any, Any],
        ctx: NamedDependency[RequestContext],
        if_match: IfMatch = None,
    ) -> Response[JobOut]:
        """Hand the device over: with the customer's code, or (a manager) with a reason. If-Match is optional:
        the code, not a version the caller saw, is what guards the hand-over."""
        await ctx.limits.check(PICKUP_IP, client_ip(request))
        await ctx.limits.check(PICKUP_JOB, str(parse_ref(ref) or ref.strip().upper()))
        expected = None if if_match is None or if_match.strip() == "*" else expected_version_from(if_match)
        cmd = pickup.PickupRequest(data.code, data.paid_cents, data.id_checked, data.reason)
        job = await pickup.hand_over(
            ctx.db, ctx.actor, ref, cmd, now=ctx.clock(), settings=ctx.settings, expected_version=expected
        )
        return _job_response(job_out(job, ctx.actor.role))

    @get("/pickup/lookup")
    async def lookup(
        self,
        request: Request[Any, Any, Any],
        ctx: NamedDependency[RequestContext],
        code: Typed = None,
        ref: Typed = None,
    ) -> Response[JobOut]:
        """The device waiting for pickup with this code (or reference), and its slot, in one step."""
        await ctx.limits.check(PICKUP_IP, client_ip(request))
        async with ctx.db.transaction(write=False) as uow:
            job = await pickup.lookup(uow, ctx.actor, code=code, ref=ref, now=ctx.clock(), settings=ctx.settings)
        return _job_response(job_out(job, ctx.actor.role))
