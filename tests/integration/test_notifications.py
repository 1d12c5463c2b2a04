"""Customer notifications end to end: intake through the API writes an outbox entry, the outbox handler
sends it over a real SMTP server on loopback (aiosmtpd) and the supplier sandbox's SMS gateway (real
HTTP), and the job's history shows what became of it."""

from __future__ import annotations

import asyncio
import html
import json
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

from domain.notifications import Template
from service.persistence.tables import notification_t, outbox_t
from service.secrets import PasscodeCipher
from service.services import Services, build_services
from service.settings import Settings
from service.usecases import outbox
from service.usecases.notifications import MAX_ATTEMPTS, TRACKING_PATH, TURN_WAIT, backoff, notify
from service.usecases.reminders import remind_uncollected
from tests.api.helpers import advance_to, approve, collect, create_job, estimate, events, move
from tests.api.parts_helpers import ORDERS, SKU, add_lines, add_part, add_supplier, new_tenant, ordered, pin_stock
from tests.conftest import PASSCODE_KEY, Api, FakeClock
from tests.sandbox_fixture import SandboxServer, free_port
from tests.security.support import signed_in

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


async def notifications_of(services: Services, job_id: int, channel: str) -> list[dict[str, Any]]:
    """The job's messages on one channel, in the order they were asked for."""
    async with services.db.transaction(write=False) as uow:
        query = select(notification_t).where(notification_t.c.job_id == job_id, notification_t.c.channel == channel)
        rows = await uow.connection.execute(query.order_by(notification_t.c.outbox_id))
        return [dict(row) for row in rows.mappings()]


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


# --- judged again when it may go: stale messages, one parts delay per date, the order asked ------------

NIGHT = datetime(2026, 11, 23, 21, 30, tzinfo=UTC)  # 22:30 in Valence
EIGHT = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)  # 08:00 the next morning


async def ask(services: Services, job: dict[str, Any], template: Template, clock: FakeClock, **data: Any) -> None:
    """A message asked for the way a worker does (the escalation sweep's parts delay)."""
    async with services.db.transaction() as uow:
        await notify(uow, job_id(job), template, data, now=clock.now)


async def awaiting_an_ordered_part(api: Api, sandbox: SandboxServer, **customer: Any) -> tuple[dict[str, Any], int]:
    """A job whose screen is ordered from a supplier (a sandbox tenant); returns it and the order's id."""
    await add_part(api)
    tenant = new_tenant()
    pin_stock(sandbox, tenant, SKU, 50)
    supplier = await add_supplier(api, sandbox, tenant)
    job = await intake(api, **customer)
    response = await add_lines(api, job["ref"], {"sku": SKU, "quantity": 1})
    assert response.status_code == 201, response.text
    placed = await ordered(api, job["ref"], response.json()["lines"][0]["id"], supplier["id"])
    return job, int(placed["id"])


def of_kind(history: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e["data"] for e in history if e["kind"] == kind]


async def test_a_parts_delay_waiting_for_eight_is_not_sent_once_the_part_is_in(
    api: Api, services: Services, sandbox: SandboxServer, sandbox_tenant: str, clock: FakeClock
) -> None:
    clock.now = NIGHT
    job, order_id = await awaiting_an_ordered_part(api, sandbox, sms_consent=True)
    await ask(services, job, Template.PARTS_DELAYED, clock, new_date="2026-12-14T09:00:00+00:00")
    await deliver(services, job, clock)
    assert {n["status"] for n in (await notifications_of(services, job_id(job), "sms"))} == {"delayed"}

    clock.now = NIGHT + timedelta(hours=1)  # the part comes in before the shop opens
    receipt = await api.client.post(f"{ORDERS}/{order_id}/receipts", headers=await api.login(TECH))
    assert receipt.status_code == 201, receipt.text

    clock.now = EIGHT
    await deliver(services, job, clock)
    [sms] = texts(sandbox, sandbox_tenant)
    assert "Nous avons bien reçu votre" in sms["body"]  # the job received still goes; the delay does not
    received, delay = await notifications_of(services, job_id(job), "sms")
    assert (received["status"], received["sent_at"]) == ("sent", EIGHT)
    assert (delay["status"], delay["error"]) == ("skipped", "no longer relevant: the parts have arrived")
    assert delay["attempts"] == 0


async def test_an_estimate_answered_in_the_night_is_not_sent_at_eight(
    api: Api, services: Services, sandbox: SandboxServer, sandbox_tenant: str, clock: FakeClock
) -> None:
    clock.now = NIGHT
    job = await intake(api, sms_consent=True)
    job = await move(api, TECH, job, "diagnosing")
    job = await move(api, TECH, await estimate(api, TECH, job, 8900), "awaiting_approval")
    await deliver(services, job, clock)
    await approve(api, "desk.valence", job)  # the customer called back before the texts may go

    clock.now = EIGHT
    await deliver(services, job, clock)
    assert len(texts(sandbox, sandbox_tenant)) == 1  # the job received only
    _, answered = await notifications_of(services, job_id(job), "sms")
    assert (answered["template"], answered["status"]) == ("estimate_ready", "skipped")
    assert answered["error"] == "no longer relevant: the estimate is no longer awaiting an answer"


