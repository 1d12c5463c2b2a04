"""What `atelier serve` runs besides answering requests.

Without Redis (the embedded default) it runs the workers' schedule in-process. With Redis it only
relays the outbox to arq (so work reaches the workers within a second), and the arq workers
(`atelier worker`) run everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from arq.connections import ArqRedis

from service.services import Services
from service.usecases import outbox
from workers.embedded import EmbeddedWorker
from workers.queue import ArqQueue

log = structlog.get_logger("atelier.background")
RELAY_EVERY_SECONDS = 1.0
RELAY_REDIS_TIMEOUT_SECONDS = 2.0  # a relay with Redis away gives up within seconds; the next one retries


@contextlib.asynccontextmanager
async def background_work(services: Services) -> AsyncIterator[ArqRedis | None]:
    """Yields the Redis pool when one is configured (readiness reports it), else None."""
    settings = services.settings
    if not settings.redis_url:
        if not settings.embedded_worker:
            yield None
            return
        worker = EmbeddedWorker(services)
        worker.start()
        try:
            yield None
        finally:
            await worker.stop()
        return
    redis = relay_redis(settings.redis_url)
    relay = asyncio.create_task(_relay_forever(services, ArqQueue(redis)))
    try:
        yield redis
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay
        await redis.aclose()


def relay_redis(url: str) -> ArqRedis:
    """The server's client for arq, failing fast: no retries, short timeouts. Unlike a worker's, which
    waits Redis out, a relay blocked on a lost Redis would hold its entries for minutes; failing, it
    gives them back to the outbox for the next relay. Connects on first use, so `serve` starts (and
    takes work into the outbox) with Redis down."""
    return ArqRedis.from_url(
        url, socket_connect_timeout=RELAY_REDIS_TIMEOUT_SECONDS, socket_timeout=RELAY_REDIS_TIMEOUT_SECONDS
    )


async def _relay_forever(services: Services, queue: ArqQueue) -> None:
    """Move the outbox to arq. Redis down: the entries wait in the outbox (nothing is lost) and this
    keeps trying; several server processes relaying at once never take the same entry."""
    while True:
        try:
            await outbox.relay(services, queue, now=services.clock())
        except Exception as exc:  # Redis or the database away for a moment: try again shortly
            log.warning("outbox_relay_failed", error=type(exc).__name__)
        await asyncio.sleep(RELAY_EVERY_SECONDS)
