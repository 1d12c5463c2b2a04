"""Branches, staff users and customers in storage."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from domain.calendar import OpeningHours
from domain.model import Branch, Customer
from domain.stages import Role
from service.persistence.statements import Prepared, Runner
from service.persistence.tables import branch_t, customer_t, user_t

_BRANCH_BY_ID_Q = Prepared(select(branch_t).where(branch_t.c.id == bindparam("branch_id")))
_INSERT_CUSTOMER_Q = Prepared(
    customer_t.insert().returning(customer_t.c.id), ("name", "phone", "email", "sms_consent", "language", "created_at")
)


@dataclass(frozen=True, slots=True)
class StaffUser:
    id: int
    username: str
    password_hash: str
    role: Role
    branch_id: int | None
    active: bool


class BranchRepository:
    def __init__(self, runner: Runner) -> None:
        self._run = runner
        self._conn = runner.conn

    async def by_code(self, code: str) -> Branch | None:
        row = (await self._conn.execute(select(branch_t).where(branch_t.c.code == code))).mappings().first()
        return _to_branch(row) if row else None

    async def by_id(self, branch_id: int) -> Branch | None:
        row = await self._run.fetchrow(_BRANCH_BY_ID_Q, {"branch_id": branch_id})
        return _to_branch(row) if row else None

    async def all(self) -> list[Branch]:
        rows = (await self._conn.execute(select(branch_t).order_by(branch_t.c.code))).mappings()
        return [_to_branch(row) for row in rows]

    async def add(self, branch: Branch, now: datetime) -> Branch:
        values = {
            "code": branch.code,
            "name": branch.name,
            "timezone": branch.timezone,
            "hours": branch.hours.to_mapping(),
            "created_at": now,
        }
        branch_id = (await self._conn.execute(branch_t.insert().values(**values).returning(branch_t.c.id))).scalar_one()
        return Branch(branch_id, branch.code, branch.name, branch.timezone, branch.hours)


class UserRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def by_username(self, username: str) -> StaffUser | None:
        query = select(user_t).where(user_t.c.username == username)
        row = (await self._conn.execute(query)).mappings().first()
        return _to_user(row) if row else None

    async def add(self, username: str, password_hash: str, role: Role, branch_id: int | None, now: datetime) -> int:
        values: dict[str, Any] = {
            "username": username,
            "password_hash": password_hash,
            "role": role.value,
            "branch_id": branch_id,
            "active": True,
            "created_at": now,
        }
        user_id: int = (await self._conn.execute(user_t.insert().values(**values).returning(user_t.c.id))).scalar_one()
        return user_id

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        await self._conn.execute(update(user_t).where(user_t.c.id == user_id).values(password_hash=password_hash))


class CustomerRepository:
    def __init__(self, runner: Runner) -> None:
        self._run = runner
        self._conn = runner.conn

    async def add(self, customer: Customer, now: datetime) -> int:
        values = {
            "name": customer.name,
            "phone": customer.phone,
            "email": customer.email,
            "sms_consent": customer.sms_consent,
            "language": customer.language,
            "created_at": now,
        }
        customer_id: int = await self._run.fetchval(_INSERT_CUSTOMER_Q, values)
        return customer_id


def _to_branch(row: Mapping[str, Any]) -> Branch:
    return Branch(row["id"], row["code"], row["name"], row["timezone"], OpeningHours.from_mapping(row["hours"]))


def _to_user(row: RowMapping) -> StaffUser:
    return StaffUser(
        id=row["id"],
        username=row["username"],
        password_hash=row["password_hash"],
        role=Role(row["role"]),
        branch_id=row["branch_id"],
        active=row["active"],
    )
