"""Relaying the outbox to the workers, and running one entry's handler exactly once in effect.

Handlers are registered by kind. Each runs in its own unit of work with the entry locked, and marks it
done in the same transaction as its effect: a second delivery of the same entry (arq is at-least-once,
the relay re-dispatches what looks lost) finds it done and changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import structlog

from service.persistence.outbox import OutboxEntry
from service.services import Services, TaskQueue

log = structlog.get_logger("atelier.outbox")

HANDLE_TASK = "handle_outbox"
REDISPATCH_AFTER = timedelta(minutes=5)  # dispatched but not done by then: lost on the way, send again

Handler = Callable[[Services, OutboxEntry, datetime], Awaitable[None]]
_HANDLERS: dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the handler of an outbox kind (one per kind)."""

    def register(fn: Handler) -> Handler:
        if kind in _HANDLERS:
            raise ValueError(f"outbox kind {kind!r} has a handler already")
        _HANDLERS[kind] = fn
        return fn

    return register


def job_id(entry_id: int) -> str:
    return f"outbox:{entry_id}"


async def relay(services: Services, queue: TaskQueue, *, now: datetime, batch: int = 200) -> int:
    """Hand due entries to the workers; returns how many. Safe to run in several processes at once."""
    async with services.db.transaction() as uow:
        entries = await uow.outbox.claim(now, redispatch_before=now - REDISPATCH_AFTER, limit=batch)
    handed = 0
    try:
        for entry in entries:
            await queue.enqueue(HANDLE_TASK, job_id=job_id(entry.id), outbox_id=entry.id)
            handed += 1
    except Exception:
        # The queue is away (Redis down): give back what it did not take, so that the next relay retries
        # it at once rather than after REDISPATCH_AFTER.
        async with services.db.transaction() as uow:
            await uow.outbox.release([entry.id for entry in entries[handed:]])
        raise
    if entries:
        log.info("outbox_relayed", count=len(entries))
    return len(entries)


async def handle(services: Services, outbox_id: int, *, now: datetime) -> bool:
    """Run the entry's handler; False when it was done already (a duplicate delivery) or is unknown."""
    async with services.db.transaction(write=False) as uow:
        entry = await uow.outbox.get(outbox_id)
    if entry is None:
        return False
    run = _HANDLERS.get(entry.kind)
    if run is None:
        log.error("outbox_kind_unknown", outbox_id=outbox_id, kind=entry.kind)
        return False
    await run(services, entry, now)
    return True
