"""Customers' personal data over HTTP: erasure on request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import FromPath

from service.api.context import RequestContext
from service.api.openapi import AUTH, problems
from service.usecases import customers


@dataclass(slots=True)
class ErasureOut:
    id: int
    erased_at: datetime
    jobs: list[str]  # the customer's jobs, kept with their anonymous history and amounts


class CustomerController(Controller):
    path = "/api/v1/customers"
    tags = ["customers"]

    @post("/{customer_id:int}/erasure", status_code=200, responses=problems(*AUTH, 403, 404, 409))
    async def erase(self, customer_id: FromPath[int], ctx: NamedDependency[RequestContext]) -> ErasureOut:
        """A manager anonymises a customer with no open job (name, phone, email, device identifiers). Asking
        again answers the same. A branch's manager sees only customers with a job at their branch."""
        async with ctx.db.transaction() as uow:
            done = await customers.erase_customer(uow, ctx.actor, customer_id, now=ctx.clock())
        return ErasureOut(done.customer_id, done.erased_at, done.jobs)
