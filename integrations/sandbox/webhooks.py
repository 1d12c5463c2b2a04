"""Pushing the supplier's facts to Atelier as Standard Webhooks 1.0: signed, retried, logged."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import string
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from integrations.sandbox.orders import Event
from integrations.sandbox.state import Tenant, WebhookTarget
from integrations.sandbox.wire import event_body, iso

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
RETRY_DELAYS = (0.5, 1.0, 2.0)  # seconds before each of the three retries
TIMEOUT = httpx.Timeout(5.0, connect=2.0)
_ID_ALPHABET = string.ascii_letters + string.digits

Attempt = dict[str, Any]


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_<base64>` secret; ValueError when it is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error as exc:
        raise ValueError("a webhook secret is whsec_ then base64") from exc
    if not key:
        raise ValueError("a webhook secret needs a key after whsec_")
    return key


def sign(secret: str, msg_id: str, timestamp: int | str, body: bytes | str) -> str:
    """`v1,<base64 HMAC-SHA256>` of "{id}.{timestamp}.{body}", as the webhook-signature header carries it."""
    raw = body.encode() if isinstance(body, str) else body
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + raw, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def new_message_id() -> str:
    return "msg_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


class Pusher:
    """Delivers events from background tasks: the first attempt can be awaited, retries carry on alone."""

    def __init__(self, client: httpx.AsyncClient, retry_delays: tuple[float, ...] = RETRY_DELAYS) -> None:
        self._client = client
        self._delays = retry_delays
        self._tasks: set[asyncio.Task[None]] = set()  # held, or the loop may drop a running push

    def push(self, tenant: Tenant, event: Event) -> asyncio.Future[Attempt] | None:
        """Start delivering `event` to the tenant's webhook; the future holds the first attempt. None: no webhook."""
        if tenant.webhook is None:
            return None
        first: asyncio.Future[Attempt] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._deliver(tenant.webhook, tenant.log, event, first))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return first

    async def push_and_wait(self, tenant: Tenant, event: Event) -> Attempt | None:
        first = self.push(tenant, event)
        return await first if first is not None else None

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._client.aclose()

    async def _deliver(
        self, target: WebhookTarget, log: list[Attempt], event: Event, first: asyncio.Future[Attempt]
    ) -> None:
        body, msg_id = event_body(event), new_message_id()  # the same id and body on every retry
        try:
            for number, delay in enumerate((0.0, *self._delays), start=1):
                await asyncio.sleep(delay)
                attempt = await self._attempt(target, msg_id, event.type, body, number)
                log.append(attempt)
                if not first.done():
                    first.set_result(attempt)
                if attempt["status"] is not None and 200 <= attempt["status"] < 300:
                    return
        finally:
            if not first.done():
                first.cancel()

    async def _attempt(self, target: WebhookTarget, msg_id: str, kind: str, body: bytes, number: int) -> Attempt:
        timestamp = int(time.time())  # per attempt, so a late retry still passes the receiver's tolerance
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(target.secret, msg_id, timestamp, body),
            "content-type": "application/json",
        }
        status: int | None = None
        error: str | None = None
        try:
            response = await self._client.post(target.url, content=body, headers=headers)
            status = response.status_code
        except Exception as exc:  # any failure to deliver is logged and retried, never raised
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        at = iso(datetime.now(UTC))
        return {"id": msg_id, "type": kind, "attempt": number, "status": status, "error": error, "at": at}
