"""Redis going away must not kill a worker for good: it keeps retrying, and works again once Redis is back."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from arq import create_pool
from arq.connections import RedisSettings
from cryptography.fernet import Fernet

from tests.integration.test_cli import ATELIER, _env, run
from tests.integration.test_redis_outage import PrivateRedis, private_redis  # noqa: F401  (fixture)


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