async def test_pickup_messages_for_a_device_collected_in_the_meantime_are_not_sent(
    api: Api, services: Services, sandbox: SandboxServer, sandbox_tenant: str, clock: FakeClock
) -> None:
    job = await advance_to(api, await intake(api, sms_consent=True), "ready_for_pickup")
    clock.now = NIGHT + timedelta(days=3)
    assert await remind_uncollected(services, now=clock.now) == 1
    [*_, reminder] = await entries(services, job_id(job))
    await outbox.handle(services, reminder["id"], now=clock.now)  # the reminder waits for 08:00
    await collect(api, "desk.valence", job)  # collected late in the evening

    clock.now = EIGHT + timedelta(days=3)
    await deliver(services, job, clock)
    assert len(texts(sandbox, sandbox_tenant)) == 1  # the job received only
    state = {n["template"]: (n["status"], n["error"]) for n in await notifications_of(services, job_id(job), "sms")}
    collected = ("skipped", "no longer relevant: the device was collected")
    assert state["ready_for_pickup"] == collected and state["uncollected_reminder"] == collected
    assert state["estimate_ready"][0] == "skipped"  # approved at once: nothing to ask the customer any more


async def test_a_parts_delay_announcing_a_date_already_told_is_not_sent_again(
    api: Api,
    services: Services,
    mailbox: tuple[Mailbox, int],
    sandbox: SandboxServer,
    sandbox_tenant: str,
    clock: FakeClock,
) -> None:
    await add_part(api)
    job = await intake(api, email="told@example.org", sms_consent=True, language="en")
    assert (await add_lines(api, job["ref"], {"sku": SKU, "quantity": 1})).status_code == 201
    await ask(services, job, Template.PARTS_DELAYED, clock, new_date="2026-12-14T09:00:00+00:00")
    await deliver(services, job, clock)
    # The sweep climbs again for a promise one hour later: the same Monday 14 December for the customer.
    await ask(services, job, Template.PARTS_DELAYED, clock, new_date="2026-12-14T10:00:00+00:00")
    await deliver(services, job, clock)
    await ask(services, job, Template.PARTS_DELAYED, clock, new_date="2026-12-15T09:00:00+00:00")
    await deliver(services, job, clock)

    said = [m["body"] for m in texts(sandbox, sandbox_tenant) if "new expected date" in m["body"]]
    assert [s.split("The new expected date is ")[1] for s in said] == ["Monday 14 December.", "Tuesday 15 December."]
    assert len([m for m in mailbox[0].to("told@example.org") if "new expected date" in m.get_content()]) == 2
    for channel in ("email", "sms"):
        delays = [n for n in await notifications_of(services, job_id(job), channel) if n["template"] == "parts_delayed"]
        assert [n["status"] for n in delays] == ["sent", "skipped", "sent"]
        assert delays[1]["error"] == "already told: the new date was sent before"
    history = of_kind(await events(api, TECH, job["ref"]), "notification_skipped")
    assert sorted(e["channel"] for e in history if e["why"] == "already_told") == ["email", "sms"]


async def test_texts_held_for_the_night_go_in_the_order_they_were_asked(
    api: Api, services: Services, sandbox: SandboxServer, sandbox_tenant: str, clock: FakeClock
) -> None:
    clock.now = NIGHT
    job = await intake(api, sms_consent=True, language="en")
    job = await move(api, TECH, job, "diagnosing")
    job = await move(api, TECH, await estimate(api, TECH, job, 8900), "awaiting_approval")
    await deliver(services, job, clock)
    received, ready = await entries(services, job_id(job))

    clock.now = EIGHT
    await outbox.handle(services, ready["id"], now=clock.now)  # a worker takes the later one first
    assert texts(sandbox, sandbox_tenant) == []
    [_, waiting] = await notifications_of(services, job_id(job), "sms")
    assert (waiting["status"], waiting["scheduled_for"]) == ("pending", EIGHT + TURN_WAIT)
    await outbox.handle(services, received["id"], now=clock.now)
    clock.now = EIGHT + TURN_WAIT
    await deliver(services, job, clock)

    bodies = [m["body"] for m in texts(sandbox, sandbox_tenant)]
    assert len(bodies) == 2 and "We have received" in bodies[0] and "estimate" in bodies[1]
    assert [n["attempts"] for n in await notifications_of(services, job_id(job), "sms")] == [1, 1]


async def test_delayed_skipped_and_retried_messages_are_in_the_history_and_on_the_job_page(
    api: Api, services: Services, clock: FakeClock
) -> None:
    clock.now = NIGHT
    job = await intake(api, email="busy@example.org", sms_consent=True)  # the mail server says "try later"
    [entry] = await deliver(services, job, clock)
    no_consent = await intake(api, email="plain@example.org", phone="06 98 76 54 32")
    await deliver(services, no_consent, clock)

    history = await events(api, TECH, job["ref"])
    [delayed] = of_kind(history, "notification_delayed")
    assert (delayed["channel"], delayed["until"], delayed["reason"]) == ("sms", EIGHT.isoformat(), "quiet hours")
    [retry] = of_kind(history, "notification_retry")
    assert (retry["channel"], retry["attempts"]) == ("email", 1) and "451" in retry["error"]
    assert retry["next_try_at"] == entry["available_at"].isoformat() == (clock.now + backoff(1)).isoformat()
    for data in (delayed, retry):  # what the sent/failed lines carry, never the message
        assert set(data) >= {"channel", "template", "language", "recipient", "attempts"} and "body" not in data
        assert TRACKING_PATH not in json.dumps(data)

    [skipped] = of_kind(await events(api, TECH, no_consent["ref"]), "notification_skipped")
    assert (skipped["channel"], skipped["why"], skipped["reason"]) == ("sms", "no_consent", "no SMS consent")

    desk = await signed_in(api, "desk.valence")
    page = await desk.get(f"/app/jobs/{job['ref']}")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert "Message (sms) différé au 24/11 08:00 (pas de SMS la nuit)" in text
    assert "Échec de l'envoi (email, essai 1), nouvel essai le 23/11 22:32" in text
    page = await desk.get(f"/app/jobs/{no_consent['ref']}")
    assert page.status_code == 200
    assert "Message (sms) non envoyé : pas d'accord pour les SMS" in html.unescape(page.text)
