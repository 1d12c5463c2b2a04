"""The customer's tracking link in storage: looked up by the SHA-256 of its token (unique index), kept
encrypted to be shown to staff and put in messages. These columns are outside every job read
(`persistence.jobs._UNREAD`) and outside the job's version: a link issued or revoked is not a change
of the repair, so it never makes a technician's edit stale."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from service.persistence.tables import job_t


@dataclass(frozen=True, slots=True)
class StoredLink:
    ciphertext: str
    issued_at: datetime


class TrackingRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def job_id_for(self, token_hash: str) -> int | None:
        query = select(job_t.c.id).where(job_t.c.tracking_hash == token_hash)
        job_id: int | None = (await self._conn.execute(query)).scalar_one_or_none()
        return job_id

    async def link(self, job_id: int) -> StoredLink | None:
        query = select(job_t.c.tracking_ciphertext, job_t.c.tracking_issued_at).where(
            job_t.c.id == job_id, job_t.c.tracking_ciphertext.is_not(None)
        )
        row = (await self._conn.execute(query)).first()
        return StoredLink(row[0], row[1]) if row else None

    async def store(self, job_id: int, token_hash: str, ciphertext: str, now: datetime) -> None:
        """The job's link, replacing any previous one (which stops working with this statement)."""
        await self._conn.execute(
            update(job_t)
            .where(job_t.c.id == job_id)
            .values(tracking_hash=token_hash, tracking_ciphertext=ciphertext, tracking_issued_at=now)
        )

    async def revoke(self, job_id: int) -> bool:
        """Forget the job's link; whether it had one."""
        result = await self._conn.execute(
            update(job_t)
            .where(job_t.c.id == job_id, job_t.c.tracking_hash.is_not(None))
            .values(tracking_hash=None, tracking_ciphertext=None, tracking_issued_at=None)
        )
        return bool(result.rowcount)

    async def stored_ciphertexts(self) -> list[tuple[int, str]]:
        query = select(job_t.c.id, job_t.c.tracking_ciphertext).where(job_t.c.tracking_ciphertext.is_not(None))
        return [(row[0], row[1]) for row in await self._conn.execute(query)]

    async def replace_ciphertext(self, job_id: int, ciphertext: str) -> None:
        """The same token re-encrypted (key rotation): its hash, hence the link, does not change."""
        await self._conn.execute(update(job_t).where(job_t.c.id == job_id).values(tracking_ciphertext=ciphertext))
