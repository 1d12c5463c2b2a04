"""The staff alert feeds over HTTP: a branch's staff feed (late parts, re-sourcing proposals), and for
managers the manager feed too (breached promises). A chain-wide manager sees every branch's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from domain.errors import NotFound
from domain.model import format_ref
from service.api.context import RequestContext
from service.api.openapi import AUTH, problems
from service.persistence.escalations import Alert


@dataclass(slots=True)
class AlertOut:
    id: int
    branch_id: int
    ref: str | None  # the job it is about
    audience: str  # staff or manager
    kind: str  # parts_late, resource_proposal, sla_breached
    message: str
    data: dict[str, Any]
    created_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None


def alert_out(alert: Alert) -> AlertOut:
    return AlertOut(
        alert.id,
        alert.branch_id,
        format_ref(alert.job_id) if alert.job_id is not None else None,
        alert.audience,
        alert.kind,
        alert.message,
        dict(alert.data),
        alert.created_at,
        alert.acknowledged_at,
        alert.acknowledged_by,
    )


class AlertController(Controller):
    path = "/api/v1/alerts"
    tags = ["alerts"]

    @get("/", responses=problems(*AUTH, 422))
    async def list_alerts(
        self,
        ctx: NamedDependency[RequestContext],
        unacknowledged: Annotated[bool, QueryParameter()] = False,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> list[AlertOut]:
        """The caller's feed, newest first (`unacknowledged=true`: only those nobody acknowledged yet)."""
        async with ctx.db.transaction(write=False) as uow:
            found = await uow.alerts.feed(ctx.actor, limit=limit, unacknowledged_only=unacknowledged)
        return [alert_out(a) for a in found]

    @post("/{alert_id:int}/acknowledge", status_code=200, responses=problems(*AUTH, 404))
    async def acknowledge(self, alert_id: FromPath[int], ctx: NamedDependency[RequestContext]) -> AlertOut:
        """Seen and handled: the first acknowledgement (who, when) is kept; another branch's alert is 404."""
        async with ctx.db.transaction() as uow:
            alert = await uow.alerts.acknowledge(ctx.actor, alert_id, ctx.clock())
        if alert is None:
            raise NotFound(f"no alert {alert_id}")
        return alert_out(alert)
