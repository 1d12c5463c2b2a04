"""Customer notifications end to end: intake through the API writes an outbox entry, the outbox handler
sends it over a real SMTP server on loopback (aiosmtpd) and the supplier sandbox's SMS gateway (real
HTTP), and the job's history shows what became of it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import SecretStr
from sqlalchemy import select

from service.persistence.tables import notification_t, outbox_t
from service.secrets import PasscodeCipher
from service.services import Services, build_services
from service.settings import Settings
from service.usecases import outbox
from service.usecases.notifications import MAX_ATTEMPTS, backoff
from tests.api.helpers import create_job, estimate, events, move
from tests.api.parts_helpers import SKU, add_lines, add_part
from tests.conftest import PASSCODE_KEY, Api, FakeClock
from tests.sandbox_fixture import SandboxServer, free_port

TECH = "tech.valence"


class Mailbox:
    """An aiosmtpd handler: keeps what it accepts; refuses some recipients the way real servers do."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such mailbox"
        if address.startswith("busy@"):
            return "451 4.3.0 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self.messages.append(message_from_bytes(raw, policy=policy.default))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.fixture
async def services(
    settings: Settings,
    clock: FakeClock,
    mailbox: tuple[Mailbox, int],
    sandbox: SandboxServer,
    sandbox_tenant: str,
    api: Api,
) -> AsyncIterator[Services]:
    """The worker side, with both channels configured the way an operator would (settings)."""
    configured = settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": mailbox[1],
            "smtp_from": "Atelier Valence <atelier@example.org>",
            "smtp_starttls": False,
            "sms_gateway_url": sandbox.tenant_url(sandbox_tenant),
            "sms_gateway_key": SecretStr("sms-test-key"),
        }
    )
    built = build_services(configured, PasscodeCipher(PASSCODE_KEY), clock=clock)
    assert set(built.channels) == {"email", "sms"}
    try:
        yield built
    finally:
        await built.aclose()


def texts(sandbox: SandboxServer, tenant: str) -> list[dict[str, Any]]:
    response = sandbox.client.get(f"{sandbox.tenant_url(tenant)}/_sandbox/sms")
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def entries(services: Services, job_id: int) -> list[dict[str, Any]]:
    async with services.db.transaction(write=False) as uow:
        query = select(outbox_t).where(outbox_t.c.job_id == job_id).order_by(outbox_t.c.id)
        return [dict(row) for row in (await uow.connection.execute(query)).mappings()]


async def notifications(services: Services, job_id: int) -> dict[str, dict[str, Any]]:
    async with services.db.transaction(write=False) as uow:
        query = select(notification_t).where(notification_t.c.job_id == job_id)
        return {row["channel"]: dict(row) for row in (await uow.connection.execute(query)).mappings()}


async def intake(api: Api, **customer: Any) -> dict[str, Any]:
    body = {"name": "Camille Martin", "phone": "06 12 34 56 78", **customer}
    return await create_job(api, customer=body)


def job_id(job: dict[str, Any]) -> int:
    return int(job["ref"].removeprefix("AT-"))


async def deliver(services: Services, job: dict[str, Any], clock: FakeClock) -> list[dict[str, Any]]:
    """What the relay and a worker do: hand every due, not-done entry of the job to its handler."""
    pending = await entries(services, job_id(job))
    for entry in pending:
        if entry["done_at"] is None and entry["available_at"] <= clock.now:
            await outbox.handle(services, entry["id"], now=clock.now)
    return await entries(services, job_id(job))


# --- the happy paths -----------------------------------------------------------------------------


