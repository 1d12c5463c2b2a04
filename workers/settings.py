"""The arq worker: its tasks, its schedule, and the resources built once per worker process.

`atelier worker` runs it against ATELIER_REDIS_URL; several workers on several machines are safe
(cron jobs are unique across workers, and every task is idempotent anyway).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, ClassVar

import structlog
from arq import create_pool, cron, func
from arq.connections import RedisSettings
from arq.cron import CronJob
from arq.worker import Function, async_check_health
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.metrics import share_between_processes
from service.secrets import required_secrets
from service.services import build_services
from service.settings import Settings
from workers.queue import ArqQueue
from workers.schedule import SCHEDULE
from workers.tasks import TASKS

log = structlog.get_logger("atelier.worker")

# The default of ATELIER_WORKER_JOB_TIMEOUT_SECONDS: short, as a killed worker's job is re-run only
# after the longest task timeout + 10 s (arq's in-progress key lives that long).
JOB_TIMEOUT_SECONDS: int = Settings.model_fields["worker_job_timeout_seconds"].default


RECONNECT_MAX_SECONDS: float = Settings.model_fields["redis_reconnect_max_seconds"].default
CHECK_TIMEOUT_SECONDS = 2  # a probe (`--check`, waiting for Redis at start) answers within a few seconds


class ReconnectBackoff(ExponentialBackoff):
    """redis-py's exponential backoff, minus its overflow: `base * 2**failures` raises OverflowError past
    ~1000 failures (hours of Redis down at the cap), which would kill a worker retrying forever."""

    def compute(self, failures: int) -> float:
        return super().compute(min(failures, 64))


def redis_settings(url: str, reconnect_max_seconds: float = RECONNECT_MAX_SECONDS) -> RedisSettings:
    """The worker's connection: on a lost connection it retries forever, backing off up to
    `reconnect_max_seconds`, instead of dying after a fixed number of attempts (arq#435, #498)."""
    settings = RedisSettings.from_dsn(url)
    settings.conn_retries = 0  # the Retry below never gives up on a connect error (`wait_for_redis` logs it)
    settings.retry_on_timeout = True
    settings.retry_on_error = [RedisConnectionError, RedisTimeoutError, OSError]
    backoff = ReconnectBackoff(cap=reconnect_max_seconds, base=min(0.2, reconnect_max_seconds))
    settings.retry = Retry(backoff, retries=-1)  # negative: forever
    return settings


def probe_redis_settings(url: str) -> RedisSettings:
    """Fail fast: one attempt, a short connect timeout (a health probe must answer, not wait Redis out)."""
    settings = RedisSettings.from_dsn(url)
    settings.conn_retries = 0
    settings.conn_timeout = CHECK_TIMEOUT_SECONDS
    return settings


async def wait_for_redis(url: str, reconnect_max_seconds: float = RECONNECT_MAX_SECONDS) -> None:
    """Return once Redis answers, however long it takes: a worker started before Redis waits for it
    (saying so) rather than exiting."""
    backoff = ReconnectBackoff(cap=reconnect_max_seconds, base=min(0.2, reconnect_max_seconds))
    attempts = 0
    while True:
        try:
            redis = await asyncio.wait_for(create_pool(probe_redis_settings(url)), CHECK_TIMEOUT_SECONDS * 2)
        except AuthenticationError:
            raise  # a wrong password is no outage to wait out
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            attempts += 1
            delay = backoff.compute(attempts)
            log.warning("redis_unreachable_waiting", error=type(exc).__name__, attempts=attempts, retry_in=delay)
            await asyncio.sleep(delay)
        else:
            await redis.aclose()
            if attempts:
                log.info("redis_reachable", attempts=attempts)
            return


def check_health(url: str) -> int:
    """arq's health check (0: a worker reported in the last `health_check_interval`), failing fast: an
    unreachable Redis raises within seconds instead of being retried for minutes."""
    check = async_check_health(probe_redis_settings(url), None, None)
    return asyncio.run(asyncio.wait_for(check, CHECK_TIMEOUT_SECONDS * 2))


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
        "redis_settings": redis_settings(settings.redis_url, settings.redis_reconnect_max_seconds),
        "ctx": {"settings": settings},
        "functions": functions(timeout),
        "cron_jobs": cron_jobs(timeout),
        "job_timeout": timeout,
        "max_jobs": settings.worker_max_jobs,
    }
