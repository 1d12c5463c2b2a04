"""The technician's queue over HTTP: what to take next at the bench."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from domain.model import FaultCategory, Tier, format_ref
from domain.stages import Stage
from service.api.context import RequestContext
from service.api.openapi import AUTH, NO_NUL, problems
from service.usecases import queue
from service.usecases.queue import QueueItem

MAX_QUEUE = 200


@dataclass(slots=True)
class QueueDeviceOut:
    brand: str
    model: str


@dataclass(slots=True)
class QueueItemOut:
    ref: str
    stage: Stage
    tier: Tier
    due_at: datetime
    technician: str | None
    device: QueueDeviceOut
    fault_category: FaultCategory
    parts_ready: bool  # no part is still awaited
    parts_eta: datetime | None  # when the last awaited part should arrive (null: none awaited, or unknown)
    waiting_for_parts: bool  # in awaiting_parts with parts still to come: not workable yet
    waiting_for_customer: bool  # parts ordered before the customer approved an estimate over any budget
    at_risk: bool  # the promise (due_at) is likely to be missed


@dataclass(slots=True)
class QueueOut:
    branch: str
    items: list[QueueItemOut]


def item_out(item: QueueItem) -> QueueItemOut:
    job, bench = item.job, item.job.bench
    return QueueItemOut(
        ref=format_ref(bench.job_id),
        stage=bench.stage,
        tier=bench.tier,
        due_at=bench.due_at,
        technician=job.technician,
        device=QueueDeviceOut(job.device_brand, job.device_model),
        fault_category=job.fault_category,
        parts_ready=bench.parts_ready,
        parts_eta=bench.parts_eta,
        waiting_for_parts=bench.waiting_for_parts,
        waiting_for_customer=bench.waiting_for_customer,
        at_risk=item.at_risk,
    )


class QueueController(Controller):
    path = "/api/v1/queue"
    tags = ["queue"]

    @get("/", responses=problems(*AUTH, 404, 422))
    async def bench_queue(
        self,
        ctx: NamedDependency[RequestContext],
        branch: Annotated[str | None, QueryParameter(min_length=1, max_length=32, pattern=NO_NUL)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_QUEUE)] = 50,
    ) -> QueueOut:
        """Open jobs of the caller's branch that need bench work: express first, then by due date, then by
        parts readiness; a job waiting for parts after every job that can be worked on now. A chain-wide
        manager names the branch (?branch=CODE)."""
        async with ctx.db.transaction(write=False) as uow:
            found, items = await queue.bench_queue(
                uow, ctx.actor, branch, now=ctx.clock(), sla=ctx.settings.sla_policy, limit=limit
            )
        return QueueOut(found.code, [item_out(item) for item in items])
