"""A branch's own settings over HTTP (express capacity, storage slots), and today's express capacity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from litestar import Controller, get, patch
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from pydantic import BeforeValidator, Field, StringConstraints

from domain.branches import MAX_SLOTS
from service.api.context import RequestContext
from service.api.jobs import NO_NUL
from service.api.schemas import Body
from service.persistence.branches import BranchSettings
from service.settings import Settings
from service.usecases import branches, express

# Bounded here; the rules (unique, 1 to 20 characters, at least one) are the domain's (`domain.branches`).
SlotNames = Annotated[list[Annotated[str, StringConstraints(max_length=100)]], Field(max_length=MAX_SLOTS)]


def _only_int(value: Any) -> Any:
    # Litestar validates bodies with strict=False, which would take "5" or true for a number.
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError("must be a whole number or null")
    return value


class BranchSettingsIn(Body):
    """Only the settings sent change; null puts one back to the chain's default."""

    express_capacity: Annotated[int | None, BeforeValidator(_only_int)] = None
    storage_slots: SlotNames | None = None

    def to_change(self) -> branches.SettingsChange:
        sent = self.model_fields_set
        return branches.SettingsChange(
            express_capacity=self.express_capacity if "express_capacity" in sent else branches.UNCHANGED,
            storage_slots=self.storage_slots if "storage_slots" in sent else branches.UNCHANGED,
        )


@dataclass(slots=True)
class BranchOut:
    code: str
    name: str
    timezone: str
    hours: dict[str, list[list[str]]]
    express_capacity: int | None  # the branch's own; null: the chain's default applies
    storage_slots: list[str] | None
    effective_express_capacity: int  # what is in force
    effective_storage_slots: list[str]


@dataclass(slots=True)
class ExpressCapacityOut:
    branch: str
    date: date  # the branch's own calendar day
    capacity: int
    used: int
    left: int


def branch_out(found: BranchSettings, settings: Settings) -> BranchOut:
    b = found.branch
    return BranchOut(
        code=b.code,
        name=b.name,
        timezone=b.timezone,
        hours=b.hours.to_mapping(),
        express_capacity=found.express_capacity,
        storage_slots=found.storage_slots,
        effective_express_capacity=found.capacity(settings.express_capacity_per_day),
        effective_storage_slots=found.slots(settings.storage_slots),
    )


class BranchController(Controller):
    path = "/api/v1/branches"
    tags = ["branches"]

    @get("/{code:str}")
    async def get_branch(self, code: FromPath[str], ctx: NamedDependency[RequestContext]) -> BranchOut:
        """The branch's settings, for its staff and chain-wide managers (another branch is 404)."""
        async with ctx.db.transaction(write=False) as uow:
            found = await branches.get_settings(uow, ctx.actor, code)
        return branch_out(found, ctx.settings)

    @patch("/{code:str}")
    async def update_branch(
        self, code: FromPath[str], data: JSONBody[BranchSettingsIn], ctx: NamedDependency[RequestContext]
    ) -> BranchOut:
        """A manager sets the branch's express capacity a day and its storage slots (null: the default)."""
        async with ctx.db.transaction() as uow:
            found = await branches.update_settings(uow, ctx.actor, code, data.to_change())
        return branch_out(found, ctx.settings)


class ExpressController(Controller):
    path = "/api/v1/express"
    tags = ["branches"]

    @get("/capacity")
    async def capacity(
        self,
        ctx: NamedDependency[RequestContext],
        branch: Annotated[str | None, QueryParameter(min_length=1, max_length=32, pattern=NO_NUL)] = None,
    ) -> ExpressCapacityOut:
        """Today's express slots at the caller's branch (a chain-wide manager names one: ?branch=CODE)."""
        async with ctx.db.transaction(write=False) as uow:
            found, day = await express.capacity(
                uow, ctx.actor, branch, now=ctx.clock(), default_capacity=ctx.settings.express_capacity_per_day
            )
        return ExpressCapacityOut(found.code, day.day, day.capacity, day.used, day.left)