async def test_intake_sends_email_in_the_customers_language_and_an_sms(
    api: Api,
    services: Services,
    mailbox: tuple[Mailbox, int],
    sandbox: SandboxServer,
    sandbox_tenant: str,
    clock: FakeClock,
) -> None:
    job = await intake(api, email="ada@example.org", sms_consent=True, language="en")
    assert job["customer"]["language"] == "en"
    [entry] = await entries(services, job_id(job))
    assert entry["kind"] == "notify" and entry["payload"]["template"] == "job_received"
    assert entry["done_at"] is None  # written with the intake, sent by the worker

    assert await outbox.handle(services, entry["id"], now=clock.now)

    [mail] = mailbox[0].to("ada@example.org")
    assert mail["Subject"] == f"Device received ({job['ref']})"
    assert f"We have received your Apple iPhone 13 (job {job['ref']})." in mail.get_content()
    [sms] = texts(sandbox, sandbox_tenant)
    assert sms["to"] == "+33612345678"
    assert sms["body"].startswith("Atelier Valence: We have received your Apple iPhone 13")
    sent = await notifications(services, job_id(job))
    assert {c: (n["status"], n["attempts"], n["language"]) for c, n in sent.items()} == {
        "email": ("sent", 1, "en"),
        "sms": ("sent", 1, "en"),
    }
    assert sent["sms"]["provider_id"] == sms["id"]
    assert sent["email"]["provider_id"] == mail["Message-ID"].strip()
    [done] = await entries(services, job_id(job))
    assert done["done_at"] == clock.now
    history = [e for e in await events(api, TECH, job["ref"]) if e["kind"] == "notification_sent"]
    assert sorted(e["data"]["channel"] for e in history) == ["email", "sms"]


async def test_french_is_the_default_and_no_sms_without_consent(
    api: Api,
    services: Services,
    mailbox: tuple[Mailbox, int],
    sandbox: SandboxServer,
    sandbox_tenant: str,
    clock: FakeClock,
) -> None:
    job = await intake(api, email="camille@example.org")  # no language, no SMS consent
    await deliver(services, job, clock)

    [mail] = mailbox[0].to("camille@example.org")
    assert mail["Subject"] == f"Appareil reçu ({job['ref']})"
    assert mail.get_content().startswith("Bonjour Camille Martin,")
    assert texts(sandbox, sandbox_tenant) == []
    sent = await notifications(services, job_id(job))
    assert (sent["sms"]["status"], sent["sms"]["error"]) == ("skipped", "no SMS consent")
    assert sent["email"]["status"] == "sent"


async def test_no_email_address_means_sms_only(
    api: Api,
    services: Services,
    mailbox: tuple[Mailbox, int],
    sandbox: SandboxServer,
    sandbox_tenant: str,
    clock: FakeClock,
) -> None:
    job = await intake(api, sms_consent=True)
    entries_after = await deliver(services, job, clock)
    assert entries_after[0]["done_at"] is not None
    assert mailbox[0].messages == []
    [sms] = texts(sandbox, sandbox_tenant)
    assert sms["body"].startswith("Atelier Valence: Nous avons bien reçu votre Apple iPhone 13")


# --- quiet hours ---------------------------------------------------------------------------------


async def test_sms_in_quiet_hours_waits_for_eight_then_goes(
    api: Api,
    services: Services,
    mailbox: tuple[Mailbox, int],
    sandbox: SandboxServer,
    sandbox_tenant: str,
    clock: FakeClock,
) -> None:
    clock.now = datetime(2026, 11, 23, 21, 30, tzinfo=UTC)  # 22:30 in Valence
    job = await intake(api, email="night@example.org", sms_consent=True)
    [entry] = await deliver(services, job, clock)

    eight = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)  # 08:00 in Valence (UTC+1)
    assert len(mailbox[0].to("night@example.org")) == 1  # email has no quiet hours
    assert texts(sandbox, sandbox_tenant) == []
    assert entry["done_at"] is None and entry["available_at"] == eight
    state = await notifications(services, job_id(job))
    assert (state["sms"]["status"], state["sms"]["scheduled_for"]) == ("delayed", eight)

    # Handed over again before 08:00 (a redelivery): still nothing, still due at 08:00.
    clock.now = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
    assert await outbox.handle(services, entry["id"], now=clock.now)
    assert texts(sandbox, sandbox_tenant) == []
    assert (await entries(services, job_id(job)))[0]["available_at"] == eight

    clock.now = eight
    [entry] = await deliver(services, job, clock)
    assert len(texts(sandbox, sandbox_tenant)) == 1
    assert entry["done_at"] == eight
    assert len(mailbox[0].to("night@example.org")) == 1  # the email is not sent twice
    state = await notifications(services, job_id(job))
    assert (state["sms"]["status"], state["sms"]["sent_at"]) == ("sent", eight)


