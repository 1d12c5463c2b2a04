"""Use cases for branches and staff: creating them and signing in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import anyio

from domain.calendar import OpeningHours, zone
from domain.errors import InvalidValue, NotFound, RuleConflict
from domain.model import Actor, Branch
from domain.stages import Role
from service.errors import AuthenticationFailed
from service.secrets import hash_password, verify_password
from service.uow import UnitOfWork

MIN_PASSWORD_LENGTH = 10


async def create_branch(
    uow: UnitOfWork,
    code: str,
    name: str,
    timezone: str,
    hours: Mapping[str, Sequence[Sequence[str]]],
    *,
    now: datetime,
) -> Branch:
    zone(timezone)
    branch = Branch(None, code, name, timezone, OpeningHours.from_mapping(hours))
    if await uow.branches.by_code(code) is not None:
        raise RuleConflict(f"branch {code} already exists")
    return await uow.branches.add(branch, now)


async def create_user(
    uow: UnitOfWork, username: str, password: str, role: Role, branch_code: str | None, *, now: datetime
) -> int:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidValue("password", f"at least {MIN_PASSWORD_LENGTH} characters")
    branch_id: int | None = None
    if branch_code:
        branch = await uow.branches.by_code(branch_code)
        if branch is None:
            raise InvalidValue("branch", f"no branch {branch_code}")
        branch_id = branch.id
    elif role is not Role.MANAGER:
        raise InvalidValue("branch", "front desk and technicians belong to a branch")
    if await uow.users.by_username(username) is not None:
        raise RuleConflict(f"user {username} already exists")
    return await uow.users.add(username, hash_password(password), role, branch_id, now)


async def set_password(uow: UnitOfWork, username: str, password: str) -> None:
    """A new password (forgotten, or a leak suspected). Tokens already issued run to the end of their
    shift; rotate ATELIER_JWT_SECRET to end them all at once."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidValue("password", f"at least {MIN_PASSWORD_LENGTH} characters")
    user = await uow.users.by_username(username)
    if user is None:
        raise NotFound(f"no user {username}")
    await uow.users.set_password_hash(user.id, hash_password(password))


async def authenticate(uow: UnitOfWork, username: str, password: str) -> Actor:
    """Check a password; argon2 is deliberately slow, so it runs off the event loop."""
    user = await uow.users.by_username(username)
    ok = await anyio.to_thread.run_sync(verify_password, user.password_hash if user else None, password)
    if user is None or not ok or not user.active:
        raise AuthenticationFailed("wrong username or password")
    return Actor(user.id, user.username, user.role, user.branch_id)
