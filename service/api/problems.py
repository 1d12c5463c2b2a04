"""Every error as an RFC 9457 problem-details body: the exception map of the application."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.status_codes import (
    HTTP_401_UNAUTHORIZED,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_412_PRECONDITION_FAILED,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
    HTTP_503_SERVICE_UNAVAILABLE,
)
from litestar.types import ExceptionHandlersMap
from sqlalchemy.exc import DBAPIError

from domain.errors import (
    DomainError,
    IllegalTransition,
    InvalidValue,
    NotFound,
    NotPermitted,
    RuleConflict,
    VersionConflict,
)
from service.errors import AuthenticationFailed, IdempotencyKeyReused, RateLimited, SupplierFailure
from service.persistence.db import CONNECTION_ERRORS

PROBLEM_JSON = "application/problem+json"
_log = structlog.get_logger("atelier.api")

# (status, type slug, title) per domain error family; the most specific class wins (MRO order).
_DOMAIN: Mapping[type[DomainError], tuple[int, str, str]] = {
    InvalidValue: (HTTP_422_UNPROCESSABLE_ENTITY, "validation", "Invalid input"),
    IdempotencyKeyReused: (HTTP_422_UNPROCESSABLE_ENTITY, "idempotency-key-reused", "Idempotency-Key reused"),
    NotPermitted: (HTTP_403_FORBIDDEN, "forbidden", "Not allowed for your role"),
    NotFound: (HTTP_404_NOT_FOUND, "not-found", "Not found"),
    IllegalTransition: (HTTP_409_CONFLICT, "illegal-transition", "Transition not allowed"),
    RuleConflict: (HTTP_409_CONFLICT, "conflict", "Conflicts with the job's state"),
    VersionConflict: (HTTP_412_PRECONDITION_FAILED, "stale-version", "The job was changed by someone else"),
    AuthenticationFailed: (HTTP_401_UNAUTHORIZED, "unauthorized", "Authentication failed"),
    RateLimited: (HTTP_429_TOO_MANY_REQUESTS, "rate-limited", "Too many requests"),
}


def problem(
    request: Request[Any, Any, Any],
    status: int,
    title: str,
    detail: str,
    slug: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": f"/problems/{slug}" if slug else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    request_id = request.scope.get("state", {}).get("request_id")
    if request_id:
        body["request_id"] = request_id
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=dict(headers or {}))


def _field_errors(exc: ValidationException) -> list[dict[str, str]]:
    errors: list[dict[str, str]] = []
    for item in exc.extra if isinstance(exc.extra, list) else []:
        if not isinstance(item, dict):
            continue
        message = str(item.get("message", "invalid"))
        message = message.removeprefix("Value error, ")
        error = {"field": str(item.get("key") or "body"), "reason": message}
        if item.get("source"):
            error["source"] = str(item["source"])
        errors.append(error)
    return errors


def on_validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[dict[str, Any]]:
    errors = _field_errors(exc)
    if not errors:  # malformed JSON and the like: not one field's fault
        return problem(request, 400, "Bad request", exc.detail or "the request could not be read", "bad-request")
    detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
    return problem(request, HTTP_422_UNPROCESSABLE_ENTITY, "Invalid input", detail, "validation", errors=errors)


def on_domain(request: Request[Any, Any, Any], exc: DomainError) -> Response[dict[str, Any]]:
    for cls in type(exc).__mro__:
        if cls in _DOMAIN:
            status, slug, title = _DOMAIN[cls]  # type: ignore[index]
            break
    else:
        status, slug, title = HTTP_409_CONFLICT, "conflict", "Conflict"
    extra: dict[str, Any] = {}
    if isinstance(exc, InvalidValue):
        extra["errors"] = [{"field": exc.field, "reason": exc.reason}]
    if isinstance(exc, IllegalTransition):
        extra["allowed"] = exc.allowed
    headers = {"WWW-Authenticate": "Bearer"} if status == HTTP_401_UNAUTHORIZED else None
    if isinstance(exc, RateLimited):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
    if isinstance(exc, SupplierFailure):
        status, slug, title = exc.status, "supplier", "The supplier could not do it"
        extra["supplier"] = exc.supplier
        if exc.retry_after is not None or status == HTTP_503_SERVICE_UNAVAILABLE:
            headers = {"Retry-After": str(max(1, round(exc.retry_after or 5)))}
    return problem(request, status, title, exc.detail, slug, headers, **extra)


def on_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    title = {401: "Unauthorized", 404: "Not found", 405: "Method not allowed", 413: "Request body too large"}
    extra = exc.extra if isinstance(exc.extra, dict) else {}
    headers = dict(exc.headers or {})
    if exc.status_code == HTTP_401_UNAUTHORIZED:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return problem(request, exc.status_code, title.get(exc.status_code, exc.detail), exc.detail, None, headers, **extra)


def on_database_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    _log.warning("database unavailable", error=type(exc).__name__)
    return problem(
        request,
        HTTP_503_SERVICE_UNAVAILABLE,
        "Service unavailable",
        "the database is unavailable; nothing was changed, try again shortly",
        "unavailable",
        {"Retry-After": "2"},
    )


def on_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return on_database_unavailable(request, exc)
    _log.exception("unhandled error", error=type(exc).__name__)
    return problem(
        request, HTTP_500_INTERNAL_SERVER_ERROR, "Internal error", "something went wrong on our side", "internal"
    )


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    ValidationException: on_validation,
    DomainError: on_domain,
    HTTPException: on_http,
    **dict.fromkeys(CONNECTION_ERRORS, on_database_unavailable),
    Exception: on_unexpected,
}

__all__ = ["EXCEPTION_HANDLERS", "PROBLEM_JSON", "MediaType", "problem"]
