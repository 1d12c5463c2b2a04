"""The arq worker: its tasks, its schedule, and the resources built once per worker process.

`atelier worker` runs it against ATELIER_REDIS_URL; several workers on several machines are safe
(cron jobs are unique across workers, and every task is idempotent anyway).
"""

from __future__ import annotations

from typing import Any, ClassVar

from arq import cron, func
from arq.connections import RedisSettings
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.secrets import required_secrets
from service.services import build_services
from service.settings import Settings
from workers.queue import ArqQueue
from workers.schedule import SCHEDULE
from workers.tasks import TASKS

JOB_TIMEOUT_SECONDS = 120  # short: a killed worker's job is re-run after job_timeout + 10 s


def redis_settings(url: str) -> RedisSettings:
    """Reconnect with backoff instead of dying when Redis goes away (arq#435, #498)."""
    settings = RedisSettings.from_dsn(url)
    settings.conn_retries = 30
    settings.conn_retry_delay = 2
    settings.retry_on_timeout = True
    settings.retry_on_error = [RedisConnectionError, RedisTimeoutError, OSError]
    settings.retry = Retry(ExponentialBackoff(cap=10, base=0.2), retries=20)
    return settings


async def startup(ctx: dict[str, Any]) -> None:
    settings: Settings = ctx.get("settings") or Settings()
    _, cipher = required_secrets(settings)
    ctx["services"] = build_services(settings, cipher)
    ctx["queue"] = ArqQueue(ctx["redis"])


async def shutdown(ctx: dict[str, Any]) -> None:
    services = ctx.get("services")
    if services is not None:
        await services.aclose()


class WorkerSettings:
    functions: ClassVar[list[Any]] = [
        func(task, name=name, timeout=JOB_TIMEOUT_SECONDS) for name, task in TASKS.items()
    ]
    cron_jobs: ClassVar[list[Any]] = [
        cron(TASKS[p.task], name=f"cron:{p.task}", unique=True, timeout=p.timeout, **p.cron_fields())  # type: ignore[arg-type]
        for p in SCHEDULE
        if p.task in TASKS
    ]
    on_startup = startup
    on_shutdown = shutdown
    job_timeout = JOB_TIMEOUT_SECONDS
    max_tries = 5
    health_check_interval = 30  # the default (1 h) makes `--check` useless
    keep_result = 3600


def worker_options(settings: Settings) -> dict[str, Any]:
    """What the CLI passes to arq on top of `WorkerSettings`: where Redis is, and the settings to use."""
    if not settings.redis_url:
        raise ValueError("ATELIER_REDIS_URL is not set")
    return {"redis_settings": redis_settings(settings.redis_url), "ctx": {"settings": settings}}
