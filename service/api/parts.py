"""Parts over HTTP: the catalogue, a job's part lines (quotes, orders), supplier orders, late parts."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, patch, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, PathParameter, QueryParameter

from domain.errors import InvalidValue
from domain.parts import OrderStatus, Part, PartStatus, normalise_sku
from service.api.context import RequestContext
from service.api.jobs import IfMatch, etag, one_or_more_of, optional_version_from
from service.api.openapi import AUTH, BODY, NO_NUL, Closed, ClosedJSON, json_body, problems
from service.api.parts_schemas import (
    LINE_CHANGES,
    LINES_FORMS,
    SKU_PATTERN,
    CancelOrderIn,
    JobPartsOut,
    LateLineOut,
    LineChangeIn,
    LineOut,
    LinesIn,
    OrderIn,
    OrderOut,
    OrderPageOut,
    PartIn,
    PartOut,
    PartUpdateIn,
    QuotesOut,
    ReceiptIn,
    job_parts_out,
    late_out,
    line_out,
    order_out,
    part_out,
    quotes_out,
)
from service.api.routing import ApiController
from service.usecases import parts, sourcing
from service.usecases.parts import LineRequest, Receipt

MAX_PAGE = 100
SkuPath = Annotated[str, PathParameter(pattern=SKU_PATTERN)]


class PartsController(ApiController):
    path = "/api/v1/parts"
    tags = ["parts"]

    @get("/", responses=problems(*AUTH, 422))
    async def list_parts(
        self,
        ctx: NamedDependency[RequestContext],
        q: Annotated[str | None, QueryParameter(min_length=1, max_length=100, pattern=NO_NUL)] = None,
        model: Annotated[str | None, QueryParameter(min_length=1, max_length=80, pattern=NO_NUL)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> list[PartOut]:
        """The catalogue, searchable by SKU or description, filterable by device model."""
        async with ctx.db.transaction(write=False) as uow:
            found = await uow.catalogue.list(q, model, limit)
        return [part_out(p) for p in found]

    @post("/", responses=problems(*AUTH, *BODY, 403, 409))
    async def add_part(self, data: ClosedJSON[PartIn], ctx: NamedDependency[RequestContext]) -> Response[PartOut]:
        async with ctx.db.transaction() as uow:
            part = await parts.add_part(uow, ctx.actor, data.to_domain(), now=ctx.clock())
        return Response(part_out(part), status_code=201, headers={"Location": f"{self.path}/{part.sku}"})

    @get("/late", responses=problems(*AUTH, 422))
    async def late(
        self,
        ctx: NamedDependency[RequestContext],
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> list[LateLineOut]:
        """Awaited lines past their promise or whose ETA slipped, worst first, with the SLA at stake."""
        now = ctx.clock()
        async with ctx.db.transaction(write=False) as uow:
            items = await parts.late_parts(uow, ctx.actor, now=now, sla=ctx.settings.sla_policy, limit=limit)
            levels = await uow.escalations.current([item.late.line.job_id for item in items])
        return [
            late_out(item, levels[item.late.line.job_id].label if item.late.line.job_id in levels else None)
            for item in items
        ]

    @get("/{sku:str}", responses=problems(*AUTH, 404, 422))
    async def get_part(self, sku: SkuPath, ctx: NamedDependency[RequestContext]) -> PartOut:
        async with ctx.db.transaction(write=False) as uow:
            return part_out(await parts.get_part(uow, _sku(sku)))

    @put("/{sku:str}", responses=problems(*AUTH, *BODY, 403, 404))
    async def update_part(
        self, sku: SkuPath, data: ClosedJSON[PartUpdateIn], ctx: NamedDependency[RequestContext]
    ) -> PartOut:
        part = Part(_sku(sku), data.description, tuple(data.models))
        async with ctx.db.transaction() as uow:
            return part_out(await parts.update_part(uow, ctx.actor, part, now=ctx.clock()))


def _sku(raw: str) -> str:
    return normalise_sku(raw)


class JobPartsController(ApiController):
    path = "/api/v1/jobs/{ref:str}/parts"
    tags = ["parts"]

    @get("/", responses=problems(*AUTH, 404))
    async def job_parts(self, ref: FromPath[str], ctx: NamedDependency[RequestContext]) -> JobPartsOut:
        """The job's part lines with their ETA history, its parts ETA, forecast ready time and risk."""
        now = ctx.clock()
        async with ctx.db.transaction(write=False) as uow:
            view = await parts.job_parts(uow, ctx.actor, ref, now=now, sla=ctx.settings.sla_policy)
        return job_parts_out(view, now)

    @post("/", responses=problems(*AUTH, *BODY, 403, 404, 409, 412))
    async def add_lines(
        self,
        ref: FromPath[str],
        data: Annotated[LinesIn, json_body(oneOf=LINES_FORMS)],
        ctx: NamedDependency[RequestContext],
        if_match: IfMatch = None,
    ) -> Response[JobPartsOut]:
        """Add part lines: the job moves to awaiting_parts (no message to the customer)."""
        requests = [LineRequest(line.sku, line.quantity) for line in data.lines or []]
        now = ctx.clock()
        async with ctx.db.transaction() as uow:
            view, _ = await parts.add_lines(
                uow,
                ctx.actor,
                ref,
                requests,
                now=now,
                sla=ctx.settings.sla_policy,
                # Adding parts changes the job's stage: an If-Match, when sent, guards it like any change.
                expected_version=optional_version_from(if_match),
            )
        return Response(job_parts_out(view, now), status_code=201, headers={"ETag": etag(view.job.version)})

    @patch("/{line_id:int}", responses=problems(*AUTH, *BODY, 403, 404, 409))
    async def change_line(
        self,
        ref: FromPath[str],
        line_id: FromPath[int],
        data: Annotated[LineChangeIn, json_body(anyOf=LINE_CHANGES)],
        ctx: NamedDependency[RequestContext],
    ) -> LineOut:
        """Staff corrections: a new ETA (recorded with source staff), fitted, or cancelled."""
        now = ctx.clock()
        async with ctx.db.transaction() as uow:
            line = await parts.change_line(
                uow,
                ctx.actor,
                ref,
                line_id,
                eta=data.eta,
                status=PartStatus(data.status) if data.status else None,
                note=data.note,
                now=now,
            )
            history = await uow.lines.history([line_id])
        return line_out(line, history.get(line_id), now)

    @post("/{line_id:int}/quotes", status_code=200, responses=problems(*AUTH, 403, 404, 409, 503))
    async def quotes(
        self, ref: FromPath[str], line_id: FromPath[int], ctx: NamedDependency[RequestContext]
    ) -> QuotesOut:
        """Ask every supplier (concurrently) for price, stock and ETA; says which the policy would pick."""
        result = await sourcing.quotes(
            ctx.db,
            ctx.actor,
            ref,
            line_id,
            clients=ctx.suppliers,
            cipher=ctx.cipher,
            sla=ctx.settings.sla_policy,
            now=ctx.clock(),
        )
        return quotes_out(result)

    @post("/{line_id:int}/order", responses=problems(*AUTH, *BODY, 403, 404, 409, 503))
    async def order(
        self,
        ref: FromPath[str],
        line_id: FromPath[int],
        ctx: NamedDependency[RequestContext],
        data: JSONBody[Closed[OrderIn] | None] = None,
    ) -> Response[OrderOut]:
        """Order from the named supplier, or the policy's choice (express: earliest within budget;
        standard: cheapest that meets the due date). A retry after a failure re-sends the same PO."""
        now = ctx.clock()
        placed = await sourcing.order_line(
            ctx.db,
            ctx.actor,
            ref,
            line_id,
            supplier_id=data.supplier_id if data else None,
            clients=ctx.suppliers,
            cipher=ctx.cipher,
            sla=ctx.settings.sla_policy,
            now=now,
        )
        location = f"/api/v1/supplier-orders/{placed.order.id}"
        return Response(order_out(placed.order, now), status_code=201, headers={"Location": location})


