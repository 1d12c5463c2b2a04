"""Logs: one request id on every line of a request, and never a passcode or a password."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import structlog
from litestar.testing import AsyncTestClient

from service.app import create_app
from service.settings import Settings
from tests.api.helpers import create_job, move
from tests.conftest import PASSWORD, Api, FakeClock


@pytest.fixture
async def info_api(settings: Settings, clock: FakeClock, clean_db: None) -> AsyncIterator[Api]:
    """An app that logs at INFO, as in production, so access lines are written."""
    app = create_app(settings.model_copy(update={"log_level": "INFO"}), clock=clock)
    async with AsyncTestClient(app=app) as client:
        yield Api(client, {})


PASSCODE = "918273"


async def test_request_lines_carry_the_request_id_and_no_secrets(info_api: Api) -> None:
    api = info_api  # signs in inside the capture, so the password request is logged too
    with structlog.testing.capture_logs() as logs:
        job = await create_job(api, passcode=PASSCODE)
        job = await move(api, "tech.valence", job, "diagnosing")
        headers = {**(await api.login("tech.valence")), "X-Request-ID": "trace-42"}
        revealed = await api.client.get(f"/api/v1/jobs/{job['ref']}/passcode", headers=headers)
    assert revealed.status_code == 200 and revealed.json() == {"passcode": PASSCODE}
    assert revealed.headers["x-request-id"] == "trace-42"
    access = [entry for entry in logs if entry["event"] == "request"]
    assert len(access) >= 5
    assert all(entry.get("request_id") for entry in access)
    assert any(entry["request_id"] == "trace-42" and entry["status"] == 200 for entry in access)
    for entry in logs:
        text = repr(entry)
        assert PASSCODE not in text
        assert PASSWORD not in text


async def test_unrouted_requests_get_an_id_too(api: Api) -> None:
    response = await api.client.get("/no/such/page")
    assert response.status_code == 404
    assert response.headers["x-request-id"]
    assert response.headers["content-type"].startswith("application/problem+json")
