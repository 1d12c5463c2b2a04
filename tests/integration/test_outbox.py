"""The outbox: relayed once per entry, re-dispatched when lost, handled once, also through real arq."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.worker import Worker, func

from service.persistence.outbox import OutboxEntry
from service.secrets import PasscodeCipher
from service.services import Services, build_services
from service.settings import Settings
from service.usecases import outbox
from tests.conftest import PASSCODE_KEY, FakeClock
from tests.redis_support import flushed_redis
from workers.embedded import EmbeddedWorker
from workers.queue import ArqQueue
from workers.schedule import Periodic
from workers.tasks import handle_outbox

HANDLED: list[int] = []


@outbox.handler("test.record")
async def _record(services: Services, entry: OutboxEntry, now: datetime) -> None:
    """A handler like the real ones: its effect and `done` in one unit of work, nothing if done already."""
    async with services.db.transaction() as uow:
        if await uow.outbox.get(entry.id, lock=True) is None:
            return
        HANDLED.append(entry.id)
        await uow.outbox.done(entry.id, now)


class RecordingQueue:
    """A fake queue: remembers what was handed to it (arq dedupes by job id; so does this)."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}

    async def enqueue(self, task: str, *, job_id: str, **kwargs: Any) -> bool:
        if job_id in self.jobs:
            return False
        self.jobs[job_id] = {"task": task, **kwargs}
        return True


class FailingQueue(RecordingQueue):
    """Takes `accept` tasks, then fails like an enqueue with Redis gone."""

    def __init__(self, accept: int) -> None:
        super().__init__()
        self.accept = accept

    async def enqueue(self, task: str, *, job_id: str, **kwargs: Any) -> bool:
        if len(self.jobs) >= self.accept:
            raise ConnectionError("Redis is away")
        return await super().enqueue(task, job_id=job_id, **kwargs)


@pytest.fixture
async def services(settings: Settings, clock: FakeClock, clean_db: None) -> AsyncIterator[Services]:
    HANDLED.clear()
    built = build_services(settings, PasscodeCipher(PASSCODE_KEY), clock=clock)
    try:
        yield built
    finally:
        await built.aclose()


async def _add(services: Services, now: datetime, *, not_before: datetime | None = None) -> int:
    async with services.db.transaction() as uow:
        return await uow.outbox.add("test.record", {"n": 1}, now=now, not_before=not_before)


async def test_relay_hands_each_due_entry_once_with_its_id_as_the_job_id(services: Services, clock: FakeClock) -> None:
    first, second = await _add(services, clock.now), await _add(services, clock.now)
    later = await _add(services, clock.now, not_before=clock.now + timedelta(hours=1))
    queue = RecordingQueue()

    assert await outbox.relay(services, queue, now=clock.now) == 2
    assert set(queue.jobs) == {f"outbox:{first}", f"outbox:{second}"}
    assert queue.jobs[f"outbox:{first}"] == {"task": "handle_outbox", "outbox_id": first}
    assert await outbox.relay(services, RecordingQueue(), now=clock.now) == 0  # dispatched, not lost yet

    clock.advance(hours=1)
    again = RecordingQueue()
    await outbox.relay(services, again, now=clock.now)
    # Not done after the re-dispatch delay: lost on the way, sent again; the delayed one is due now.
    assert set(again.jobs) == {f"outbox:{first}", f"outbox:{second}", f"outbox:{later}"}


async def test_entries_the_queue_failed_to_take_are_relayed_again_at_once(services: Services, clock: FakeClock) -> None:
    first, second, third = [await _add(services, clock.now) for _ in range(3)]
    failing = FailingQueue(accept=1)
    with pytest.raises(ConnectionError):
        await outbox.relay(services, failing, now=clock.now)
    assert set(failing.jobs) == {f"outbox:{first}"}

    # Same time, no REDISPATCH_AFTER wait: what the queue did not take is due again; what it took is not.
    again = RecordingQueue()
    assert await outbox.relay(services, again, now=clock.now) == 2
    assert set(again.jobs) == {f"outbox:{second}", f"outbox:{third}"}  # not `first`: the queue has it


async def test_a_handled_entry_is_never_relayed_nor_handled_again(services: Services, clock: FakeClock) -> None:
    entry = await _add(services, clock.now)
    await outbox.relay(services, RecordingQueue(), now=clock.now)

    assert await outbox.handle(services, entry, now=clock.now) is True
    assert await outbox.handle(services, entry, now=clock.now) is False  # a second delivery
    assert HANDLED == [entry]
    clock.advance(hours=2)
    assert await outbox.relay(services, RecordingQueue(), now=clock.now) == 0


async def test_concurrent_relays_never_hand_out_the_same_entry(services: Services, clock: FakeClock) -> None:
    ids = [await _add(services, clock.now) for _ in range(30)]
    queues = [RecordingQueue() for _ in range(4)]

    await asyncio.gather(*(outbox.relay(services, q, now=clock.now, batch=10) for q in queues))
    while await outbox.relay(services, queues[0], now=clock.now, batch=10):
        pass

    handed = [job for q in queues for job in q.jobs]
    assert sorted(handed) == sorted(f"outbox:{i}" for i in ids)  # each once, none twice


async def test_the_embedded_runner_handles_entries_without_redis(services: Services, clock: FakeClock) -> None:
    entry = await _add(services, clock.now)
    worker = EmbeddedWorker(services, schedule=(Periodic("relay_outbox", timedelta(seconds=0.05)),))
    worker.start()
    try:
        for _ in range(100):
            if HANDLED:
                break
            await asyncio.sleep(0.05)
    finally:
        await worker.stop()
    assert HANDLED == [entry]


@pytest.fixture
async def redis() -> AsyncIterator[ArqRedis]:
    async with flushed_redis(9) as pool:
        yield pool


async def test_through_real_arq_each_entry_is_queued_once_and_handled(
    services: Services, clock: FakeClock, redis: ArqRedis
) -> None:
    entry = await _add(services, clock.now)
    queue = ArqQueue(redis)
    assert await outbox.relay(services, queue, now=clock.now) == 1
    assert await queue.enqueue("handle_outbox", job_id=f"outbox:{entry}", outbox_id=entry) is False  # arq dedupes

    worker = Worker(
        functions=[func(handle_outbox, name="handle_outbox")],
        redis_pool=redis,
        burst=True,
        poll_delay=0,
        ctx={"services": services, "queue": queue},
        handle_signals=False,
    )
    try:
        await worker.main()
    finally:
        await worker.close()
    assert HANDLED == [entry]
