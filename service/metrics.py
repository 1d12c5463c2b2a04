"""Prometheus metrics, served at `/metrics`.

- Requests: Litestar's Prometheus middleware, per route template (not per URL: a job reference in a label
  would make one series per job), method and status: rate, latency histogram, in progress, 5xx.
- Supplier calls: a latency histogram per supplier, operation and outcome, fed by the supplier clients.
- The shop's state, read from the database at each scrape (so that every process answers the same): open
  jobs per branch and stage, late part lines, the outbox's backlog and lag, stale suppliers; and the
  depth of the workers' queue when Redis is configured.

Several server processes on a machine: start them with `PROMETHEUS_MULTIPROC_DIR` set to an empty
directory they share (before Python starts), and every process's counters and histograms are added up at
each scrape, whichever process answers it.
"""

from __future__ import annotations

import hmac
import os
from datetime import datetime
from typing import Any

from litestar import Controller, Request, Response, get
from litestar.exceptions import NotAuthorizedException
from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from service.persistence.metrics import StateCounts, state_counts
from service.settings import Settings
from service.uow import Database

ARQ_QUEUE = "arq:queue"  # arq's default queue: a sorted set of job ids
SUPPLIER_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REQUEST_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]


def share_between_processes() -> None:
    """With `PROMETHEUS_MULTIPROC_DIR` set, keep this process's values in that directory. prometheus_client
    chooses where values live when it is first imported, which may be before the variable was set: the
    server forks its workers from a process that had imported it. So choose again, in each process,
    before its first metric is made."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def request_metrics() -> PrometheusConfig:
    return PrometheusConfig(
        app_name="atelier",
        prefix="atelier",
        group_path=True,
        buckets=list(REQUEST_BUCKETS),
        exclude=["^/metrics", "^/static/"],
    )


class Metrics:
    """A process's own metrics, in a registry of its own (an app built twice, as tests do, registers
    nothing twice in the global one)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.supplier_calls = Histogram(
            "atelier_supplier_call_seconds",
            "Supplier API calls by supplier, operation and outcome (retries included), in seconds",
            ["supplier", "operation", "outcome"],
            buckets=SUPPLIER_BUCKETS,
            registry=self.registry,
        )

    def supplier_call(self, supplier: str, operation: str, outcome: str, seconds: float) -> None:
        self.supplier_calls.labels(supplier, operation, outcome).observe(seconds)

    def exposition(self, state: CollectorRegistry) -> bytes:
        """Every process's request and supplier metrics, then the shop's state."""
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            everyone = CollectorRegistry()
            multiprocess.MultiProcessCollector(everyone)  # type: ignore[no-untyped-call]
            counted = generate_latest(everyone)
        else:
            counted = generate_latest(REGISTRY) + generate_latest(self.registry)
        return counted + generate_latest(state)


class _State(Collector):
    def __init__(self, counts: StateCounts, now: datetime, queued: int | None) -> None:
        self._counts, self._now, self._queued = counts, now, queued

    def collect(self) -> Any:
        counts = self._counts
        jobs = GaugeMetricFamily("atelier_open_jobs", "Open jobs by branch and stage", labels=["branch", "stage"])
        for (branch, stage), n in sorted(counts.jobs.items()):
            jobs.add_metric([branch, stage], n)
        yield jobs
        late = GaugeMetricFamily("atelier_late_part_lines", "Part lines on order past their ETA", labels=["branch"])
        for branch, n in sorted(counts.late_lines.items()):
            late.add_metric([branch], n)
        yield late
        pending = GaugeMetricFamily("atelier_outbox_pending", "Outbox entries due and not done", labels=["state"])
        pending.add_metric(["undispatched"], counts.outbox_undispatched)
        pending.add_metric(["dispatched"], counts.outbox_pending - counts.outbox_undispatched)
        yield pending
        oldest = counts.outbox_oldest_due
        lag = (self._now - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily("atelier_outbox_lag_seconds", "Age of the oldest due outbox entry", value=max(0.0, lag))
        stale = GaugeMetricFamily("atelier_supplier_stale", "1 while a supplier's data is stale", labels=["supplier"])
        for name in counts.stale_suppliers:
            stale.add_metric([name], 1)
        yield stale
        if self._queued is not None:
            yield GaugeMetricFamily("atelier_queue_depth", "Tasks waiting for a worker", value=self._queued)


class MetricsController(Controller):
    path = "/metrics"
    include_in_schema = False

    @get("/", opt={"public": True})
    async def scrape(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        """The Prometheus text format. With `ATELIER_METRICS_TOKEN` set, only with that bearer token."""
        state = request.app.state
        settings: Settings = state.settings
        _check_token(request, settings)
        db: Database = state.db
        now = state.clock()
        async with db.transaction(write=False) as uow:
            counts = await state_counts(uow.connection, now)
        redis = getattr(state, "redis", None)
        # Without Redis the tasks run in this process, straight from the outbox: its due entries are the queue.
        queued = await _queue_depth(redis) if redis is not None else counts.outbox_pending
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_State(counts, now, queued))
        metrics: Metrics = state.services.metrics
        return Response(metrics.exposition(registry), media_type=CONTENT_TYPE_LATEST)


async def _queue_depth(redis: Any) -> int | None:
    """None with Redis away (the scrape still answers: that is when it matters)."""
    try:
        return int(await redis.zcard(ARQ_QUEUE))
    except (OSError, TimeoutError, RedisError):
        return None


def _check_token(request: Request[Any, Any, Any], settings: Settings) -> None:
    expected = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if expected is None:
        return
    given = request.headers.get("authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {expected}".encode()):
        raise NotAuthorizedException("the metrics need the metrics token (ATELIER_METRICS_TOKEN)")
