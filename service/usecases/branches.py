"""Use cases of a branch's own settings, and which branch a request is about.

A branch is visible to its own staff and to chain-wide managers; another branch does not exist for the
caller (404), as its jobs do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.branches import check_express_capacity, check_storage_slots
from domain.errors import InvalidValue, NotFound, NotPermitted
from domain.model import Actor, Branch
from domain.stages import Role
from service.persistence.branches import BranchSettings, BranchSettingsRepository
from service.uow import UnitOfWork

UNCHANGED: Any = object()  # a setting the request does not change (None resets it to the default)


@dataclass(frozen=True, slots=True)
class SettingsChange:
    express_capacity: int | None = UNCHANGED
    storage_slots: list[str] | None = UNCHANGED


async def branch_of(uow: UnitOfWork, actor: Actor, code: str | None) -> Branch:
    """The branch a request is about: the caller's own, or the one named (`code`), if visible to them."""
    if code is None:
        if actor.branch_id is None:
            raise InvalidValue("branch", "a chain-wide manager names the branch (?branch=CODE)")
        branch = await uow.branches.by_id(actor.branch_id)
    else:
        branch = await uow.branches.by_code(code)
        if branch is not None and not actor.chain_wide and branch.id != actor.branch_id:
            branch = None
    if branch is None:
        raise NotFound(f"no branch {code}")
    return branch


async def get_settings(uow: UnitOfWork, actor: Actor, code: str) -> BranchSettings:
    branch = await branch_of(uow, actor, code)
    assert branch.id is not None
    found = await BranchSettingsRepository(uow.connection).by_id(branch.id)
    assert found is not None
    return found


async def update_settings(uow: UnitOfWork, actor: Actor, code: str, change: SettingsChange) -> BranchSettings:
    branch = await branch_of(uow, actor, code)
    if actor.role is not Role.MANAGER:
        raise NotPermitted("only a manager changes a branch's settings")
    assert branch.id is not None
    changes: dict[str, Any] = {}
    if change.express_capacity is not UNCHANGED:
        changes["express_capacity"] = check_express_capacity(change.express_capacity)
    if change.storage_slots is not UNCHANGED:
        changes["storage_slots"] = check_storage_slots(change.storage_slots)
    store = BranchSettingsRepository(uow.connection)
    await store.update(branch.id, changes)
    found = await store.by_id(branch.id)
    assert found is not None
    return found
