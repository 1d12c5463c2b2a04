"""Pickup in storage: the branches' storage slots, the slots held, the jobs' code hashes and wrong-code
counts.

The code hash and the wrong-code count are not part of the job's version: a refused code is not a
change of the job (it must not make a colleague's edit stale), and the hash never leaves this module
but to be checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.pickup import Attempts
from domain.stages import Stage
from service.persistence.tables import branch_t, job_t

_READY = Stage.READY_FOR_PICKUP.value
_ON_SHELF = (_READY, Stage.ON_HOLD.value)  # a code outlives a hold: it is erased at collection only


@dataclass(frozen=True, slots=True)
class PickupState:
    """A job's code hash (None: none was issued) and its wrong-code count."""

    code_hash: str | None
    attempts: Attempts


class PickupRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def branch_slots(self, branch_id: int) -> list[str] | None:
        """The branch's own slot list (None: the settings' default). Locks the branch's row until the end
        of the transaction, so that two devices made ready at once in one branch never draw the same slot
        (or code); SQLite writers are serialised already."""
        query = select(branch_t.c.storage_slots).where(branch_t.c.id == branch_id).with_for_update()
        slots: list[str] | None = (await self._conn.execute(query)).scalar_one_or_none()
        return slots

    async def taken_slots(self, branch_id: int) -> set[str]:
        query = select(job_t.c.pickup_slot).where(job_t.c.branch_id == branch_id, job_t.c.pickup_slot.is_not(None))
        return {row[0] for row in await self._conn.execute(query)}

    async def ready_codes(self, branch_id: int | None, *, unlocked_at: datetime | None = None) -> list[tuple[int, str]]:
        """(job id, code hash) of the jobs waiting for pickup, in one branch (None: every branch). With
        `unlocked_at`, jobs whose pickup is locked then are left out."""
        query = select(job_t.c.id, job_t.c.pickup_code_hash).where(
            job_t.c.stage == _READY, job_t.c.pickup_code_hash.is_not(None)
        )
        if branch_id is not None:
            query = query.where(job_t.c.branch_id == branch_id)
        if unlocked_at is not None:
            query = query.where(or_(job_t.c.pickup_locked_until.is_(None), job_t.c.pickup_locked_until <= unlocked_at))
        return [(row[0], row[1]) for row in await self._conn.execute(query.order_by(job_t.c.id))]

    async def codes_in_use(self, branch_id: int, *, but: int) -> list[str]:
        """The code hashes of the branch's devices still on its shelves (ready, or held from ready), but
        job `but`'s: a new code must differ from all of them."""
        query = select(job_t.c.pickup_code_hash).where(
            job_t.c.branch_id == branch_id,
            job_t.c.stage.in_(_ON_SHELF),  # through the index on (branch, stage), not the branch's history
            job_t.c.pickup_code_hash.is_not(None),
            job_t.c.id != but,
        )
        return [row[0] for row in await self._conn.execute(query)]

    async def state(self, job_id: int) -> PickupState | None:
        """The job's code hash and count, its row locked: concurrent attempts on one job are counted one
        after the other (none is lost) and see the stage the previous one left."""
        query = (
            select(job_t.c.pickup_code_hash, job_t.c.pickup_failures, job_t.c.pickup_locked_until)
            .where(job_t.c.id == job_id)
            .with_for_update()
        )
        row = (await self._conn.execute(query)).first()
        if row is None:
            return None
        return PickupState(row[0], Attempts(row[1], row[2]))

    async def prepared(self, job_id: int, slot: str | None, code_hash: str) -> None:
        """A new code and slot for the job (no new version: part of its move to ready_for_pickup)."""
        await self._conn.execute(
            update(job_t)
            .where(job_t.c.id == job_id)
            .values(pickup_slot=slot, pickup_code_hash=code_hash, pickup_failures=0, pickup_locked_until=None)
        )

    async def record_attempts(self, job_id: int, attempts: Attempts) -> None:
        """The wrong-code count after a refusal (no new version)."""
        await self._conn.execute(
            update(job_t)
            .where(job_t.c.id == job_id)
            .values(pickup_failures=attempts.failures, pickup_locked_until=attempts.locked_until)
        )

    async def forget_code(self, job_id: int) -> None:
        """The device has left: its code is no use to anyone any more."""
        await self._conn.execute(
            update(job_t)
            .where(job_t.c.id == job_id)
            .values(pickup_code_hash=None, pickup_failures=0, pickup_locked_until=None)
        )
