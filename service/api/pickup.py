"""Pickup over HTTP: the hand-over at the counter and the express lookup.

Both guess at a secret (the customer's code), so both are rate limited before any work is done: per
client IP, and the hand-over also per job (429 with Retry-After). A wrong code is 403 naming `code`.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from pydantic import field_validator

from domain.errors import InvalidValue
from domain.model import parse_ref
from domain.pickup import WrongCode, normalise_code
from service.api.context import RequestContext
from service.api.jobs import IfMatch, etag, optional_version_from
from service.api.openapi import AUTH, BODY, NO_NUL, absent, json_body, present, problems
from service.api.problems import problem
from service.api.schemas import Body, Cents, Flag, JobOut, Note, TextRule, job_out
from service.ratelimit import PICKUP_IP, PICKUP_JOB, client_ip
from service.usecases import pickup

# What the counter types or scans: a code (any case, spaces, dashes) or a reference.
Typed = Annotated[str | None, QueryParameter(min_length=1, max_length=40, pattern=NO_NUL)]


# A code as typed (`domain.pickup.normalise_code`): 8 of its characters in any case, spaces and dashes between.
_SEP = "[ \\t\\r\\n\\-\u2010-\u2014\u2212]*"  # what it drops: spaces, ASCII and Unicode dashes
CODE_PATTERN = rf"^\s*{_SEP}(?:[2-9A-HJKMNP-Za-hjkmnp-z]{_SEP}){{8}}\s*$"
# The code, or a manager's reason instead: one of them, never both (the use case checks the same).
CODE_OR_REASON = [
    {"allOf": [present("code", "string"), absent("reason")]},
    {"allOf": [present("reason", "string"), absent("code")]},
]


class PickupIn(Body):
    """The customer's code; or, for a manager handing over without it, the reason (recorded)."""

    code: Annotated[str, TextRule(max_length=40, pattern=CODE_PATTERN)] | None = None
    paid_cents: Cents | None = None
    id_checked: Flag = False
    reason: Note | None = None

    @field_validator("code")
    @classmethod
    def _code_shape(cls, value: str | None) -> str | None:
        # Here, not only in the use case: a malformed code is refused before If-Match is looked at (RFC 9110).
        if value is not None:
            try:
                normalise_code(value)
            except InvalidValue as exc:
                raise ValueError(exc.reason) from exc
        return value


def _code_or_reason(data: PickupIn) -> None:
    """The hand-over use case's rule on its request, which the schema states (`CODE_OR_REASON`)."""
    if data.code is not None and data.reason is not None:
        raise InvalidValue("reason", "a reason is given only for a hand-over without the code")
    if data.code is None and data.reason is None:
        raise InvalidValue("code", "give the customer's pickup code (a manager may give a reason instead)")


def _on_wrong_code(request: Request[Any, Any, Any], exc: WrongCode) -> Response[dict[str, Any]]:
    errors = [{"field": exc.field, "reason": "not the pickup code of this job"}]
    return problem(request, 403, "Wrong pickup code", exc.detail, "wrong-pickup-code", errors=errors)


def _job_response(body: JobOut) -> Response[JobOut]:
    return Response(body, headers={"ETag": etag(body.version)})


class PickupController(Controller):
    path = "/api/v1"
    tags = ["pickup"]
    exception_handlers = {WrongCode: _on_wrong_code}

    @post("/jobs/{ref:str}/pickup", status_code=200, responses=problems(*AUTH, *BODY, 403, 404, 409, 412, 429))
    async def hand_over(
        self,
        ref: FromPath[str],
        data: Annotated[PickupIn, json_body(oneOf=CODE_OR_REASON)],
        request: Request[Any, Any, Any],
        ctx: NamedDependency[RequestContext],
        if_match: IfMatch = None,
    ) -> Response[JobOut]:
        """Hand the device over: with the customer's code, or (a manager) with a reason. If-Match is optional:
        the code, not a version the caller saw, is what guards the hand-over."""
        await ctx.limits.check(PICKUP_IP, client_ip(request))
        await ctx.limits.check(PICKUP_JOB, str(parse_ref(ref) or ref.strip().upper()))
        # RFC 9110 evaluates If-Match on a valid request only: the body's own rule comes first.
        _code_or_reason(data)
        expected = optional_version_from(if_match)
        cmd = pickup.PickupRequest(data.code, data.paid_cents, data.id_checked, data.reason)
        job = await pickup.hand_over(
            ctx.db, ctx.actor, ref, cmd, now=ctx.clock(), settings=ctx.settings, expected_version=expected
        )
        return _job_response(job_out(job, ctx.actor.role))

    @get("/pickup/lookup", responses=problems(*AUTH, 403, 404, 409, 422, 429))
    async def lookup(
        self,
        request: Request[Any, Any, Any],
        ctx: NamedDependency[RequestContext],
        code: Typed = None,
        ref: Typed = None,
        reference: Typed = None,
    ) -> Response[JobOut]:
        """The device waiting for pickup with this code (or reference: `ref`, or `reference`), and its slot,
        in one step."""
        await ctx.limits.check(PICKUP_IP, client_ip(request))
        if ref is not None and reference is not None and ref != reference:
            raise InvalidValue("reference", "give the job's reference once (ref or reference)")
        ref = ref if ref is not None else reference
        async with ctx.db.transaction(write=False) as uow:
            job = await pickup.lookup(uow, ctx.actor, code=code, ref=ref, now=ctx.clock(), settings=ctx.settings)
        return _job_response(job_out(job, ctx.actor.role))
