"""structlog configuration and the request-id middleware that binds one id to every log line."""

from __future__ import annotations

import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from service.settings import Settings

# Keys whose values never reach a log line, whatever a caller binds by mistake.
_SECRET_KEYS = frozenset({"passcode", "password", "access_token", "authorization", "token", "secret"})


def _redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in event.keys() & _SECRET_KEYS:
        event[key] = "[redacted]"
    return event


def configure_logging(settings: Settings) -> None:
    level = logging.getLevelNamesMapping().get(settings.log_level.upper(), logging.INFO)
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.effective_log_format == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _redact,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
    )


class RequestIdMiddleware:
    """Takes X-Request-ID from the caller (or makes one) and binds it to the request's log lines.

    The response side lives in `response_tagger`, a `before_send` hook: Litestar calls it for every
    response, including those its exception handling makes after this middleware has unwound.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_id(scope) or uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["started"] = time.perf_counter()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")


def response_tagger(log: Any) -> Callable[[Message, Scope], Awaitable[None]]:
    """A `before_send` hook that echoes the request id and writes one access line per response.

    `log` is bound once by the app (after `configure_logging`), not looked up per request.
    """

    async def tag_response(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        state = scope.setdefault("state", {})
        request_id = state.get("request_id")
        if request_id is None:  # unrouted requests (404, 405) never reach the middleware
            request_id = state["request_id"] = _incoming_id(scope) or uuid.uuid4().hex
        message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
        started = state.get("started")
        log.info(
            "request",
            request_id=request_id,
            method=scope.get("method"),
            path=scope.get("path"),
            status=message["status"],
            duration_ms=round((time.perf_counter() - started) * 1000, 2) if started is not None else None,
        )

    return tag_response


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            text = value.decode("latin-1")
            # Only short, plain ids are echoed back: nothing to inject into logs or headers.
            if 0 < len(text) <= 64 and text.replace("-", "").isalnum():
                return text
    return None
