"""The worker's schedule inside `atelier serve` when no Redis is configured: the embedded default, so
a one-machine shop on SQLite gets polling, escalations and messages with nothing else installed.
The same task functions run, on the same schedule; enqueued work runs as background tasks here."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import structlog

from service.services import Services
from workers.queue import InProcessQueue
from workers.schedule import SCHEDULE, Periodic
from workers.tasks import TASKS

log = structlog.get_logger("atelier.embedded")


class EmbeddedWorker:
    def __init__(self, services: Services, schedule: tuple[Periodic, ...] = SCHEDULE) -> None:
        self.ctx: dict[str, Any] = {"services": services}
        self.queue = InProcessQueue(TASKS, self.ctx)
        self.ctx["queue"] = self.queue
        self._schedule = [p for p in schedule if p.task in TASKS]
        self._loops: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._loops = [asyncio.create_task(self._every(p)) for p in self._schedule]

    async def _every(self, periodic: Periodic) -> None:
        while True:
            await asyncio.sleep(periodic.every.total_seconds())
            # The cron's own id: a run still going is not started twice.
            await self.queue.enqueue(periodic.task, job_id=f"cron:{periodic.task}")

    async def stop(self) -> None:
        for loop in self._loops:
            loop.cancel()
        for loop in self._loops:
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        await self.queue.drain()
