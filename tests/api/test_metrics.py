"""`/metrics`: Prometheus text that a scraper parses, with requests per route template, the shop's state
read from the database, and the supplier calls' outcomes and latency."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from service.app import create_app
from service.settings import Settings
from tests.api.helpers import create_job, get_job
from tests.api.parts_helpers import at, place_order
from tests.conftest import Api, FakeClock
from tests.sandbox_fixture import SandboxServer

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(api: Api) -> Samples:
    response = await api.client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The samples with these labels (others ignored) added up; 0 when there is none."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples.items() if n == name and wanted <= have)


async def test_open_jobs_per_stage_and_requests_per_route_template(api: Api, clock: FakeClock) -> None:
    job = await create_job(api)
    route = "/api/v1/jobs/{ref}"  # the template: one series per route, not one per job
    before = await scrape(api)  # the request counters belong to the process: count what this test adds

    await get_job(api, "desk.valence", job["ref"])
    samples = await scrape(api)

    assert value(samples, "atelier_open_jobs", branch="valence", stage="received") == 1
    for name in ("atelier_requests_total", "atelier_request_duration_seconds_count"):
        counted = [value(s, name, path=route, method="GET", status_code="200") for s in (before, samples)]
        assert counted[1] - counted[0] == 1
    assert not any(job["ref"] in dict(labels).get("path", "") for _, labels in samples)


async def test_the_outbox_backlog_and_its_lag(api: Api, clock: FakeClock) -> None:
    await create_job(api)  # the "job received" message waits in the outbox: no worker here
    clock.advance(minutes=5)

    samples = await scrape(api)

    assert value(samples, "atelier_outbox_pending", state="undispatched") >= 1
    assert value(samples, "atelier_outbox_lag_seconds") == pytest.approx(300, abs=1)
    # No Redis here: the tasks run in the process, straight from the outbox, whose due entries are the queue.
    assert value(samples, "atelier_queue_depth") == value(samples, "atelier_outbox_pending")


async def test_supplier_calls_by_outcome_and_late_lines(api: Api, sandbox: SandboxServer, clock: FakeClock) -> None:
    placed = await place_order(api, sandbox)
    samples = await scrape(api)
    supplier = placed.supplier["name"]
    assert value(samples, "atelier_supplier_call_seconds_count", supplier=supplier, outcome="ok") >= 2  # quote, order
    assert ("atelier_late_part_lines", frozenset({("branch", "valence")})) not in samples

    clock.now = at(placed.order["lines"][0]["eta"]) + timedelta(days=1)  # the promise passes, no delivery
    late = await scrape(api)

    assert value(late, "atelier_late_part_lines", branch="valence") == 1


@pytest.fixture
async def guarded(settings: Settings, clock: FakeClock, clean_db: None) -> AsyncIterator[AsyncTestClient[object]]:
    tokened = settings.model_copy(update={"metrics_token": SecretStr("scrape-me")})
    async with AsyncTestClient(app=create_app(tokened, clock=clock)) as client:
        yield client


async def test_with_a_metrics_token_only_its_bearer_may_scrape(guarded: AsyncTestClient[object]) -> None:
    assert (await guarded.get("/metrics")).status_code == 401
    assert (await guarded.get("/metrics", headers={"Authorization": "Bearer guess"})).status_code == 401
    allowed = await guarded.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    assert allowed.status_code == 200 and "atelier_outbox_lag_seconds" in allowed.text
