"""A branch's own settings over HTTP (express capacity, storage slots), and today's express capacity."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any

from annotated_types import Interval, Len
from litestar import Controller, get, patch
from litestar.di import NamedDependency
from litestar.params import FromPath, KwargDefinition, QueryParameter
from pydantic import field_validator

from domain.branches import MAX_EXPRESS_CAPACITY, MAX_SLOT_LENGTH, MAX_SLOTS
from service.api.context import RequestContext
from service.api.openapi import AUTH, BODY, FILLED, NO_NUL, ClosedJSON, problems, schema
from service.api.routing import ApiController
from service.api.schemas import Body, Number
from service.persistence.branches import BranchSettings
from service.settings import Settings
from service.usecases import branches, express

# The domain's rules (`domain.branches`: 1 to 500 unique names of 1 to 20 characters), as the schema says them;
# the domain checks them (its errors name `storage_slots`), the name's length as sent is checked here.
SlotName = Annotated[str, KwargDefinition(min_length=1, max_length=MAX_SLOT_LENGTH, pattern=FILLED)]
SlotNames = Annotated[list[SlotName], Len(1, MAX_SLOTS), schema(uniqueItems=True)]
Capacity = Annotated[int, Number, Interval(ge=0, le=MAX_EXPRESS_CAPACITY)]


class BranchSettingsIn(Body):
    """Only the settings sent change; null puts one back to the chain's default."""

    express_capacity: Capacity | None = None
    storage_slots: SlotNames | None = None

    @field_validator("storage_slots", mode="before")
    @classmethod
    def _names_as_sent(cls, value: Any) -> Any:
        # Before stripping: 21 characters with a space around are not a valid name, as the schema says.
        for index, name in enumerate(value if isinstance(value, list) else []):
            if isinstance(name, str) and len(name) > MAX_SLOT_LENGTH:
                raise ValueError(f"slot {index + 1}: a slot name has 1 to {MAX_SLOT_LENGTH} characters")
        return value

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


class BranchController(ApiController):
    path = "/api/v1/branches"
    tags = ["branches"]

    @get("/{code:str}", responses=problems(*AUTH, 404))
    async def get_branch(self, code: FromPath[str], ctx: NamedDependency[RequestContext]) -> BranchOut:
        """The branch's settings, for its staff and chain-wide managers (another branch is 404)."""
        async with ctx.db.transaction(write=False) as uow:
            found = await branches.get_settings(uow, ctx.actor, code)
        return branch_out(found, ctx.settings)

    @patch("/{code:str}", responses=problems(*AUTH, *BODY, 403, 404))
    async def update_branch(
        self, code: FromPath[str], data: ClosedJSON[BranchSettingsIn], ctx: NamedDependency[RequestContext]
    ) -> BranchOut:
        """A manager sets the branch's express capacity a day and its storage slots (null: the default)."""
        async with ctx.db.transaction() as uow:
            found = await branches.update_settings(uow, ctx.actor, code, data.to_change())
        return branch_out(found, ctx.settings)


class ExpressController(Controller):
    path = "/api/v1/express"
    tags = ["branches"]

    @get("/capacity", responses=problems(*AUTH, 404, 422))
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
