"""The late-parts page and the manager's page. Handlers only translate: the data comes from the use cases
the API serves (`parts.late_parts`, the domain scorecard) through `usecases.reports`.

Errors are pages too: a rule (403 for a non-manager on /app/manager, 404 for a branch one cannot see), a
bad query parameter (400) or the database being away (503) render the page with what went wrong.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, cast
from zoneinfo import ZoneInfo

import structlog
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import QueryParameter
from litestar.response import Template
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap

from domain.errors import DomainError, InvalidValue, NotFound, NotPermitted
from domain.model import format_ref
from domain.sourcing import WINDOW
from domain.stages import Role
from service.persistence.db import CONNECTION_ERRORS
from service.usecases import reports
from service.web import charts
from service.web.i18n import translator
from service.web.pages import Page, on_sign_in_required, provide_page
from service.web.session import SignInRequired

LATE_LIMIT = 200  # rows on the page; the API's own maximum is 500
_log = structlog.get_logger("atelier.web")

# Which template shows a failure of each path: the page itself, or the fragment the page polls.
_TEMPLATES = {"/app/late": "late.html.j2", "/app/late/table": "_late_table.html.j2", "/app/manager": "manager.html.j2"}
_DOMAIN_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (NotPermitted, HTTP_403_FORBIDDEN),
    (NotFound, HTTP_404_NOT_FOUND),
    (InvalidValue, HTTP_422_UNPROCESSABLE_ENTITY),
)


# --- formatting for the templates (pure) ------------------------------------------------------------


def weekday_names(language: str) -> list[str]:
    return translator(language)("report_weekdays").split()


def short_when(moment: datetime | None, zone: ZoneInfo, language: str) -> str:
    """ "lun 23/11 10:00" in the branch's time; "—" when there is no date."""
    if moment is None:
        return "—"
    local = moment.astimezone(zone)
    return f"{weekday_names(language)[local.weekday()]} {local:%d/%m %H:%M}"


def short_day(day: date, language: str) -> str:
    return f"{weekday_names(language)[day.weekday()]} {day:%d}"


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{round(rate * 100)} %"


def hours(value: float | None) -> str:
    """Delays in hours, one decimal below ten (where it matters), whole above."""
    if value is None:
        return "—"
    return f"{value:.1f} h" if value < 10 else f"{round(value)} h"


def tick_label(value: float) -> str:
    return f"{value:g}"


# --- failures, as pages -----------------------------------------------------------------------------


def _status_of(exc: DomainError) -> int:
    return next((status for cls, status in _DOMAIN_STATUS if isinstance(exc, cls)), HTTP_409_CONFLICT)


def _failure_page(request: Request[Any, Any, Any], status: int, detail: str | None = None) -> Response[Any]:
    """The page (or fragment) the request was for, saying what went wrong instead of its data."""
    try:
        page = provide_page(request, request.app.state)
    except SignInRequired as exc:
        return on_sign_in_required(request, exc)
    template = page.render(
        _TEMPLATES.get(request.url.path, "late.html.j2"),
        error=translator(page.language)(f"report_error_{status}"),
        error_detail=detail,
        refresh=0,
    )
    # htmx swaps only 2xx answers: a polled fragment says what went wrong in place of the table.
    template.status_code = 200 if request.headers.get("hx-request") else status
    return template


def on_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    return _failure_page(request, _status_of(exc), exc.detail)


def on_bad_request(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    return _failure_page(request, HTTP_400_BAD_REQUEST, exc.detail)


def on_database_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    _log.warning("database unavailable", error=type(exc).__name__, path=request.url.path)
    response = _failure_page(request, HTTP_503_SERVICE_UNAVAILABLE)
    response.headers["Retry-After"] = "2"
    return response


REPORT_EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    SignInRequired: on_sign_in_required,
    DomainError: on_domain_error,
    ValidationException: on_bad_request,
    **dict.fromkeys(cast("tuple[type[Exception], ...]", CONNECTION_ERRORS), on_database_unavailable),
}


# --- the pages --------------------------------------------------------------------------------------


class LatePages(Controller):
    path = "/app"
    include_in_schema = False
    exception_handlers = REPORT_EXCEPTION_HANDLERS

    @get("/late")
    async def late(self, page: NamedDependency[Page]) -> Template:
        return page.render("late.html.j2", **await _late(page), refresh=page.settings.web_board_refresh_seconds)

    @get("/late/table")
    async def late_table(self, page: NamedDependency[Page]) -> Template:
        """The table alone: what the page polls to stay live without a reload."""
        return page.render("_late_table.html.j2", **await _late(page))


async def _late(page: Page) -> dict[str, Any]:
    async with page.db.transaction(write=False) as uow:
        rows = await reports.late_rows(
            uow,
            page.actor,
            now=page.now,
            sla=page.settings.sla_policy,
            policy=page.settings.escalation_policy,
            limit=LATE_LIMIT,
        )
    return {"rows": rows, "ref": format_ref, "when": lambda moment, zone: short_when(moment, zone, page.language)}


class ManagerPages(Controller):
    path = "/app"
    include_in_schema = False
    exception_handlers = REPORT_EXCEPTION_HANDLERS

    @get("/manager")
    async def manager(
        self,
        page: NamedDependency[Page],
        branch: Annotated[str, QueryParameter(max_length=32, pattern=r"^[A-Za-z0-9_-]*$")] = "",
    ) -> Template:
        """`branch`: a branch's code; none (or empty, the chooser's "all") is the caller's scope."""
        if page.actor.role is not Role.MANAGER:
            raise NotPermitted("only a manager sees the reports")
        async with page.db.transaction(write=False) as uow:
            report = await reports.manager_report(uow, page.actor, now=page.now, branch_code=branch or None)
        return page.render("manager.html.j2", **_manager_context(report, page.language))


def _manager_context(report: reports.ManagerReport, language: str) -> dict[str, Any]:
    intake = [(short_day(day, language), float(count)) for day, count in report.intake]
    delays = {
        s.supplier.id: charts.line_chart([(f"{week:%d/%m}", value) for week, value in s.weekly_delay])
        for s in report.suppliers
    }
    return {
        "report": report,
        "open_total": sum(count for _, count in report.stages),
        "when": lambda moment: short_when(moment, report.zone, language),
        "intake_chart": charts.bar_chart(intake, width=480, counts=True),
        "delay_charts": delays,
        "percent": percent,
        "hours": hours,
        "tick": tick_label,
        "window_days": WINDOW.days,
        "on_time_days": reports.ON_TIME_WINDOW.days,
    }
