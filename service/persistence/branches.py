"""A branch's own settings in storage (express capacity, storage slots), the branch lock that makes the
express count of a day exact, and the express intakes of the last day."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, null, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.calendar import OpeningHours
from domain.model import Branch, Tier
from domain.stages import Stage
from service.persistence.tables import branch_t, job_t

_LOCK_Q = select(branch_t.c.id).where(branch_t.c.id == bindparam("branch_id")).with_for_update()
# Every intake runs this (its answer says the slots left), so it is one statement, built once: the branch's
# timezone and capacity, joined to the times of its express intakes since `since` (few rows). A job is due
# after it was taken, so `due_at >= since` holds for each: it lets the join read the (branch, priority,
# due_at) index from `since` on, not every express job the branch ever took.
_RECENT_EXPRESS_Q = (
    select(branch_t.c.timezone, branch_t.c.express_capacity, job_t.c.created_at)
    .select_from(
        branch_t.outerjoin(
            job_t,
            and_(
                job_t.c.branch_id == branch_t.c.id,
                job_t.c.priority == 0,  # express, as the job list sorts it
                job_t.c.tier == Tier.EXPRESS.value,
                job_t.c.stage != Stage.CANCELLED.value,
                job_t.c.due_at >= bindparam("since"),
                job_t.c.created_at >= bindparam("since"),
            ),
        )
    )
    .where(branch_t.c.id == bindparam("branch_id"))
)


@dataclass(frozen=True, slots=True)
class BranchSettings:
    branch: Branch
    express_capacity: int | None  # None: the chain's default
    storage_slots: list[str] | None

    def capacity(self, default: int) -> int:
        """The express intakes a day in force: the branch's own, else the chain's default."""
        return self.express_capacity if self.express_capacity is not None else default

    def slots(self, default: list[str]) -> list[str]:
        return self.storage_slots if self.storage_slots is not None else list(default)


@dataclass(frozen=True, slots=True)
class RecentExpress:
    """A branch's express intakes (not cancelled) taken since a moment, with what it takes to count a day."""

    timezone: str
    express_capacity: int | None  # None: the chain's default
    taken_at: list[datetime]


class BranchSettingsRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def by_id(self, branch_id: int) -> BranchSettings | None:
        row = (await self._conn.execute(select(branch_t).where(branch_t.c.id == branch_id))).mappings().first()
        return _to_settings(row) if row else None

    async def by_code(self, code: str) -> BranchSettings | None:
        row = (await self._conn.execute(select(branch_t).where(branch_t.c.code == code))).mappings().first()
        return _to_settings(row) if row else None

    async def update(self, branch_id: int, changes: Mapping[str, Any]) -> None:
        """Write `express_capacity` and/or `storage_slots` (None: back to the default)."""
        values = dict(changes)
        if "storage_slots" in values and values["storage_slots"] is None:
            values["storage_slots"] = null()  # SQL NULL: a JSON column would store None as JSON null
        if values:
            await self._conn.execute(update(branch_t).where(branch_t.c.id == branch_id).values(**values))

    async def lock(self, branch_id: int) -> None:
        """Hold the branch row until the transaction ends (SELECT ... FOR UPDATE on PostgreSQL; on SQLite a
        writer holds the whole database already). A statement of its own, so that what is read after it
        is read after the lock was granted (a fresh snapshot under READ COMMITTED)."""
        await self._conn.execute(_LOCK_Q, {"branch_id": branch_id})

    async def recent_express(self, branch_id: int, since: datetime) -> RecentExpress | None:
        rows = (await self._conn.execute(_RECENT_EXPRESS_Q, {"branch_id": branch_id, "since": since})).all()
        if not rows:
            return None
        taken = [row.created_at for row in rows if row.created_at is not None]
        return RecentExpress(rows[0].timezone, rows[0].express_capacity, taken)


def _to_settings(row: RowMapping) -> BranchSettings:
    branch = Branch(row["id"], row["code"], row["name"], row["timezone"], OpeningHours.from_mapping(row["hours"]))
    slots = row["storage_slots"]
    return BranchSettings(branch, row["express_capacity"], list(slots) if slots is not None else None)