class SupplierOrderController(Controller):
    path = "/api/v1/supplier-orders"
    tags = ["supplier orders"]

    @get("/", responses=problems(*AUTH, 422))
    async def list_orders(
        self,
        ctx: NamedDependency[RequestContext],
        status: Annotated[str | None, QueryParameter(max_length=200, pattern=one_or_more_of(OrderStatus))] = None,
        supplier_id: Annotated[int | None, QueryParameter(ge=1, le=2**31 - 1)] = None,
        limit: Annotated[int, QueryParameter(ge=1)] = 50,
        cursor: Annotated[str | None, QueryParameter(max_length=20, pattern=r"^\d+$")] = None,
    ) -> OrderPageOut:
        """The branch's supplier orders, newest first."""
        statuses = _statuses(status)
        limit = min(limit, MAX_PAGE)
        now = ctx.clock()
        async with ctx.db.transaction(write=False) as uow:
            found = await uow.orders.list(ctx.actor, statuses, supplier_id, limit + 1, int(cursor) if cursor else None)
        page = found[:limit]
        next_cursor = str(page[-1].id) if len(found) > limit and page else None
        return OrderPageOut([order_out(o, now) for o in page], next_cursor)

    @get("/{order_id:int}", responses=problems(*AUTH, 404))
    async def get_order(self, order_id: FromPath[int], ctx: NamedDependency[RequestContext]) -> OrderOut:
        now = ctx.clock()
        async with ctx.db.transaction(write=False) as uow:
            order = await uow.orders.get(ctx.actor, order_id)
            history = await uow.lines.history([line.id or 0 for line in order.lines])
        return order_out(order, now, history)

    @post("/{order_id:int}/receipts", responses=problems(*AUTH, *BODY, 403, 404, 409))
    async def receive(
        self,
        order_id: FromPath[int],
        ctx: NamedDependency[RequestContext],
        data: JSONBody[Closed[ReceiptIn] | None] = None,
    ) -> OrderOut:
        """Goods counted in: the lines named (or everything outstanding) are received."""
        receipts = [Receipt(line.line_id, line.quantity) for line in (data.lines if data else [])]
        now = ctx.clock()
        async with ctx.db.transaction() as uow:
            order = await parts.receive(uow, ctx.actor, order_id, receipts, now=now)
        return order_out(order, now)

    @post("/{order_id:int}/cancel", status_code=200, responses=problems(*AUTH, *BODY, 403, 404, 409, 503))
    async def cancel(
        self,
        order_id: FromPath[int],
        ctx: NamedDependency[RequestContext],
        data: JSONBody[Closed[CancelOrderIn] | None] = None,
    ) -> OrderOut:
        """Cancel at the supplier, then here; its lines can be ordered elsewhere."""
        now = ctx.clock()
        order = await sourcing.cancel_order(
            ctx.db,
            ctx.actor,
            order_id,
            reason=data.reason if data else "cancelled by staff",
            clients=ctx.suppliers,
            cipher=ctx.cipher,
            now=now,
        )
        return order_out(order, now)


def _statuses(raw: str | None) -> list[OrderStatus]:
    if not raw:
        return []
    try:
        return [OrderStatus(part) for part in raw.split(",")]
    except ValueError as exc:
        raise InvalidValue("status", f"one or more of: {', '.join(s.value for s in OrderStatus)}") from exc
