"""arq tasks: thin, keyword-only, each one unit of work through the same use cases as the API.

`ctx["services"]` holds the process's resources (built once at worker start-up), `ctx["queue"]` hands
follow-up work to the queue. Every task is idempotent: arq delivers at least once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import service.usecases.notifications  # noqa: F401  (registers the "notify" outbox handler)
from service.services import Services, TaskQueue
from service.usecases import customers, escalation, outbox, polling, reminders


def _services(ctx: dict[str, Any]) -> Services:
    services: Services = ctx["services"]
    return services


async def relay_outbox(ctx: dict[str, Any]) -> int:
    queue: TaskQueue = ctx["queue"]
    services = _services(ctx)
    return await outbox.relay(services, queue, now=services.clock())


async def handle_outbox(ctx: dict[str, Any], *, outbox_id: int) -> bool:
    services = _services(ctx)
    return await outbox.handle(services, outbox_id, now=services.clock())


async def purge_webhooks(ctx: dict[str, Any]) -> int:
    services = _services(ctx)
    before = services.clock() - timedelta(days=services.settings.webhook_retention_days)
    async with services.db.transaction() as uow:
        return await uow.suppliers.purge_webhooks(before)


async def remind_uncollected(ctx: dict[str, Any]) -> int:
    """Reminders for devices ready but not collected (3, 10, 30 days); idempotent."""
    services = _services(ctx)
    return await reminders.remind_uncollected(services, now=services.clock())


async def anonymise_customers(ctx: dict[str, Any]) -> int:
    """Customers whose last job closed more than the retention period ago are anonymised; idempotent."""
    services = _services(ctx)
    return await customers.anonymise_expired(services, services.clock())


async def sweep_escalations(ctx: dict[str, Any]) -> int:
    """The late-parts ladder, every minute: idempotent, safe in several workers at once."""
    services = _services(ctx)
    report = await escalation.sweep(services, now=services.clock())
    return report.total


async def poll_suppliers(ctx: dict[str, Any]) -> list[int]:
    """The polling cron: queues one `poll_supplier` per supplier whose interval is due."""
    queue: TaskQueue = ctx["queue"]
    services = _services(ctx)
    return await polling.poll_due_suppliers(services, now=services.clock(), queue=queue)


async def poll_supplier(ctx: dict[str, Any], *, supplier_id: int) -> dict[str, Any]:
    services = _services(ctx)
    report = await polling.poll_supplier(services, supplier_id, now=services.clock())
    return report.as_dict()


# Every task a worker runs, by name (the schedule and the queue refer to them by name).
TASKS = {
    "relay_outbox": relay_outbox,
    "handle_outbox": handle_outbox,
    "purge_webhooks": purge_webhooks,
    "remind_uncollected": remind_uncollected,
    "anonymise_customers": anonymise_customers,
    "poll_suppliers": poll_suppliers,
    "poll_supplier": poll_supplier,
    "sweep_escalations": sweep_escalations,
}
