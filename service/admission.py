"""Load shedding: a bound on the requests one server process works on at once.

Past what the database pool can serve, every extra request only waits, and makes every other one wait
longer, until clients time out and retry into the queue (measured at ten times a normal day's rate:
thousands of 15 s timeouts, none refused). Beyond the bound a request is answered at once with 503 and
`Retry-After`, so the requests admitted stay fast and a desk's client knows to try again in a second;
nothing was done.

Past a bound of requests in flight, or while the event loop runs late (a process short of CPU), a
request is refused the same way (`AdmissionGate`).

Health checks and metrics are never shed: an orchestrator must still see a busy process alive.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from litestar.types import ASGIApp, Receive, Scope, Send

PROBLEM_JSON = b"application/problem+json"
RETRY_AFTER_SECONDS = 1
_EXEMPT = ("/health/", "/metrics")
_DETAIL = "the server is at capacity; nothing was done, try again in a second"


class AdmissionGate:
    """The count of requests this process is working on and its bound (one per process: each process has
    its own database pool), and how late its event loop runs.

    The count alone misses one overload: a process short of CPU queues requests *before* they reach the
    app (the server's buffers, the loop's ready queue), with few of them in flight. Its sign is the event
    loop running late, sustained: then everything is shed until it catches up, as a refusal costs a
    fraction of the work of an answer. One late sample (a long garbage collection, a blocking call) is
    not overload; two in a row are."""

    SAMPLE_SECONDS = 0.1
    SUSTAINED = 2  # consecutive late samples

    def __init__(self, limit: int, max_lag_seconds: float) -> None:
        self.limit = limit
        self.max_lag = max_lag_seconds
        self.in_flight = 0
        self.shed = 0
        self.late_samples = 0

    @property
    def overloaded(self) -> bool:
        return self.in_flight >= self.limit or self.late_samples >= self.SUSTAINED

    def admit(self) -> bool:
        if self.overloaded:
            self.shed += 1
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        self.in_flight -= 1

    def sample(self, lag: float) -> None:
        self.late_samples = self.late_samples + 1 if lag > self.max_lag else 0

    async def watch_loop(self) -> None:
        """Measure the loop's lateness for as long as the process serves (a task of the app's lifespan)."""
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(self.SAMPLE_SECONDS)
            self.sample(loop.time() - start - self.SAMPLE_SECONDS)


def admission_middleware(gate: AdmissionGate) -> type:
    """An ASGI middleware class over `gate` (Litestar builds middleware from a class and the app)."""

    class AdmissionMiddleware:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["path"].startswith(_EXEMPT):
                await self.app(scope, receive, send)
                return
            if not gate.admit():
                await _refuse(scope, send)
                return
            try:
                await self.app(scope, receive, send)
            finally:
                gate.leave()

    return AdmissionMiddleware


async def _refuse(scope: Scope, send: Send) -> None:
    """503 without touching the request's body, the database or the session: refusing must cost nothing.
    Pages get a small page that retries by itself; everyone else an RFC 9457 problem."""
    if _wants_html(scope):
        body = _busy_page(retry=scope["method"] in ("GET", "HEAD"))
        media = b"text/html; charset=utf-8"
    else:
        body = _problem(scope)
        media = PROBLEM_JSON
    headers = [
        (b"content-type", media),
        (b"content-length", str(len(body)).encode()),
        (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
        (b"cache-control", b"no-store"),
    ]
    await send({"type": "http.response.start", "status": 503, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _problem(scope: Scope) -> bytes:
    body: dict[str, Any] = {
        "type": "/problems/overloaded",
        "title": "Service unavailable",
        "status": 503,
        "detail": _DETAIL,
        "instance": scope["path"],
    }
    request_id = scope.get("state", {}).get("request_id")
    if request_id:
        body["request_id"] = request_id
    return json.dumps(body).encode()


def _wants_html(scope: Scope) -> bool:
    if not scope["path"].startswith(("/app", "/track/")):
        return False
    accept = next((value for name, value in scope["headers"] if name == b"accept"), b"")
    return b"text/html" in accept


def _busy_page(*, retry: bool) -> bytes:
    """A page reloads by itself; a form is never re-sent behind the user's back (Back keeps what they
    typed, and sending it again is their choice)."""
    if retry:
        head = '<meta http-equiv="refresh" content="2">'
        fr, en = "la page se recharge dans un instant", "this page reloads in a moment"
    else:
        head = ""
        fr = "rien n'a été enregistré. Revenez en arrière et envoyez à nouveau"
        en = "nothing was saved. Go back and send it again"
    return (
        f'<!doctype html><html lang="fr"><head><meta charset="utf-8">{head}<title>Atelier</title></head>'
        f'<body><p>Atelier est très occupé : {fr}.</p><p lang="en">Atelier is very busy: {en}.</p></body></html>'
    ).encode()
