"""Liveness and readiness probes (public: load balancers and supervisors call them)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from sqlalchemy import text

from service.api.problems import problem
from service.uow import Database


class HealthController(Controller):
    path = "/health"
    tags = ["health"]

    @get("/live", opt={"public": True}, security=[])
    async def live(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", opt={"public": True}, security=[])
    async def ready(self, db: NamedDependency[Database], request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        try:
            async with db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # any failure means "not ready", whatever the driver raises
            return problem(
                request,
                503,
                "Not ready",
                f"database: {type(exc).__name__}",
                "not-ready",
                {"Retry-After": "2"},
                checks={"database": "down"},
            )
        return Response({"status": "ok", "checks": {"database": "ok"}})
