"""The bench: the branch's queue (the same use case as GET /api/v1/queue), each job with one big button
for its next bench step. The button carries the version of the job it was drawn from: a job changed
meanwhile is refused with the "someone changed this job" banner, and the queue drawn again."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import Redirect, Template
from litestar.status_codes import HTTP_303_SEE_OTHER

from domain.errors import DomainError, InvalidValue
from domain.model import Branch, RepairJob, format_ref
from domain.queue import BENCH_WORK
from domain.stages import Role, Stage
from service.persistence.jobs import JobFilter
from service.secrets import PasscodeCipher
from service.uow import UnitOfWork
from service.usecases import jobs, queue
from service.usecases.queue import QueueItem
from service.web.i18n import stage_name, translator
from service.web.job_view import Problem, problem_of, when
from service.web.pages import Page, SignInForm, on_sign_in_required
from service.web.session import SignInRequired

QUEUE_LIMIT = 50
_LIST_PAGE = 100  # the job list's largest page (the API's MAX_PAGE)
_MAX_LIST_PAGES = 10

# The bench step after each stage, in order of preference; the first the job allows is the button. From
# diagnosing, a repair within the pre-approved budget starts at once, else the estimate goes to the customer.
NEXT_STEPS: dict[Stage, tuple[Stage, ...]] = {
    Stage.RECEIVED: (Stage.DIAGNOSING,),
    Stage.DIAGNOSING: (Stage.REPAIRING, Stage.AWAITING_APPROVAL),
    Stage.AWAITING_PARTS: (Stage.REPAIRING,),
    Stage.REPAIRING: (Stage.QUALITY_CHECK,),
    Stage.QUALITY_CHECK: (Stage.READY_FOR_PICKUP,),
}


@dataclass(frozen=True, slots=True)
class BenchRow:
    item: QueueItem
    ref: str
    job: RepairJob | None  # None: gone from the bench between the two reads (the next refresh drops it)
    step: Stage | None  # the one-tap move, if any: else the job page says what is missing

    @property
    def version(self) -> int:
        return self.job.version if self.job else 0


def next_step(job: RepairJob, role: Role, waiting_for_parts: bool) -> Stage | None:
    """The primary bench move the job allows this role now (parts still to come: none)."""
    if waiting_for_parts:
        return None
    allowed = set(job.allowed_targets(role))
    return next((stage for stage in NEXT_STEPS.get(job.stage, ()) if stage.value in allowed), None)


class BenchPages(Controller):
    path = "/app"
    include_in_schema = False
    exception_handlers = {SignInRequired: on_sign_in_required}

    @get("/bench")
    async def bench(
        self, page: NamedDependency[Page], branch: Annotated[str, QueryParameter(max_length=32)] = ""
    ) -> Template:
        return await _render(page, "bench.html.j2", branch)

    @get("/bench/rows")
    async def rows(
        self, page: NamedDependency[Page], branch: Annotated[str, QueryParameter(max_length=32)] = ""
    ) -> Template:
        """The queue alone: what the page polls to stay live."""
        return await _render(page, "_bench_rows.html.j2", branch)

    @get("/bench/{ref:str}/move")
    async def back_to_bench(self, page: NamedDependency[Page], ref: FromPath[str]) -> Redirect:
        """The button's address opened as a page (signed in again after the session ran out): the bench."""
        return Redirect("/app/bench", status_code=HTTP_303_SEE_OTHER)

    @post("/bench/{ref:str}/move", status_code=200)
    async def move(
        self, request: Request[Any, Any, Any], page: NamedDependency[Page], ref: FromPath[str], data: SignInForm
    ) -> Response[Any]:
        """One tap: the move the button showed, guarded by the version it was drawn from."""
        branch = data.get("branch", "")
        template = "_bench_rows.html.j2" if request.headers.get("hx-request") else "bench.html.j2"
        try:
            await _move(page, ref, data, request.app.state.cipher)
        except DomainError as exc:
            return await _render(page, template, branch, problem_of(exc, ref, translator(page.language)))
        if not request.headers.get("hx-request"):
            target = f"/app/bench?branch={quote(branch)}" if branch else "/app/bench"
            return Redirect(target, status_code=HTTP_303_SEE_OTHER)
        moved = translator(page.language)("bench_moved").format(
            ref=ref, stage=stage_name(Stage(data["to"]), page.language)
        )
        return await _render(page, template, branch, moved=moved)


async def _move(page: Page, ref: str, data: dict[str, str], cipher: PasscodeCipher) -> None:
    raw_version, raw_to = data.get("version", ""), data.get("to", "")
    if not raw_version.isdigit():
        raise InvalidValue("version", "the button lost the job's version: reload the page")
    if raw_to not in {stage.value for stage in Stage}:
        raise InvalidValue("to", "one of the stages shown")
    async with page.db.transaction() as uow:
        await jobs.move(
            uow, page.actor, ref, int(raw_version), Stage(raw_to), now=page.now, settings=page.settings, cipher=cipher
        )


async def _render(
    page: Page, template: str, branch: str, problem: Problem | None = None, *, moved: str | None = None
) -> Template:
    """The queue (whole page or rows alone); after a tap, the rows carry the feedback out of band, so the
    next poll of the rows does not wipe it."""
    rows: list[BenchRow] = []
    tz = ZoneInfo("UTC")
    if branch or not page.actor.chain_wide:  # a chain-wide manager first names the branch
        try:
            found, rows = await _queue(page, branch)
            branch, tz = found.code, found.calendar.tz
        except DomainError as exc:
            problem = problem or problem_of(exc, "branch", translator(page.language))
    answer = page.render(
        template,
        rows=rows,
        branch=branch,
        ask_branch=page.actor.chain_wide,
        problem=problem,
        moved=moved,
        oob=problem is not None or moved is not None,
        when=lambda moment: when(moment, tz),
        refresh=page.settings.web_board_refresh_seconds,
    )
    answer.status_code = problem.status if problem else 200
    return answer


async def _queue(page: Page, branch: str) -> tuple[Branch, list[BenchRow]]:
    async with page.db.transaction(write=False) as uow:
        found, items = await queue.bench_queue(
            uow, page.actor, branch or None, now=page.now, sla=page.settings.sla_policy, limit=QUEUE_LIMIT
        )
        by_ref = await _jobs_of(uow, page, {format_ref(item.job.bench.job_id) for item in items})
    return found, [_row(item, by_ref, page.actor.role) for item in items]


async def _jobs_of(uow: UnitOfWork, page: Page, refs: set[str]) -> dict[str, RepairJob]:
    """The queued jobs in full (version, allowed moves), through the job list's use case: one query per
    page of bench-stage jobs, not one per row."""
    found: dict[str, RepairJob] = {}
    cursor: str | None = None
    for _ in range(_MAX_LIST_PAGES):
        listed = await jobs.list_jobs(uow, page.actor, JobFilter(stage=sorted(BENCH_WORK)), _LIST_PAGE, cursor)
        found.update(_wanted(listed.items, refs))
        cursor = listed.next_cursor
        if cursor is None or refs <= found.keys():
            break
    return found


def _wanted(listed: Iterable[RepairJob], refs: set[str]) -> dict[str, RepairJob]:
    return {job.ref: job for job in listed if job.ref in refs}


def _row(item: QueueItem, by_ref: dict[str, RepairJob], role: Role) -> BenchRow:
    ref = format_ref(item.job.bench.job_id)
    job = by_ref.get(ref)
    step = next_step(job, role, item.job.bench.waiting_for_parts) if job else None
    return BenchRow(item, ref, job, step)
