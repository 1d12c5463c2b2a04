"""The device's passcode, told once at intake, is a secret: it appears in no answer (body or header) and in
no log line, whatever the route, the page or the worker, except the two deliberate reveals (the API's
GET /passcode and the job page's reveal button, for the assigned technician or a manager); and in the
database only as ciphertext, in the job's passcode column and nowhere else."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import httpx
import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import select

from domain.model import parse_ref
from service.app import create_app
from service.logging import configure_logging
from service.persistence.db import create_engine
from service.persistence.tables import job_t
from service.services import Services
from service.settings import Settings
from tests.api.helpers import JOBS, approve, create_job, estimate, intake_body, move, pickup_code
from tests.conftest import Api, FakeClock
from tests.messages import deliver
from tests.security.support import counter_form, signed_in, text_cells, track_path

PASSCODE = "Qx7-Unlock-48213-Zeta"  # distinctive: found anywhere, it leaked
WEB_PASSCODE = "Wv9-Counter-77164-Kilo"
REFUSED_PASSCODE = "Rf3-Refused-50912-Echo"  # sent with an intake that is refused
TOO_LONG = "Tl5-" + "9" * 70  # refused for its length
SECRETS = (PASSCODE, WEB_PASSCODE, REFUSED_PASSCODE, TOO_LONG)


@pytest.fixture
def logs_back(settings: Settings) -> Iterator[None]:
    """Set up before capsys, so torn down after it: the app's logging then prints to the stream in place
    again, not to capsys's, which is closed by then."""
    yield
    configure_logging(settings)


@asynccontextmanager
async def logged_api(settings: Settings, clock: FakeClock, caplog: pytest.LogCaptureFixture) -> AsyncIterator[Api]:
    """The app logging everything (DEBUG). Built in the test itself: structlog and the logging module
    print to the stderr of the moment, which capsys holds only while the test runs. caplog takes every
    record of the logging module at DEBUG, also of the loggers that do not propagate to the root (the
    app configures Litestar's when it is built)."""
    caplog.set_level(logging.DEBUG)
    app = create_app(settings.model_copy(update={"log_level": "DEBUG"}), clock=clock)
    quiet = [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and not logger.propagate
    ]
    for logger in quiet:
        logger.addHandler(caplog.handler)
    try:
        async with AsyncTestClient(app=app) as client:
            yield Api(client, {})  # its own tokens: the sign-ins are logged too
    finally:
        for logger in quiet:
            logger.removeHandler(caplog.handler)


class Seen:
    """Every answer of the scenario, labelled; the reveals are allowed to carry the passcode."""

    def __init__(self) -> None:
        self.answers: list[tuple[str, httpx.Response]] = []

    def __call__(self, label: str, response: httpx.Response) -> httpx.Response:
        self.answers.append((label, response))
        return response


REVEALS = {"API reveal", "page reveal"}


async def test_the_passcode_is_in_no_answer_and_no_log_line_but_the_reveals(
    logs_back: None,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    settings: Settings,
    clean_db: None,
    services: Services,
    clock: FakeClock,
) -> None:
    async with logged_api(settings, clock, caplog) as api:
        seen = await _scenario(api, services, clock)

    leaks = [
        f"{label}: {secret}"
        for label, response in seen.answers
        if label not in REVEALS
        for secret in SECRETS
        if secret in response.text or secret in str(response.headers)
    ]
    assert leaks == []
    assert [label for label, r in seen.answers if r.status_code >= 500] == []

    printed = capsys.readouterr()
    records = caplog.text + "".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    # The capture does hold the requests' log lines (the reveal's among them), so it would hold a leak.
    reveal = next(r for label, r in seen.answers if label == "API reveal")
    assert reveal.url.path in printed.err, printed.err[-2000:]
    for secret in SECRETS:
        assert secret not in printed.out and secret not in printed.err, secret
        assert secret not in records, secret


