"""Redis going away must not kill a worker for good: it keeps retrying, and works again once Redis is back;
and the health check says "unhealthy" at once when Redis is unreachable."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from arq import create_pool
from arq.connections import RedisSettings
from cryptography.fernet import Fernet
from redis.backoff import ExponentialBackoff

from tests.integration.test_cli import ATELIER, _env, _free_port, run
from tests.integration.test_redis_outage import PrivateRedis, private_redis  # noqa: F401  (fixture)
from workers.settings import ReconnectBackoff


def _worker_env(tmp_path: Path, redis_port: int, **extra: str) -> dict[str, str]:
    return {
        "ATELIER_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "ATELIER_JWT_SECRET": "w" * 40,
        "ATELIER_PASSCODE_KEYS": Fernet.generate_key().decode(),
        "ATELIER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}",
        **extra,
    }


def _wait_until_healthy(worker: subprocess.Popen[bytes], tmp_path: Path, env: dict[str, str], log: Path) -> None:
    deadline = time.monotonic() + 60
    while run(["worker", "--check"], tmp_path, **env).returncode != 0:
        assert worker.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the worker never reported healthy"
        time.sleep(0.5)


async def _runs_a_task(port: int, job_id: str) -> None:
    pool = await create_pool(RedisSettings(port=port, conn_retries=0))
    try:
        job = await pool.enqueue_job("purge_webhooks", _job_id=job_id)
        assert job is not None
        assert await job.result(timeout=45) == 0  # a worker ran it
    finally:
        await pool.aclose()


async def test_a_worker_survives_redis_going_away_and_runs_tasks_when_it_returns(
    tmp_path: Path,
    private_redis: PrivateRedis,  # noqa: F811
) -> None:
    env = {
        "ATELIER_REDIS_URL": f"redis://127.0.0.1:{private_redis.port}/0",
        "ATELIER_JWT_SECRET": "w" * 40,
        "ATELIER_PASSCODE_KEYS": Fernet.generate_key().decode(),
        "ATELIER_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'worker.db'}",
    }
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(  # noqa: ASYNC220 (a real process on purpose)
            [*ATELIER, "worker"], cwd=tmp_path, env=_env(**env), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while run(["worker", "--check"], tmp_path, **env).returncode != 0:
            assert worker.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the worker never reported healthy"
            time.sleep(0.5)  # noqa: ASYNC251

        private_redis.stop()
        time.sleep(3)  # noqa: ASYNC251 (the worker meets the lost connection meanwhile)
        assert worker.poll() is None, f"the worker died with Redis:\n{log_path.read_text()}"

        private_redis.start()  # an empty Redis, as after a restart without persistence
        pool = await create_pool(RedisSettings(port=private_redis.port, conn_retries=0))
        try:
            job = await pool.enqueue_job("purge_webhooks", _job_id="after-restart")
            assert job is not None
            assert await job.result(timeout=45) == 0, log_path.read_text()  # the same worker ran it
        finally:
            await pool.aclose()
        assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(timeout=30)


async def test_a_worker_waits_for_redis_and_outlasts_any_number_of_reconnect_attempts(
    tmp_path: Path,
    private_redis: PrivateRedis,  # noqa: F811
) -> None:
    # Retrying every 0.05 s, 6 s of Redis down is over a hundred attempts: more than any fixed count allows.
    env = _worker_env(tmp_path, private_redis.port, ATELIER_REDIS_RECONNECT_MAX_SECONDS="0.05")
    log_path = tmp_path / "worker.log"
    private_redis.stop()  # not there yet when the worker starts
    with log_path.open("w") as log:
        worker = subprocess.Popen(  # noqa: ASYNC220 (a real process on purpose)
            [*ATELIER, "worker"], cwd=tmp_path, env=_env(**env), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while "redis_unreachable_waiting" not in log_path.read_text():
            assert worker.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "the worker never said it waits for Redis"
            time.sleep(0.2)  # noqa: ASYNC251
        time.sleep(2)  # noqa: ASYNC251
        assert worker.poll() is None, f"the worker gave up waiting for Redis:\n{log_path.read_text()}"

        private_redis.start()
        _wait_until_healthy(worker, tmp_path, env, log_path)
        private_redis.stop()
        time.sleep(6)  # noqa: ASYNC251
        assert worker.poll() is None, f"the worker died with Redis:\n{log_path.read_text()}"

        private_redis.start()
        await _runs_a_task(private_redis.port, "after-a-long-outage")
        assert worker.poll() is None  # the same process, still there
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_the_health_check_fails_at_once_when_redis_is_unreachable(tmp_path: Path) -> None:
    env = _worker_env(tmp_path, _free_port())  # nothing listens there
    started = time.monotonic()
    checked = subprocess.run(
        [*ATELIER, "worker", "--check"], cwd=tmp_path, env=_env(**env), capture_output=True, text=True, timeout=60
    )
    # Seconds, most of them the interpreter starting (the worker's own retries would take minutes).
    assert time.monotonic() - started < 20
    assert checked.returncode != 0
    assert "Redis is unreachable" in checked.stderr


def test_the_reconnect_backoff_never_overflows_however_long_redis_is_away() -> None:
    with pytest.raises(OverflowError):  # redis-py's own, after ~1000 failures: a worker would die of it
        ExponentialBackoff(cap=10, base=0.2).compute(2000)
    assert ReconnectBackoff(cap=10, base=0.2).compute(2000) == 10
