"""Redis goes away while the shop takes devices in: intake, sign-in and stage moves still succeed, and the
work they created (the customer's message) waits in the outbox until Redis is back, then reaches the queue."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from arq import create_pool
from arq.connections import RedisSettings
from cryptography.fernet import Fernet
from redis.exceptions import ConnectionError as RedisConnectionError

from service.secrets import PasscodeCipher
from service.services import Services, build_services
from service.settings import Settings
from service.usecases import outbox
from tests.conftest import IN_CI, PASSCODE_KEY, FakeClock
from tests.integration.test_cli import _free_port, run, serving, token
from workers.background import relay_redis
from workers.queue import ArqQueue

INTAKE = {
    "customer": {"name": "Ada", "phone": "0612345678", "email": "ada@example.org"},
    "device": {"brand": "Apple", "model": "iPhone 13", "imei": "490154203237518"},
    "fault": {"category": "screen", "description": "cracked"},
    "tier": "standard",
}


class PrivateRedis:
    """A redis-server of this test's own, so stopping it disturbs nobody else."""

    def __init__(self, port: int, folder: Path) -> None:
        self.port, self.folder = port, folder
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(command, cwd=self.folder, stdout=subprocess.DEVNULL)
        for _ in range(100):
            ping = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True)  # noqa: S607
            if ping.stdout.strip() == b"PONG":
                return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        if IN_CI:
            pytest.fail("redis-server is not installed")
        pytest.skip("redis-server is not installed")
    redis = PrivateRedis(_free_port(), tmp_path)
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


@pytest.fixture
async def services(settings: Settings, clock: FakeClock, clean_db: None) -> AsyncIterator[Services]:
    built = build_services(settings, PasscodeCipher(PASSCODE_KEY), clock=clock)
    try:
        yield built
    finally:
        await built.aclose()


async def _queued_job_ids(port: int) -> set[str]:
    pool = await create_pool(RedisSettings(port=port, conn_retries=0))
    try:
        return {job.job_id for job in await pool.queued_jobs()}
    finally:
        await pool.aclose()


def _wait_for_relay_retries(database: Path) -> None:
    """The relay keeps trying the intake's entries while Redis is down (each attempt fails fast and gives
    them back undispatched), rather than holding them dispatched for REDISPATCH_AFTER."""
    deadline = time.monotonic() + 20
    rows: list[tuple[int, str | None]] = []
    while time.monotonic() < deadline:
        with contextlib.closing(sqlite3.connect(database, timeout=5)) as db:
            rows = db.execute("SELECT attempts, dispatched_at FROM outbox WHERE done_at IS NULL").fetchall()
        if rows and all(attempts >= 2 and dispatched is None for attempts, dispatched in rows):
            return
        time.sleep(0.3)
    raise AssertionError(f"the relay did not retry the outbox while Redis was down: {rows}")


def test_intake_succeeds_with_redis_down_and_the_outbox_drains_when_it_returns(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    keys = {
        "ATELIER_JWT_SECRET": "r" * 40,
        "ATELIER_PASSCODE_KEYS": Fernet.generate_key().decode(),
        "ATELIER_REDIS_URL": f"redis://127.0.0.1:{private_redis.port}/0",
    }
    assert run(["db", "upgrade"], tmp_path, **keys).returncode == 0
    assert (
        run(
            ["branch", "create", "--code", "tain", "--name", "Tain", "--hours", "mon-sun 00:00-23:59"], tmp_path
        ).returncode
        == 0
    )
    made = run(
        ["user", "create", "--username", "desk.tain", "--role", "front_desk", "--branch", "tain", "--password-stdin"],
        tmp_path,
        stdin="a-long-password\n",
    )
    assert made.returncode == 0, made.stderr
    made = run(
        ["user", "create", "--username", "tech.tain", "--role", "technician", "--branch", "tain", "--password-stdin"],
        tmp_path,
        stdin="a-long-password\n",
    )
    assert made.returncode == 0, made.stderr
    with serving([], tmp_path, **keys) as (base, _):
        desk = {"Authorization": f"Bearer {token(base, 'desk.tain', 'a-long-password')}"}
        private_redis.stop()

        response = httpx.post(f"{base}/api/v1/jobs", json=INTAKE, headers=desk, timeout=30)
        assert response.status_code == 201, response.text  # the shop keeps working
        assert httpx.get(f"{base}/health/ready").status_code == 503  # and says Redis is down
        # Signing in (its rate limits fall back to the process's own buckets) and moving the job work too.
        tech = {"Authorization": f"Bearer {token(base, 'tech.tain', 'a-long-password')}"}
        moved = httpx.post(
            f"{base}/api/v1/jobs/{response.json()['ref']}/transitions",
            json={"to": "diagnosing"},
            headers={**tech, "If-Match": response.headers["etag"]},
            timeout=30,
        )
        assert moved.status_code == 200, moved.text
        _wait_for_relay_retries(tmp_path / "atelier.db")

        private_redis.start()
        deadline = time.monotonic() + 30
        queued: set[str] = set()
        while time.monotonic() < deadline and not queued:
            queued = {job for job in asyncio.run(_queued_job_ids(private_redis.port)) if job.startswith("outbox:")}
            time.sleep(0.3)
        assert queued, "the outbox never reached the queue after Redis came back"
        assert httpx.get(f"{base}/health/ready").status_code == 200


async def test_a_relay_with_redis_down_fails_fast_and_the_next_one_hands_the_entry_over(
    services: Services, clock: FakeClock, private_redis: PrivateRedis
) -> None:
    redis = relay_redis(f"redis://127.0.0.1:{private_redis.port}/0")  # the client `serve` relays with
    queue = ArqQueue(redis)
    try:
        async with services.db.transaction() as uow:
            entry = await uow.outbox.add("test.redis_outage", {}, now=clock.now)
        private_redis.stop()

        started = time.monotonic()
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(outbox.relay(services, queue, now=clock.now), timeout=30)
        assert time.monotonic() - started < 5  # failed fast, not retried for minutes

        private_redis.start()
        # The same `now`: the entry does not wait out REDISPATCH_AFTER after the failed hand-over.
        assert await outbox.relay(services, queue, now=clock.now) == 1
        assert f"outbox:{entry}" in await _queued_job_ids(private_redis.port)
    finally:
        await redis.aclose()
