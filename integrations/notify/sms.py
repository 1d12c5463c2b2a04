"""SMS through an HTTP gateway.

Wire format (what the gateway must speak; the supplier sandbox implements it at `/sms/messages`):

    POST {gateway_url}/sms/messages
    Authorization: Bearer {key}
    Idempotency-Key: {key}            optional: the same key answers the same id and sends nothing twice
    Content-Type: application/json
    {"to": "+33612345678", "body": "text, at most 1600 characters"}

    202 {"id": "sms_…"}               accepted (200 with the same id for a replayed Idempotency-Key)

Failures: a transport error, a timeout, 408, 425, 429 and any 5xx are retryable; any other status
(400 bad number or body, 401/403 bad key, 404, 422...) is permanent. A 2xx without an `id` is retryable
(the gateway is misbehaving, and the idempotency key makes another try safe).
"""

from __future__ import annotations

from typing import Any

import httpx

from integrations.notify.base import PermanentSendError, RetryableSendError

MAX_BODY = 1600
RETRYABLE_STATUSES = frozenset({408, 425, 429})


class SmsChannel:
    def __init__(
        self,
        gateway_url: str,
        api_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=gateway_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            follow_redirects=False,
            trust_env=False,
            transport=transport,
        )

    async def send(self, to: str, subject: str, body: str, *, idempotency_key: str | None = None) -> str:
        """`subject` is ignored: a text message has none."""
        if not to.startswith("+") or not to[1:].isdigit():
            raise PermanentSendError(f"not an E.164 number: {to!r}")
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        payload = {"to": to, "body": body[:MAX_BODY]}
        try:
            response = await self._client.post("/sms/messages", json=payload, headers=headers)
        except httpx.HTTPError as exc:
            raise RetryableSendError(f"SMS gateway unreachable: {exc!r}") from exc
        status = response.status_code
        if status >= 500 or status in RETRYABLE_STATUSES:
            raise RetryableSendError(f"SMS gateway answered {status}: {response.text[:200]}")
        if not 200 <= status < 300:
            raise PermanentSendError(f"SMS gateway refused the message ({status}): {response.text[:200]}")
        try:
            answer: Any = response.json()
            message_id = answer["id"]
        except (ValueError, KeyError, TypeError) as exc:
            raise RetryableSendError(f"SMS gateway answered {status} without an id") from exc
        return str(message_id)

    async def aclose(self) -> None:
        await self._client.aclose()
