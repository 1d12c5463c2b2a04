"""Request rate limits on what needs no login or guesses a secret: the customer's link and pickup codes.

Each limit is a token bucket per key (a client IP, a tracking token, a job); beyond it the request is
refused with 429 and Retry-After before any work is done. The buckets live in the process (one server
process per core shares nothing): issue 7 moves them to Redis so that every process counts together.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from integrations.resilience import Bucket, Clock, TokenBucket
from service.errors import RateLimited
from service.settings import Settings

MAX_KEYS = 100_000  # buckets kept per limit; the idle ones are dropped past it (a flood of new IPs)


@dataclass
class Limit:
    """`per_minute` requests a minute per key. The bucket holds a minute's allowance (default `burst`): the
    first `per_minute` requests pass at once, the next one waits for the refill. Counters and desks share
    one IP behind a shop's router, so a tighter burst would refuse staff at a busy counter."""

    name: str
    per_minute: int
    burst: int | None = None
    _buckets: dict[str, Bucket] = field(default_factory=dict, repr=False)

    @property
    def rules(self) -> TokenBucket:
        return TokenBucket.for_limit(self.per_minute, self.burst or self.per_minute)

    def take(self, key: str, now: float) -> float:
        """0 when a request for `key` may go (a token was taken), else the seconds until one is due."""
        wait, bucket = self.rules.take(self._buckets.get(key), now)
        self._buckets[key] = bucket
        if len(self._buckets) > MAX_KEYS:
            self._prune(now)
        return wait

    def _prune(self, now: float) -> None:
        full_after = 60.0 * self.rules.burst / self.per_minute  # an idle bucket is full again by then
        self._buckets = {k: b for k, b in self._buckets.items() if now - b.updated_at < full_after}


@dataclass
class RateLimits:
    """The limits of one process, from the settings; `check` raises RateLimited (429) past one."""

    limits: dict[str, Limit]
    clock: Clock = time.monotonic

    def check(self, name: str, key: str) -> None:
        limit = self.limits[name]
        wait = limit.take(key, self.clock())
        if wait > 0:
            raise RateLimited(f"too many requests: try again in {math.ceil(wait)} s", retry_after=wait)


TRACK_IP = "track_ip"
TRACK_LINK = "track_link"  # per tracking token
PICKUP_IP = "pickup_ip"
PICKUP_JOB = "pickup_job"


def rate_limits(settings: Settings, clock: Clock = time.monotonic) -> RateLimits:
    rules = [
        Limit(TRACK_IP, settings.track_rate_per_minute_ip),
        Limit(TRACK_LINK, settings.track_rate_per_minute_token),
        Limit(PICKUP_IP, settings.pickup_rate_per_minute_ip),
        Limit(PICKUP_JOB, settings.pickup_rate_per_minute_job),
    ]
    return RateLimits({limit.name: limit for limit in rules}, clock)
