"""Repair jobs over HTTP: translates requests to use cases and domain objects to responses."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post, put
from litestar.di import NamedDependency
from litestar.exceptions import HTTPException
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, FromQuery, HeaderParameter, QueryParameter

from domain.errors import InvalidValue, VersionConflict
from domain.model import Actor, RepairJob, Tier, parse_ref
from domain.stages import Stage
from service.api.context import RequestContext
from service.api.openapi import AUTH, BODY, NO_NUL, ClosedJSON, problems
from service.api.routing import ApiController
from service.api.schemas import (
    ApprovalIn,
    AssignmentIn,
    EstimateIn,
    EventOut,
    IntakeIn,
    JobOut,
    JobPageOut,
    NoteIn,
    PasscodeOut,
    TransitionIn,
    event_out,
    job_out,
)
from service.idempotency import run_idempotent
from service.persistence.idempotency import StoredResponse
from service.persistence.jobs import JobFilter
from service.uow import UnitOfWork
from service.usecases import express, jobs, tracking

MAX_PAGE = 100
_ETAG_PREFIX = '"v'


def etag(version: int) -> str:
    return f'{_ETAG_PREFIX}{version}"'


# The answer is built from a stored body (Idempotency-Key), so the handler returns `Response[Any]`: say what it is.
INTAKE_ANSWER = ResponseSpec(JobOut, description="The job taken in, with its link and today's express slots left")
# A guarded change of a job: who may, the job's state, and the If-Match version it names.
CHANGE = problems(*AUTH, *BODY, 403, 404, 409, 412, 428)

IfMatch = Annotated[str | None, HeaderParameter(name="If-Match", required=False, max_length=200)]


def expected_version_from(if_match: str | None) -> int:
    """The version the caller last saw; every change of a job must say which one it changes."""
    if if_match is None or if_match.strip() in ("", "*"):
        raise HTTPException(status_code=428, detail="send If-Match with the job's current ETag")
    for candidate in if_match.split(","):
        tag = candidate.strip()
        if tag.startswith(_ETAG_PREFIX) and tag.endswith('"') and tag[2:-1].isdigit():
            return int(tag[2:-1])
    raise VersionConflict("If-Match does not name a current version of this job")


def optional_version_from(if_match: str | None) -> int | None:
    """For a change an If-Match guards only when sent: absent, blank or `*` (any version) guards nothing."""
    if if_match is None or if_match.strip() in ("", "*"):
        return None
    return expected_version_from(if_match)


async def _change(
    ctx: RequestContext, if_match: str | None, change: Callable[[UnitOfWork, int, datetime], Awaitable[RepairJob]]
) -> Response[JobOut]:
    """One guarded change of a job: the If-Match version, one transaction, the new job and ETag."""
    expected_version = expected_version_from(if_match)
    async with ctx.db.transaction() as uow:
        job = await change(uow, expected_version, ctx.clock())
    return _job_response(job_out(job, ctx.actor.role))


def _job_response(job_body: JobOut, status: int = 200, **headers: str) -> Response[JobOut]:
    return Response(job_body, status_code=status, headers={"ETag": etag(job_body.version), **headers})


def _fingerprint(raw: bytes) -> str:
    try:
        canonical = json.dumps(json.loads(raw), sort_keys=True, separators=(",", ":")).encode()
    except ValueError:
        canonical = raw
    return hashlib.sha256(canonical).hexdigest()


def one_or_more_of(values: Iterable[str]) -> str:
    """The pattern of a comma-separated filter (`received,on_hold`), empty for none."""
    one = "|".join(values)
    return rf"^(?:(?:{one})(?:,(?:{one}))*)?$"


def _parse_stages(raw: str | None) -> list[Stage]:
    # As the documented pattern says it, so the schema and the check agree (`$` lets a final newline through).
    if not raw:
        return []
    try:
        return [Stage(part) for part in raw.split(",")]
    except ValueError as exc:
        raise InvalidValue("stage", f"one or more of: {', '.join(s.value for s in Stage)}") from exc


class JobController(ApiController):
    path = "/api/v1/jobs"
    tags = ["jobs"]

    @post("/", status_code=201, responses={201: INTAKE_ANSWER, **problems(*AUTH, *BODY, 403, 404, 409)})
    async def intake(
        self,
        data: ClosedJSON[IntakeIn],
        request: Request[Actor, Any, Any],
        ctx: NamedDependency[RequestContext],
        idempotency_key: Annotated[
            str | None, HeaderParameter(name="Idempotency-Key", required=False, min_length=1, max_length=255)
        ] = None,
    ) -> Response[Any]:
        """Take a device in. Retries with the same Idempotency-Key replay the first answer."""
        actor, db, settings, cipher, clock = ctx.actor, ctx.db, ctx.settings, ctx.cipher, ctx.clock
        cmd = data.to_command()
        now, capacity = clock(), settings.express_capacity_per_day
        if idempotency_key is None:
            async with db.transaction() as uow:
                job = await jobs.intake(
                    uow, actor, cmd, now=now, sla=settings.sla_policy, cipher=cipher, express_capacity=capacity
                )
                left = await express.slots_left(uow, job.branch_id, now=now, default_capacity=capacity)
                link = await tracking.url_of(uow, job.id or 0, cipher=cipher, base_url=settings.public_base_url)
            body = job_out(job, actor.role)
            body.tracking_url = link  # the customer's link, for the ticket: only the intake answer carries it
            body.express_slots_left = left
            return _job_response(body, 201, Location=f"{self.path}/{job.ref}")

        async def operation(uow: UnitOfWork) -> StoredResponse:
            job = await jobs.intake(
                uow, actor, cmd, now=now, sla=settings.sla_policy, cipher=cipher, express_capacity=capacity
            )
            body = job_out(job, actor.role)
            body.express_slots_left = await express.slots_left(uow, job.branch_id, now=now, default_capacity=capacity)
            headers = {"Location": f"{self.path}/{job.ref}", "ETag": etag(job.version)}
            return StoredResponse(201, msgspec.to_builtins(body), headers, fingerprint)

        fingerprint = _fingerprint(await request.body())
        stored, replayed = await run_idempotent(
            db, actor, idempotency_key, fingerprint, now, settings.idempotency_ttl_hours, operation
        )
        headers = dict(stored.headers)
        if replayed:
            headers["Idempotent-Replayed"] = "true"
        # The link is a secret: never kept in the stored answer, read (decrypted) from the job each time.
        async with db.transaction(write=False) as uow:
            job_id = parse_ref(str(stored.body["ref"])) or 0
            link = await tracking.url_of(uow, job_id, cipher=cipher, base_url=settings.public_base_url)
        return Response({**stored.body, "tracking_url": link}, status_code=stored.status_code, headers=headers)

    @get("/", responses=problems(*AUTH, 422))
    async def list_jobs(
        self,
        ctx: NamedDependency[RequestContext],
        stage: Annotated[str | None, QueryParameter(max_length=400, pattern=one_or_more_of(Stage))] = None,
        tier: FromQuery[Tier | None] = None,
        technician: Annotated[str | None, QueryParameter(max_length=150, pattern=NO_NUL)] = None,
        q: Annotated[str | None, QueryParameter(min_length=1, max_length=100, pattern=NO_NUL)] = None,
        limit: Annotated[int, QueryParameter(ge=1)] = 50,
        cursor: Annotated[str | None, QueryParameter(max_length=200)] = None,
    ) -> JobPageOut:
        """Open and closed jobs of the caller's branch: express first, then by due date."""
        actor, db = ctx.actor, ctx.db
        filters = JobFilter(_parse_stages(stage), tier, technician, q)
        async with db.transaction(write=False) as uow:
            page = await jobs.list_jobs(uow, actor, filters, min(limit, MAX_PAGE), cursor)
        return JobPageOut([job_out(job, actor.role) for job in page.items], page.next_cursor)

    @get("/{ref:str}", responses=problems(*AUTH, 404))
    async def get_job(self, ref: FromPath[str], ctx: NamedDependency[RequestContext]) -> Response[JobOut]:
        actor, db = ctx.actor, ctx.db
        async with db.transaction(write=False) as uow:
            job = await jobs.get_job(uow, actor, ref)
        return _job_response(job_out(job, actor.role))

    @get("/{ref:str}/events", responses=problems(*AUTH, 404))
    async def events(self, ref: FromPath[str], ctx: NamedDependency[RequestContext]) -> list[EventOut]:
        """The job's full history, oldest first."""
        actor, db = ctx.actor, ctx.db
        async with db.transaction(write=False) as uow:
            history = await jobs.job_history(uow, actor, ref)
        return [event_out(e) for e in history]

    @get("/{ref:str}/passcode", responses=problems(*AUTH, 403, 404, 409))
    async def passcode(
        self,
        ref: FromPath[str],
        ctx: NamedDependency[RequestContext],
    ) -> Response[PasscodeOut]:
        """The device's unlock code, for the assigned technician or a manager; every read is recorded."""
        actor, db, cipher, clock = ctx.actor, ctx.db, ctx.cipher, ctx.clock
        async with db.transaction() as uow:
            code = await jobs.reveal_passcode(uow, actor, ref, now=clock(), cipher=cipher)
        return Response(PasscodeOut(code), headers={"Cache-Control": "no-store"})

    @post("/{ref:str}/transitions", status_code=200, responses=CHANGE)
    async def transition(
        self,
        ref: FromPath[str],
        data: ClosedJSON[TransitionIn],
        ctx: NamedDependency[RequestContext],
        if_match: IfMatch = None,
    ) -> Response[JobOut]:
        return await _change(
            ctx,
            if_match,
            lambda uow, version, now: jobs.move(
                uow,
                ctx.actor,
                ref,
                version,
                data.to,
                now=now,
                settings=ctx.settings,
                cipher=ctx.cipher,
                note=data.note,
                outcome=data.outcome,
            ),
        )

    @put("/{ref:str}/estimate", responses=CHANGE)
    async def estimate(
        self,
        ref: FromPath[str],
        data: ClosedJSON[EstimateIn],
        ctx: NamedDependency[RequestContext],
        if_match: IfMatch = None,
    ) -> Response[JobOut]:
        lines = [line.to_domain() for line in data.lines]
        return await _change(
            ctx,
            if_match,
            lambda uow, version, now: jobs.set_estimate(uow, ctx.actor, ref, version, lines, now=now, note=data.note),
        )

    @post("/{ref:str}/approval", status_code=200, responses=CHANGE)
    async def approval(
        self,
        ref: FromPath[str],
        data: ClosedJSON[ApprovalIn],
        ctx: NamedDependency[RequestContext],
        if_match: IfMatch = None,
    ) -> Response[JobOut]:
        return await _change(
            ctx,
            if_match,
            lambda uow, version, now: jobs.record_approval(
                uow, ctx.actor, ref, version, data.approved, now=now, note=data.note
            ),
        )

    @post("/{ref:str}/assignment", status_code=200, responses=CHANGE)
    async def assignment(
        self,
        ref: FromPath[str],
        data: ClosedJSON[AssignmentIn],
        ctx: NamedDependency[RequestContext],
        if_match: IfMatch = None,
    ) -> Response[JobOut]:
        return await _change(
            ctx, if_match, lambda uow, version, now: jobs.assign(uow, ctx.actor, ref, version, data.technician, now=now)
        )

    @post("/{ref:str}/notes", status_code=200, responses=CHANGE)
    async def notes(
        self,
        ref: FromPath[str],
        data: ClosedJSON[NoteIn],
        ctx: NamedDependency[RequestContext],
        if_match: IfMatch = None,
    ) -> Response[JobOut]:
        return await _change(
            ctx, if_match, lambda uow, version, now: jobs.add_note(uow, ctx.actor, ref, version, data.note, now=now)
        )
