"""The job page's parts: add a line from the catalogue, compare the suppliers' offers, order (the
policy's choice or a named supplier) and count a delivery in. The same use cases as the API; the
page answers as the job page does (a refusal shown in the parts panel, nothing typed lost)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath
from litestar.response import Redirect
from litestar.status_codes import HTTP_303_SEE_OTHER
from pydantic import ValidationError

from domain.errors import DomainError, InvalidValue, RuleConflict
from service.api.parts_schemas import LineIn
from service.usecases import parts, sourcing
from service.usecases.parts import LineRequest, Receipt
from service.web.i18n import translator
from service.web.job_page import Change, Shown, Typed, answer, apply, settle, version_of
from service.web.job_view import problem_of
from service.web.pages import Page, SignInForm, on_sign_in_required
from service.web.session import SignInRequired

SECTION = "parts"


class JobPartPages(Controller):
    path = "/app/jobs/{ref:str}/parts"
    include_in_schema = False
    exception_handlers = {SignInRequired: on_sign_in_required}

    @get(["/", "/{line_id:int}/quotes", "/{line_id:int}/order", "/{line_id:int}/receive"])
    async def back_to_job(self, page: NamedDependency[Page], ref: FromPath[str]) -> Redirect:
        """A form's address opened as a page (signed in again after the session ran out): the job itself."""
        return Redirect(f"/app/jobs/{ref}", status_code=HTTP_303_SEE_OTHER)

    @post("/", status_code=200)
    async def add(
        self, request: Request[Any, Any, Any], page: NamedDependency[Page], ref: FromPath[str], data: SignInForm
    ) -> Response[Any]:
        """A part line: the job starts waiting for parts (the customer is told nothing by this alone)."""
        sla = page.settings.sla_policy

        def parse() -> Change:
            wanted = _line(data)
            return lambda uow, version: parts.add_lines(
                uow, page.actor, ref, [wanted], now=page.now, sla=sla, expected_version=version
            )

        typed = Typed(version_of(data), part_sku=data.get("sku", ""), part_quantity=data.get("quantity", "1"))
        return await apply(request, page, ref, SECTION, typed, parse)

    @post("/{line_id:int}/quotes", status_code=200)
    async def quotes(
        self, request: Request[Any, Any, Any], page: NamedDependency[Page], ref: FromPath[str], line_id: FromPath[int]
    ) -> Response[Any]:
        """Every supplier's price, stock and date for the line, and the one the policy would pick."""
        state = request.app.state
        try:
            found = await sourcing.quotes(
                page.db,
                page.actor,
                ref,
                line_id,
                clients=state.suppliers,
                cipher=state.cipher,
                sla=page.settings.sla_policy,
                now=page.now,
            )
        except DomainError as exc:
            return await answer(request, page, ref, Shown(problem_of(exc, SECTION, translator(page.language))))
        return await answer(request, page, ref, Shown(quotes=found))

    @post("/{line_id:int}/order", status_code=200)
    async def order(
        self,
        request: Request[Any, Any, Any],
        page: NamedDependency[Page],
        ref: FromPath[str],
        line_id: FromPath[int],
        data: SignInForm,
    ) -> Response[Any]:
        """Order from the supplier chosen on the page, or the policy's choice; a retry re-sends the same PO."""
        state = request.app.state

        async def place() -> None:
            await sourcing.order_line(
                page.db,
                page.actor,
                ref,
                line_id,
                supplier_id=_supplier_id(data.get("supplier_id", "")),
                clients=state.suppliers,
                cipher=state.cipher,
                sla=page.settings.sla_policy,
                now=page.now,
            )

        return await settle(request, page, ref, SECTION, Typed(), place)

    @post("/{line_id:int}/receive", status_code=200)
    async def receive(
        self, request: Request[Any, Any, Any], page: NamedDependency[Page], ref: FromPath[str], line_id: FromPath[int]
    ) -> Response[Any]:
        """The line's parts are here, all that was still outstanding."""

        async def count_in() -> None:
            async with page.db.transaction() as uow:
                _, line = await parts.line_of(uow, page.actor, ref, line_id)
                if line.order_id is None:
                    raise RuleConflict(f"part line {line_id} is not on order")
                await parts.receive(uow, page.actor, line.order_id, [Receipt(line_id, None)], now=page.now)

        return await settle(request, page, ref, SECTION, Typed(), count_in)


def _line(data: dict[str, str]) -> LineRequest:
    """One line by the API's rules (LineIn): a catalogue SKU in any case, 1 to 100 of it."""
    try:
        line = LineIn.model_validate({"sku": data.get("sku", ""), "quantity": data.get("quantity", "1") or "1"})
    except ValidationError as exc:
        error = exc.errors()[0]
        raise InvalidValue(str(error["loc"][0]) if error["loc"] else "sku", str(error["msg"])) from exc
    return LineRequest(line.sku, line.quantity)


def _supplier_id(raw: str) -> int | None:
    """The supplier picked on the page; none: the policy's choice."""
    if not raw.strip():
        return None
    if not raw.strip().isdigit() or not 0 < int(raw) < 2**31:
        raise InvalidValue("supplier_id", "one of the suppliers shown")
    return int(raw)
