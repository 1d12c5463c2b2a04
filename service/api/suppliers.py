"""Suppliers over HTTP (managers manage them; secrets are write-only) and their signed webhooks."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, patch, post, put
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import FromPath, QueryParameter

from domain.sourcing import WINDOW
from integrations.webhooks import WebhookRejected
from service.api.context import RequestContext
from service.api.openapi import AUTH, BODY, ClosedJSON, WebhookOperation, problems
from service.api.parts_schemas import (
    ScorecardOut,
    SkuMapIn,
    SkuMappingOut,
    SupplierIn,
    SupplierOut,
    SupplierUpdateIn,
    WebhookOut,
    mapping_out,
    scorecard_out,
    supplier_out,
)
from service.api.problems import problem
from service.api.routing import ApiController
from service.usecases import suppliers, webhooks
from service.usecases.suppliers import SupplierCommand

SupplierSkuPath = Annotated[str, FromPath]


class SupplierController(ApiController):
    path = "/api/v1/suppliers"
    tags = ["suppliers"]

    @get("/", responses=problems(*AUTH))
    async def list_suppliers(self, ctx: NamedDependency[RequestContext]) -> list[SupplierOut]:
        async with ctx.db.transaction(write=False) as uow:
            found = await suppliers.list_suppliers(uow, ctx.cipher)
        return [supplier_out(s) for s in found]

    @post("/", responses=problems(*AUTH, *BODY, 403, 409))
    async def create(self, data: ClosedJSON[SupplierIn], ctx: NamedDependency[RequestContext]) -> Response[SupplierOut]:
        """Add a supplier (manager). The API key and webhook secrets are stored encrypted and never shown."""
        cmd = SupplierCommand(
            name=data.name,
            adapter=data.adapter,
            base_url=data.base_url,
            api_key=data.api_key,
            webhook_secrets=data.webhook_secrets,
            poll_interval_seconds=data.poll_interval_seconds,
            rate_limit_per_minute=data.rate_limit_per_minute,
            active=data.active,
        )
        settings = ctx.settings
        async with ctx.db.transaction() as uow:
            created = await suppliers.create_supplier(
                uow,
                ctx.actor,
                cmd,
                now=ctx.clock(),
                cipher=ctx.cipher,
                allow_private=settings.allow_private_supplier_urls,
            )
        return Response(supplier_out(created), status_code=201, headers={"Location": f"{self.path}/{created.id}"})

    @get("/{supplier_id:int}", responses=problems(*AUTH, 404))
    async def get_supplier(self, supplier_id: FromPath[int], ctx: NamedDependency[RequestContext]) -> SupplierOut:
        async with ctx.db.transaction(write=False) as uow:
            return supplier_out(await suppliers.get_supplier(uow, supplier_id, ctx.cipher))

    @patch("/{supplier_id:int}", responses=problems(*AUTH, *BODY, 403, 404, 409))
    async def update(
        self, supplier_id: FromPath[int], data: ClosedJSON[SupplierUpdateIn], ctx: NamedDependency[RequestContext]
    ) -> SupplierOut:
        """Change a supplier (manager). `webhook_secrets` replaces the list: rotate by sending [new, old],
        then [new] once the supplier signs with the new one only."""
        cmd = SupplierCommand(
            name=data.name,
            adapter=data.adapter,
            base_url=data.base_url,
            api_key=data.api_key,
            clear_api_key=data.clear_api_key,
            webhook_secrets=data.webhook_secrets,
            poll_interval_seconds=data.poll_interval_seconds,
            rate_limit_per_minute=data.rate_limit_per_minute,
            active=data.active,
        )
        async with ctx.db.transaction() as uow:
            updated = await suppliers.update_supplier(
                uow,
                ctx.actor,
                supplier_id,
                cmd,
                now=ctx.clock(),
                cipher=ctx.cipher,
                allow_private=ctx.settings.allow_private_supplier_urls,
            )
        return supplier_out(updated)

    @get("/{supplier_id:int}/scorecard", responses=problems(*AUTH, 404))
    async def scorecard(self, supplier_id: FromPath[int], ctx: NamedDependency[RequestContext]) -> ScorecardOut:
        """On-time rate, mean and p90 delay, ETA slip rate and fill rate over the last 90 days."""
        async with ctx.db.transaction(write=False) as uow:
            card = await suppliers.supplier_scorecard(uow, supplier_id, now=ctx.clock())
        return scorecard_out(supplier_id, card, WINDOW.days)

    @get("/{supplier_id:int}/skus", responses=problems(*AUTH, 404, 422))
    async def skus(
        self,
        supplier_id: FromPath[int],
        ctx: NamedDependency[RequestContext],
        unmapped: Annotated[bool, QueryParameter()] = False,
    ) -> list[SkuMappingOut]:
        """The supplier's SKUs: mapped to ours, or (`unmapped=true`) the ones waiting for review."""
        async with ctx.db.transaction(write=False) as uow:
            found = await suppliers.supplier_skus(uow, supplier_id, unmapped_only=unmapped)
        return [mapping_out(m) for m in found]

    @put("/{supplier_id:int}/skus/{supplier_sku:str}", responses=problems(*AUTH, *BODY, 403, 404))
    async def map_sku(
        self,
        supplier_id: FromPath[int],
        supplier_sku: SupplierSkuPath,
        data: ClosedJSON[SkuMapIn],
        ctx: NamedDependency[RequestContext],
    ) -> SkuMappingOut:
        async with ctx.db.transaction() as uow:
            mapping = await suppliers.map_supplier_sku(
                uow, ctx.actor, supplier_id, supplier_sku.strip(), data.sku, now=ctx.clock()
            )
        return mapping_out(mapping)


WEBHOOK_ANSWER = ResponseSpec(WebhookOut, description="Applied, or already applied (a redelivery)")


class WebhookController(Controller):
    """Standard Webhooks 1.0 from suppliers: authenticated by signature, not by a staff token."""

    path = "/api/v1/webhooks/suppliers"
    tags = ["webhooks"]

    @post(
        "/{supplier_id:str}",
        status_code=200,
        opt={"public": True},
        operation_class=WebhookOperation,
        responses={200: WEBHOOK_ANSWER, **problems(400, 401, 413)},
    )
    async def receive(self, supplier_id: FromPath[str], request: Request[Any, Any, Any]) -> Response[Any]:
        """Verified on the raw bytes before parsing; applied once (a redelivery answers 200, changes nothing)."""
        state = request.app.state
        body = await request.body()
        try:
            received = await webhooks.receive(
                state.db,
                supplier_id,
                request.headers,
                body,
                cipher=state.cipher,
                now=state.clock(),
                tolerance=timedelta(seconds=state.settings.webhook_tolerance_seconds),
            )
        except WebhookRejected as exc:
            title = "Webhook not authenticated" if exc.status == 401 else "Webhook rejected"
            return problem(request, exc.status, title, exc.reason, "webhook")
        return Response(WebhookOut(received.webhook_id, received.type, received.outcome.value))
