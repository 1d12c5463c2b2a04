"""Request rate limits on what needs no login or guesses a secret: sign-in, the customer's link and
pickup codes.

Each limit is a token bucket per key (a client IP, a username, a tracking token, a job); beyond it the
request is refused with 429 and Retry-After before any work is done. The buckets live where the process's
`RateLimiter` keeps them: in Redis when one is configured, so that every server process counts together
(N processes must not allow N times the limit), else in the one process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from litestar import Request

from integrations.resilience import RateLimiter
from service.errors import RateLimited
from service.settings import Settings


@dataclass(frozen=True, slots=True)
class Limit:
    """`per_minute` requests a minute per key. The bucket holds a minute's allowance (default `burst`): the
    first `per_minute` requests pass at once, the next one waits for the refill. Counters and desks share
    one IP behind a shop's router, so a tighter burst would refuse staff at a busy counter."""

    name: str
    per_minute: int
    burst: int | None = None


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The limits from the settings over one limiter; `check` raises RateLimited (429) past one."""

    limits: dict[str, Limit]
    limiter: RateLimiter

    async def check(self, name: str, key: str) -> None:
        limit = self.limits[name]
        burst = limit.burst or limit.per_minute
        wait = await self.limiter.acquire(f"{name}:{key}", limit.per_minute, burst)
        if wait > 0:
            raise RateLimited(f"too many requests: try again in {math.ceil(wait)} s", retry_after=wait)


def client_ip(request: Request[Any, Any, Any]) -> str:
    """The key of the per-IP limits: the address the server saw (behind a proxy, run the server with its
    proxy-headers option so that this is the client's, not the proxy's)."""
    return request.client.host if request.client else "unknown"


TRACK_IP = "track_ip"
TRACK_LINK = "track_link"  # per tracking token
PICKUP_IP = "pickup_ip"
PICKUP_JOB = "pickup_job"
SIGN_IN_IP = "sign_in_ip"
SIGN_IN_USER = "sign_in_user"  # per username, whatever the address: a spread-out guess at one password


async def admit_sign_in(request: Request[Any, Any, Any], username: str) -> None:
    """Before a password is checked (API token or staff sign-in page): per address, then per username."""
    limits: RateLimits = request.app.state.limits
    await limits.check(SIGN_IN_IP, client_ip(request))
    await limits.check(SIGN_IN_USER, username.strip().lower()[:200])


def rate_limits(settings: Settings, limiter: RateLimiter) -> RateLimits:
    rules = [
        Limit(TRACK_IP, settings.track_rate_per_minute_ip),
        Limit(TRACK_LINK, settings.track_rate_per_minute_token),
        Limit(PICKUP_IP, settings.pickup_rate_per_minute_ip),
        Limit(PICKUP_JOB, settings.pickup_rate_per_minute_job),
        Limit(SIGN_IN_IP, settings.sign_in_rate_per_minute_ip),
        Limit(SIGN_IN_USER, settings.sign_in_rate_per_minute_user),
    ]
    return RateLimits({limit.name: limit for limit in rules}, limiter)
