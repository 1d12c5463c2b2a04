"""Stored responses for Idempotency-Key: a retried request replays the first answer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from service.persistence.tables import idempotency_t


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    body: Any
    headers: dict[str, str]
    fingerprint: str


class IdempotencyRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def find(self, user_id: int, key: str, not_before: datetime) -> StoredResponse | None:
        query = select(idempotency_t).where(and_(idempotency_t.c.user_id == user_id, idempotency_t.c.key == key))
        row = (await self._conn.execute(query)).mappings().first()
        if row is None:
            return None
        if row["created_at"] < not_before:
            # Expired: the key may be used afresh.
            await self._conn.execute(delete(idempotency_t).where(idempotency_t.c.id == row["id"]))
            return None
        return StoredResponse(row["status_code"], json.loads(row["body"]), row["headers"], row["fingerprint"])

    async def save(self, user_id: int, key: str, response: StoredResponse, now: datetime) -> None:
        values = {
            "user_id": user_id,
            "key": key,
            "fingerprint": response.fingerprint,
            "status_code": response.status_code,
            "body": json.dumps(response.body),
            "headers": response.headers,
            "created_at": now,
        }
        await self._conn.execute(idempotency_t.insert().values(**values))

    async def purge(self, older_than: datetime) -> int:
        result = await self._conn.execute(delete(idempotency_t).where(idempotency_t.c.created_at < older_than))
        return int(result.rowcount)


__all__ = ["IdempotencyRepository", "StoredResponse"]
