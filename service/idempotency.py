"""Idempotency-Key handling (IETF httpapi draft): a retry replays the first answer and creates nothing.

The stored answer is written in the same transaction as the change, so a crash between the two cannot
leave a job without its key (or a key without its job).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from domain.model import Actor
from service.errors import IdempotencyKeyReused
from service.persistence.idempotency import StoredResponse
from service.uow import Database, UnitOfWork


async def run_idempotent(
    db: Database,
    actor: Actor,
    key: str,
    fingerprint: str,
    now: datetime,
    ttl_hours: int,
    operation: Callable[[UnitOfWork], Awaitable[StoredResponse]],
) -> tuple[StoredResponse, bool]:
    """Run `operation` once per (user, key); returns the response and whether it is a replay."""
    not_before = now - timedelta(hours=ttl_hours)
    for attempt in (1, 2):
        try:
            async with db.transaction() as uow:
                stored = await uow.idempotency.find(actor.user_id, key, not_before)
                if stored is not None:
                    if stored.fingerprint != fingerprint:
                        raise IdempotencyKeyReused("this Idempotency-Key was used with a different request body")
                    return stored, True
                response = await operation(uow)
                await uow.idempotency.save(actor.user_id, key, response, now)
                return response, False
        except IntegrityError:
            # A concurrent request with the same key committed first: replay its answer.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
