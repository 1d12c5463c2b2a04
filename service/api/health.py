"""Liveness and readiness probes (public: load balancers and supervisors call them)."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from sqlalchemy import text

from service.api.openapi import PublicOperation, problems
from service.api.problems import problem
from service.uow import Database


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/live", opt={"public": True}, operation_class=PublicOperation)
    async def live(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", opt={"public": True}, operation_class=PublicOperation, responses=problems(503))
    async def ready(self, db: NamedDependency[Database], request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        """The database, and Redis when one is configured (the workers' queue)."""
        checks = {"database": await _database(db)}
        redis = getattr(request.app.state, "redis", None)
        if redis is not None:
            checks["redis"] = await _redis(redis)
        down = [name for name, state in checks.items() if state != "ok"]
        if down:
            detail = "; ".join(f"{name}: {checks[name]}" for name in down)
            return problem(request, 503, "Not ready", detail, "not-ready", {"Retry-After": "2"}, checks=checks)
        return Response({"status": "ok", "checks": checks})


async def _database(db: Database) -> str:
    try:
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure means "not ready", whatever the driver raises
        return f"down ({type(exc).__name__})"
    return "ok"


async def _redis(redis: Any) -> str:
    try:
        await asyncio.wait_for(redis.ping(), timeout=1)
    except Exception as exc:  # down, or too slow to count as up
        return f"down ({type(exc).__name__})"
    return "ok"