# --- failures, retries, redelivery ---------------------------------------------------------------


async def test_a_failing_gateway_is_retried_with_backoff_then_failed(
    api: Api,
    services: Services,
    mailbox: tuple[Mailbox, int],
    sandbox: SandboxServer,
    sandbox_tenant: str,
    clock: FakeClock,
) -> None:
    sandbox.set_faults(sandbox_tenant, error_rate=1.0)  # every SMS request answers 500/502/503
    job = await intake(api, email="retry@example.org", sms_consent=True)
    start = clock.now
    waits = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        [entry] = await deliver(services, job, clock)
        state = (await notifications(services, job_id(job)))["sms"]
        assert state["attempts"] == attempt
        if attempt < MAX_ATTEMPTS:
            assert state["status"] == "pending"
            assert entry["done_at"] is None
            waits.append(entry["available_at"] - clock.now)
            clock.now = entry["available_at"]
    assert waits == [backoff(n) for n in range(1, MAX_ATTEMPTS)]
    assert waits == sorted(waits) and waits[0] < waits[-1]  # growing
    assert state["status"] == "failed" and "SMS gateway answered 5" in state["error"]
    assert entry["done_at"] == clock.now > start
    assert texts(sandbox, sandbox_tenant) == []
    assert len(mailbox[0].to("retry@example.org")) == 1  # the email went once, at the first try

    history = await events(api, TECH, job["ref"])
    failed = [e for e in history if e["kind"] == "notification_failed"]
    assert len(failed) == 1
    assert failed[0]["data"]["channel"] == "sms" and failed[0]["data"]["attempts"] == MAX_ATTEMPTS
    assert [e["data"]["channel"] for e in history if e["kind"] == "notification_sent"] == ["email"]


async def test_a_gateway_that_recovers_delivers_on_a_retry(
    api: Api, services: Services, sandbox: SandboxServer, sandbox_tenant: str, clock: FakeClock
) -> None:
    sandbox.set_faults(sandbox_tenant, error_rate=1.0)
    job = await intake(api, sms_consent=True)
    [entry] = await deliver(services, job, clock)
    assert entry["done_at"] is None
    sandbox.set_faults(sandbox_tenant, error_rate=0.0)
    clock.now = entry["available_at"]
    [entry] = await deliver(services, job, clock)
    assert entry["done_at"] is not None
    assert len(texts(sandbox, sandbox_tenant)) == 1
    state = (await notifications(services, job_id(job)))["sms"]
    assert (state["status"], state["attempts"]) == ("sent", 2)


async def test_smtp_refusals_permanent_fails_at_once_temporary_is_retried(
    api: Api, services: Services, mailbox: tuple[Mailbox, int], clock: FakeClock
) -> None:
    refused = await intake(api, email="nobody@example.org")
    busy = await intake(api, email="busy@example.org", phone="06 98 76 54 32")
    [refused_entry] = await deliver(services, refused, clock)
    [busy_entry] = await deliver(services, busy, clock)

    state = (await notifications(services, job_id(refused)))["email"]
    assert (state["status"], state["attempts"]) == ("failed", 1) and "550" in state["error"]
    assert refused_entry["done_at"] is not None
    history = await events(api, TECH, refused["ref"])
    assert [e["data"]["channel"] for e in history if e["kind"] == "notification_failed"] == ["email"]

    state = (await notifications(services, job_id(busy)))["email"]
    assert (state["status"], state["attempts"]) == ("pending", 1) and "451" in state["error"]
    assert busy_entry["done_at"] is None and busy_entry["available_at"] == clock.now + backoff(1)
    assert mailbox[0].messages == []


