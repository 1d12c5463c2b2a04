"""Handing tasks to arq (Redis), and running them in-process when there is no Redis (the embedded
default: one machine, SQLite, `atelier serve` alone)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog
from arq.connections import ArqRedis

log = structlog.get_logger("atelier.queue")

Task = Callable[..., Awaitable[Any]]


class ArqQueue:
    def __init__(self, redis: ArqRedis) -> None:
        self._redis = redis

    async def enqueue(self, task: str, *, job_id: str, **kwargs: Any) -> bool:
        """False when a job with this id is queued, running or kept already (arq's own dedupe)."""
        return await self._redis.enqueue_job(task, _job_id=job_id, **kwargs) is not None


class InProcessQueue:
    """Runs each task as a background asyncio task of this process, once per id while it runs."""

    def __init__(self, tasks: Mapping[str, Task], ctx: dict[str, Any]) -> None:
        self._tasks = tasks
        self._ctx = ctx
        self._running: dict[str, asyncio.Task[Any]] = {}

    async def enqueue(self, task: str, *, job_id: str, **kwargs: Any) -> bool:
        if job_id in self._running:
            return False
        run = self._tasks[task]
        self._running[job_id] = asyncio.create_task(self._run(job_id, task, run, kwargs))
        return True

    async def _run(self, job_id: str, name: str, run: Task, kwargs: dict[str, Any]) -> None:
        try:
            await run(self._ctx, **kwargs)
        except Exception:
            # Like arq: log and move on; the outbox re-dispatches what was not done.
            log.exception("task_failed", task=name, job_id=job_id)
        finally:
            self._running.pop(job_id, None)

    async def drain(self) -> None:
        """Wait for the tasks in flight (tests, shutdown)."""
        while self._running:
            await asyncio.gather(*list(self._running.values()), return_exceptions=True)
