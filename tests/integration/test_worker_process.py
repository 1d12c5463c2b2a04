"""`atelier worker` as an operator runs it: a real process against a real Redis, health-checked, running
queued tasks, and stopping cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from arq.connections import ArqRedis
from cryptography.fernet import Fernet

from tests.integration.test_cli import ATELIER, _env, run
from tests.redis_support import flushed_redis, redis_url

REDIS_DB = 10
REDIS_URL = redis_url(REDIS_DB)


@pytest.fixture
async def redis() -> AsyncIterator[ArqRedis]:
    async with flushed_redis(REDIS_DB) as pool:
        yield pool


async def test_the_worker_process_reports_healthy_runs_tasks_and_stops_cleanly(tmp_path: Path, redis: ArqRedis) -> None:
    env = {
        "ATELIER_REDIS_URL": REDIS_URL,
        "ATELIER_JWT_SECRET": "w" * 40,
        "ATELIER_PASSCODE_KEYS": Fernet.generate_key().decode(),
        "ATELIER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}",
    }
    assert run(["worker", "--check"], tmp_path, **env).returncode != 0  # no worker yet: not healthy
    log = (tmp_path / "worker.log").open("w")
    # A real process on purpose (the test drives it while awaiting Redis).
    worker = subprocess.Popen(  # noqa: ASYNC220
        [*ATELIER, "worker"], cwd=tmp_path, env=_env(**env), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while run(["worker", "--check"], tmp_path, **env).returncode != 0:
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            assert time.monotonic() < deadline, "the worker never reported healthy"
            await asyncio.sleep(0.5)

        job = await redis.enqueue_job("purge_webhooks", _job_id="purge:test")
        assert job is not None
        assert await job.result(timeout=30) == 0  # it ran (on a fresh database there is nothing to purge)
    finally:
        worker.send_signal(signal.SIGTERM)
        returncode = worker.wait(timeout=30)
        log.close()
    assert returncode == 0, (tmp_path / "worker.log").read_text()