async def test_a_redelivered_entry_sends_nothing_twice(
    api: Api,
    services: Services,
    mailbox: tuple[Mailbox, int],
    sandbox: SandboxServer,
    sandbox_tenant: str,
    clock: FakeClock,
) -> None:
    job = await intake(api, email="twice@example.org", sms_consent=True)
    [entry] = await entries(services, job_id(job))
    # Two workers handed the same entry at once (arq is at-least-once), then a late third delivery.
    await asyncio.gather(*(outbox.handle(services, entry["id"], now=clock.now) for _ in range(2)))
    assert await outbox.handle(services, entry["id"], now=clock.now) is False

    assert len(mailbox[0].to("twice@example.org")) == 1
    assert len(texts(sandbox, sandbox_tenant)) == 1
    history = await events(api, TECH, job["ref"])
    assert len([e for e in history if e["kind"] == "notification_sent"]) == 2  # one per channel


# --- triggers ------------------------------------------------------------------------------------


async def test_stage_triggers_notify_and_adding_parts_does_not(
    api: Api,
    services: Services,
    mailbox: tuple[Mailbox, int],
    sandbox: SandboxServer,
    sandbox_tenant: str,
    clock: FakeClock,
) -> None:
    await add_part(api)
    job = await intake(api, email="stages@example.org", sms_consent=True, language="en")
    await deliver(services, job, clock)
    assert len(mailbox[0].messages) == 1 and len(texts(sandbox, sandbox_tenant)) == 1

    response = await add_lines(api, job["ref"], {"sku": SKU, "quantity": 1})
    assert response.status_code == 201, response.text
    assert len(await entries(services, job_id(job))) == 1  # adding parts asks for no message
    await deliver(services, job, clock)
    assert len(mailbox[0].messages) == 1 and len(texts(sandbox, sandbox_tenant)) == 1

    other = await intake(api, email="stages2@example.org", phone="06 11 22 33 44")
    other = await move(api, TECH, other, "diagnosing")
    other = await estimate(api, TECH, other, 12950)
    other = await move(api, TECH, other, "awaiting_approval")
    kinds = [e["payload"]["template"] for e in await entries(services, job_id(other))]
    assert kinds == ["job_received", "estimate_ready"]
    await deliver(services, other, clock)
    [_, ready] = mailbox[0].to("stages2@example.org")
    assert ready["Subject"] == f"Devis prêt ({other['ref']})"
    assert "Montant : 129,50 €." in ready.get_content()

    other = await move(api, TECH, other, "ready_for_pickup", outcome="not_repaired")
    assert [e["payload"]["template"] for e in await entries(services, job_id(other))][-1] == "ready_for_pickup"
    await deliver(services, other, clock)
    pickup = mailbox[0].to("stages2@example.org")[-1]
    assert "n'a pas été réparé" in pickup.get_content() and "lun-sam 09:00-19:00" in pickup.get_content()


async def test_unconfigured_channels_are_skipped(settings: Settings, api: Api, clock: FakeClock) -> None:
    bare = build_services(settings, PasscodeCipher(PASSCODE_KEY), clock=clock)
    try:
        assert bare.channels == {}
        job = await intake(api, email="nochannel@example.org", sms_consent=True)
        [entry] = await deliver(bare, job, clock)
        assert entry["done_at"] is not None
        state = await notifications(bare, job_id(job))
        assert {c: n["status"] for c, n in state.items()} == {"email": "skipped", "sms": "skipped"}
    finally:
        await bare.aclose()


def test_backoff_grows() -> None:
    assert [backoff(n) for n in range(1, 5)] == [timedelta(minutes=m) for m in (2, 4, 8, 16)]
