"""The one place that composes the Litestar application: settings, resources, auth, routes, errors."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import structlog
from litestar import Litestar, Request
from litestar.config.app import AppConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import ClientException
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from domain.model import Actor
from service.admission import AdmissionGate, admission_middleware
from service.api.alerts import AlertController
from service.api.auth import AuthController, build_jwt_auth
from service.api.branches import BranchController, ExpressController
from service.api.context import RequestContext
from service.api.customers import CustomerController
from service.api.health import HealthController
from service.api.jobs import JobController
from service.api.parts import JobPartsController, PartsController, SupplierOrderController
from service.api.pickup import PickupController
from service.api.problems import EXCEPTION_HANDLERS
from service.api.queue import QueueController
from service.api.suppliers import SupplierController, WebhookController
from service.api.tracking import JobTrackingController, TrackingController
from service.logging import RequestIdMiddleware, configure_logging, response_tagger
from service.metrics import MetricsController, request_metrics, share_between_processes
from service.ratelimit import rate_limits
from service.secrets import required_secrets
from service.services import Clock, build_services, utc_now
from service.settings import Settings
from service.uow import Database
from service.web.bench import BenchPages
from service.web.counter import CounterPages
from service.web.job_page import JobPages
from service.web.job_parts import JobPartPages
from service.web.pages import PAGE_DEPENDENCIES, SignInPages, StaffPages, root
from service.web.pickup_desk import PickupDeskPages
from service.web.reports import LatePages, ManagerPages
from service.web.session import csrf_config, session_config
from workers.background import background_work

WEB = Path(__file__).parent / "web"  # templates and static files of the staff pages


class JsonSafeRequest(Request[Any, Any, Any]):
    """Litestar turns only the decoder's own error into a 400: a body nested past its depth
    (RecursionError) or not UTF-8 (UnicodeDecodeError) would reach the 500 handler. Both are the client's
    malformed JSON."""

    async def json(self) -> Any:
        try:
            return await super().json()
        except (RecursionError, UnicodeDecodeError) as exc:
            raise ClientException("the body is not valid JSON", status_code=400) from exc


def _request_id_outermost(app_config: AppConfig) -> AppConfig:
    app_config.middleware.insert(0, DefineMiddleware(RequestIdMiddleware))
    return app_config


def create_app(settings: Settings | None = None, *, clock: Clock = utc_now) -> Litestar:
    settings = settings or Settings()
    configure_logging(settings)
    jwt_secret, cipher = required_secrets(settings)
    jwt_auth = build_jwt_auth(jwt_secret, settings.token_ttl_seconds)
    gate = AdmissionGate(settings.max_requests_in_flight, settings.max_event_loop_lag_seconds)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # Built here, not at import: each server worker process gets its own pool and clients.
        share_between_processes()
        services = build_services(settings, cipher, clock=clock)
        app.state.services = services
        app.state.db = services.db
        app.state.suppliers = services.suppliers
        app.state.limits = rate_limits(settings, services.limiter)
        async with background_work(services) as redis:
            app.state.redis = redis
            watching = asyncio.create_task(gate.watch_loop())
            # Everything loaded so far lives as long as the process: keep it out of the collector's scans,
            # and collect young objects less often. Full collections over a big heap were the p99 tail.
            gc.collect()
            gc.freeze()
            gc.set_threshold(20_000, 20, 20)
            try:
                yield
            finally:
                watching.cancel()
                await services.aclose()

    def provide_db(state: State) -> Database:
        db: Database = state.db
        return db

    def provide_ctx(request: Request[Actor, Any, Any]) -> RequestContext:
        state = request.app.state
        return RequestContext(request.user, state.db, settings, cipher, clock, state.suppliers, state.limits)

    return Litestar(
        route_handlers=[
            HealthController,
            AuthController,
            JobController,
            JobPartsController,
            PartsController,
            SupplierController,
            SupplierOrderController,
            WebhookController,
            AlertController,
            BranchController,
            ExpressController,
            QueueController,
            CustomerController,
            PickupController,
            TrackingController,
            JobTrackingController,
            root,
            SignInPages,
            StaffPages,
            CounterPages,
            PickupDeskPages,
            JobPages,
            JobPartPages,
            BenchPages,
            LatePages,
            ManagerPages,
            MetricsController,
            create_static_files_router(path="/static", directories=[WEB / "static"]),
        ],
        lifespan=[lifespan],
        dependencies={
            "db": Provide(provide_db, sync_to_thread=False),
            "ctx": Provide(provide_ctx, sync_to_thread=False),
            **{name: Provide(provider, sync_to_thread=False) for name, provider in PAGE_DEPENDENCIES.items()},
        },
        # Shedding sits inside the metrics (its 503s are counted per route) and before the session is read.
        middleware=[
            request_metrics().middleware,
            DefineMiddleware(admission_middleware(gate)),
            session_config(settings).middleware,
        ],
        csrf_config=csrf_config(settings),
        template_config=TemplateConfig(directory=WEB / "templates", engine=JinjaTemplateEngine),
        # Auth inserts its middleware first; the request id goes in front of it afterwards, so that
        # rejected requests are logged and answered with their id too.
        on_app_init=[jwt_auth.on_app_init, _request_id_outermost],
        before_send=[response_tagger(structlog.get_logger("atelier.access").bind())],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_body_bytes,
        request_class=JsonSafeRequest,
        # What handlers without a staff user (supplier webhooks) need.
        state=State({"jwt_auth": jwt_auth, "cipher": cipher, "clock": clock, "settings": settings}),
        openapi_config=OpenAPIConfig(
            title="Atelier",
            version="0.1.0",
            path="/schema",
            description="Repair jobs from intake to collection for phone and computer repair shops.",
            components=Components(security_schemes={"BearerToken": SecurityScheme(type="http", scheme="bearer")}),
        ),
        debug=False,
    )
