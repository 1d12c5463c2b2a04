"""Everything a job handler needs, as ONE dependency: Litestar resolves two or more dependencies of a
handler concurrently in an anyio task group (a task per dependency, per request), which costs more than
the dependencies themselves."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from domain.model import Actor
from service.ratelimit import RateLimits
from service.secrets import PasscodeCipher
from service.settings import Settings
from service.uow import Database
from service.usecases.sourcing import ClientProvider


@dataclass(frozen=True, slots=True)
class RequestContext:
    actor: Actor
    db: Database
    settings: Settings
    cipher: PasscodeCipher
    clock: Callable[[], datetime]
    suppliers: ClientProvider
    limits: RateLimits