async def _scenario(api: Api, services: Services, clock: FakeClock) -> Seen:
    """Intake, reads, reveals, pages, pickup and the messages, with every answer kept."""
    seen = Seen()
    desk = await api.login("desk.valence")

    # Intake: plain, retried with an Idempotency-Key, refused, and with a passcode too long.
    job = await create_job(api, passcode=PASSCODE)
    keyed = {**desk, "Idempotency-Key": "intake-secret-1"}
    body = intake_body(passcode=PASSCODE)
    seen("keyed intake", await api.client.post(JOBS, json=body, headers=keyed))
    seen("keyed intake replayed", await api.client.post(JOBS, json=body, headers=keyed))
    bad_imei = intake_body(passcode=REFUSED_PASSCODE, device={**body["device"], "imei": "35209900000000"})
    seen("refused intake", await api.client.post(JOBS, json=bad_imei, headers=desk))
    seen("too long", await api.client.post(JOBS, json=intake_body(passcode=TOO_LONG), headers=desk))
    ref, link = job["ref"], track_path(job["tracking_url"])

    # Reads, for staff and the customer.
    manager = await api.login("manager.valence")
    for label, path, params in (
        ("job", f"{JOBS}/{ref}", {}),
        ("list", JOBS, {}),
        ("search by ref", JOBS, {"q": ref}),
        ("search by name", JOBS, {"q": "Camille"}),
        ("history", f"{JOBS}/{ref}/events", {}),
        ("link", f"{JOBS}/{ref}/tracking", {}),
        ("queue", "/api/v1/queue", {}),
    ):
        seen(label, await api.client.get(path, params=params, headers=manager))
    seen("tracking page", await api.client.get(link))
    seen("tracking JSON", await api.client.get(link, headers={"Accept": "application/json"}))

    # The reveals: refused to the front desk, given to the assigned technician.
    job = await move(api, "tech.valence", job, "diagnosing")
    seen("refused reveal", await api.client.get(f"{JOBS}/{ref}/passcode", headers=desk))
    tech_bearer = await api.login("tech.valence")
    revealed = seen("API reveal", await api.client.get(f"{JOBS}/{ref}/passcode", headers=tech_bearer))
    assert revealed.json() == {"passcode": PASSCODE}
    assert revealed.headers["cache-control"] == "no-store"

    # The pages: the counter (an intake taken, one refused), the ticket, the job, the desk's pages.
    counter = await signed_in(api, "desk.valence")
    form = counter_form("SN-SECRET-1", passcode=WEB_PASSCODE)
    taken = seen("counter intake", await counter.post("/app/counter/intake", form))
    assert taken.status_code == 303, taken.text
    web_ref = taken.headers["location"].split("/")[3]
    wrong_imei = {**form, "imei": "123", "passcode": REFUSED_PASSCODE}
    refused = seen("counter refused", await counter.post("/app/counter/intake", wrong_imei))
    assert refused.status_code == 422, refused.status_code
    for label, path, params in (
        ("ticket", f"/app/jobs/{ref}/ticket", {}),
        ("web ticket", f"/app/jobs/{web_ref}/ticket", {}),
        ("job page", f"/app/jobs/{ref}", {}),
        ("board", "/app/board", {}),
        ("bench", "/app/bench", {}),
        ("counter search", "/app/counter/search", {"q": ref}),
    ):
        seen(label, await counter.get(path, **params))
    tech = await signed_in(api, "tech.valence")
    page_reveal = seen("page reveal", await tech.post(f"/app/jobs/{ref}/passcode", {}))
    assert PASSCODE in page_reveal.text and page_reveal.headers["cache-control"] == "no-store"

    # Pickup: ready, looked up, handed over (the passcode is erased then); the messages sent by a worker.
    job = await move(api, "tech.valence", await estimate(api, "tech.valence", job, 8900), "awaiting_approval")
    job = await approve(api, "desk.valence", job)
    for to in ("repairing", "quality_check", "ready_for_pickup"):
        job = await move(api, "tech.valence", job, to)
    seen("pickup lookup", await api.client.get("/api/v1/pickup/lookup", params={"ref": ref}, headers=desk))
    seen("pickup page", await counter.get("/app/pickup/find", ref=ref))
    handed = {"code": await pickup_code(api, ref), "paid_cents": 8900}
    seen("hand-over", await api.client.post(f"{JOBS}/{ref}/pickup", json=handed, headers=desk))
    seen("history after", await api.client.get(f"{JOBS}/{ref}/events", headers=manager))
    for worked in (ref, web_ref):
        await deliver(services, worked, clock)
    return seen


async def _ciphertext(settings: Settings, ref: str) -> str:
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            query = select(job_t.c.passcode_ciphertext).where(job_t.c.id == parse_ref(ref))
            stored: str = (await conn.execute(query)).scalar_one()
    finally:
        await engine.dispose()
    return stored


async def test_the_passcode_is_only_ciphertext_in_the_jobs_own_column(
    api: Api, settings: Settings, services: Services, clock: FakeClock
) -> None:
    job = await create_job(api, passcode=PASSCODE)
    keyed = {**(await api.login("desk.valence")), "Idempotency-Key": "intake-at-rest"}
    again = await api.client.post(JOBS, json=intake_body(passcode=PASSCODE), headers=keyed)
    assert again.status_code == 201, again.text  # its answer is stored (Idempotency-Key)
    counter = await signed_in(api, "desk.valence")
    form = counter_form("SN-AT-REST", passcode=PASSCODE)
    taken = await counter.post("/app/counter/intake", form)
    assert taken.status_code == 303, taken.text
    job = await move(api, "tech.valence", job, "diagnosing")
    revealed = await api.client.get(f"{JOBS}/{job['ref']}/passcode", headers=await api.login("tech.valence"))
    assert revealed.status_code == 200, revealed.text
    for ref in (job["ref"], again.json()["ref"], taken.headers["location"].split("/")[3]):
        await deliver(services, ref, clock)  # the customers' messages, stored as sent

    cipher = api.client.app.state.cipher
    refs = (job["ref"], again.json()["ref"], taken.headers["location"].split("/")[3])
    ciphertexts = {ref: await _ciphertext(settings, ref) for ref in refs}
    assert all(cipher.decrypt(text) == PASSCODE for text in ciphertexts.values())
    assert len(set(ciphertexts.values())) == 3  # each encrypted on its own (Fernet's random IV)

    cells = await text_cells(settings)
    assert {table for table, _, _ in cells} >= {"repair_job", "job_event", "outbox", "idempotency_record"}
    assert [(table, column) for table, column, value in cells if PASSCODE in value] == []
    for ref, ciphertext in ciphertexts.items():
        holding = [(table, column) for table, column, value in cells if ciphertext in value]
        assert holding == [("repair_job", "passcode_ciphertext")], (ref, holding)
    assert [value for table, column, value in cells if (table, column) == ("repair_job", "passcode_ciphertext")] != []
