"""The arq worker: its tasks, its schedule, and the resources built once per worker process.

`atelier worker` runs it against ATELIER_REDIS_URL; several workers on several machines are safe
(cron jobs are unique across workers, and every task is idempotent anyway).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from arq import cron, func
from arq.connections import RedisSettings
from arq.cron import CronJob
from arq.worker import Function
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.metrics import share_between_processes
from service.secrets import required_secrets
from service.services import build_services
from service.settings import Settings
from workers.queue import ArqQueue
from workers.schedule import SCHEDULE
from workers.tasks import TASKS

# The default of ATELIER_WORKER_JOB_TIMEOUT_SECONDS: short, as a killed worker's job is re-run only
# after the longest task timeout + 10 s (arq's in-progress key lives that long).
JOB_TIMEOUT_SECONDS: int = Settings.model_fields["worker_job_timeout_seconds"].default


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
    share_between_processes()  # the supplier calls' metrics, when the worker shares a metrics directory
    settings: Settings = ctx.get("settings") or Settings()
    _, cipher = required_secrets(settings)
    ctx["services"] = build_services(settings, cipher)
    ctx["queue"] = ArqQueue(ctx["redis"])


async def shutdown(ctx: dict[str, Any]) -> None:
    services = ctx.get("services")
    if services is not None:
        await services.aclose()


def functions(job_timeout: int) -> list[Function]:
    return [func(task, name=name, timeout=job_timeout) for name, task in TASKS.items()]  # type: ignore[arg-type]


def cron_jobs(job_timeout: int) -> list[CronJob]:
    """The schedule's tasks; each periodic's own time limit, capped by the worker's job timeout (arq
    keeps a job's in-progress key for the longest limit of all + 10 s)."""
    cap = timedelta(seconds=job_timeout)
    return [
        cron(TASKS[p.task], name=f"cron:{p.task}", unique=True, timeout=min(p.timeout, cap), **p.cron_fields())  # type: ignore[arg-type]
        for p in SCHEDULE
        if p.task in TASKS
    ]


class WorkerSettings:
    """arq's defaults for Atelier; `worker_options` replaces what depends on the settings."""

    functions: ClassVar[list[Any]] = functions(JOB_TIMEOUT_SECONDS)
    cron_jobs: ClassVar[list[Any]] = cron_jobs(JOB_TIMEOUT_SECONDS)
    on_startup = startup
    on_shutdown = shutdown
    job_timeout = JOB_TIMEOUT_SECONDS
    max_tries = 5
    health_check_interval = 30  # the default (1 h) makes `--check` useless
    keep_result = 3600


def worker_options(settings: Settings) -> dict[str, Any]:
    """What the CLI passes to arq on top of `WorkerSettings`: where Redis is, the settings to use, and
    the tasks with their time limit."""
    if not settings.redis_url:
        raise ValueError("ATELIER_REDIS_URL is not set")
    timeout = settings.worker_job_timeout_seconds
    return {
        "redis_settings": redis_settings(settings.redis_url),
        "ctx": {"settings": settings},
        "functions": functions(timeout),
        "cron_jobs": cron_jobs(timeout),
        "job_timeout": timeout,
        "max_jobs": settings.worker_max_jobs,
    }
