"""SQLModel table declarations: the storage shape of the repair world.

Tables are storage, not the domain: repositories map rows to `domain.model` objects. Enums are
stored as plain strings (no PostgreSQL ENUM types, which would need a migration per new value) and
every datetime is timezone-aware UTC on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Text, UniqueConstraint, text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

MAX_ROW_ID = 2**31 - 1  # ids are 32-bit integers: a larger one names nothing (and must not reach the database)

# Part lines on order, which alone can be late (a line still `needed` has no date to miss). Spelled out
# because a partial index's predicate is SQL; the escalation sweep's query names the same statuses, as
# literals, so that PostgreSQL and SQLite can prove it matches the index.
ON_ORDER_STATUSES = ("ordered", "shipped", "backordered")
SLIPPED_LINE = "status IN ('ordered', 'shipped', 'backordered') AND eta > promised_at"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC in and out; SQLite has no timezone type, so naive values read back are UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _utc(*, index: bool = False, nullable: bool = False) -> Any:
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _json(*, nullable: bool = False) -> Any:
    return Field(sa_column=Column(JSON, nullable=nullable))


class BranchRow(SQLModel, table=True):
    __tablename__ = "branch"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=120)
    timezone: str = Field(max_length=64)
    hours: dict[str, Any] = _json()
    # None: the settings' default (ATELIER_EXPRESS_CAPACITY_PER_DAY, ATELIER_STORAGE_*).
    express_capacity: int | None = None  # express intakes a day
    storage_slots: list[str] | None = _json(nullable=True)  # shelf/bin names, in the order they are filled
    created_at: datetime = _utc()


class StaffUserRow(SQLModel, table=True):
    __tablename__ = "staff_user"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=150, unique=True)
    password_hash: str = Field(sa_type=Text)
    role: str = Field(max_length=20)
    branch_id: int | None = Field(default=None, foreign_key="branch.id", index=True)
    active: bool = True
    created_at: datetime = _utc()


class CustomerRow(SQLModel, table=True):
    __tablename__ = "customer"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    phone: str = Field(max_length=20, index=True)
    email: str | None = Field(default=None, max_length=254)
    sms_consent: bool = False
    language: str = Field(default="fr", max_length=5, sa_column_kwargs={"server_default": "fr"})  # of our messages
    created_at: datetime = _utc()
    erased_at: datetime | None = _utc(nullable=True)  # anonymised (on request, or by the retention task)


class RepairJobRow(SQLModel, table=True):
    __tablename__ = "repair_job"
    __table_args__ = (
        # The board and the default list: express first, then by due date, per branch.
        Index("ix_repair_job_branch_priority_due", "branch_id", "priority", "due_at", "id"),
        Index("ix_repair_job_branch_stage", "branch_id", "stage"),
        # Workers sweep open jobs by due date across branches.
        Index("ix_repair_job_stage_due", "stage", "due_at"),
        # One device per shelf/bin: a slot is held from ready_for_pickup until collection.
        Index(
            "uq_repair_job_branch_slot",
            "branch_id",
            "pickup_slot",
            unique=True,
            sqlite_where=text("pickup_slot IS NOT NULL"),
            postgresql_where=text("pickup_slot IS NOT NULL"),
        ),
        Index("uq_repair_job_tracking_hash", "tracking_hash", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    branch_id: int = Field(foreign_key="branch.id")
    customer_id: int = Field(foreign_key="customer.id", index=True)
    device_brand: str = Field(max_length=60)
    device_model: str = Field(max_length=80)
    device_imei: str | None = Field(default=None, max_length=15, index=True)
    device_serial: str | None = Field(default=None, max_length=40, index=True)
    device_colour: str | None = Field(default=None, max_length=40)
    device_condition: str = Field(default="", sa_type=Text)
    device_accessories: list[str] = _json()
    fault_category: str = Field(max_length=20)
    fault_description: str = Field(sa_type=Text)
    tier: str = Field(max_length=10)
    priority: int  # 0 = express, 1 = standard: sorts express first with an index
    due_at: datetime = _utc()
    stage: str = Field(max_length=20)
    held_from: str | None = Field(default=None, max_length=20)
    technician_id: int | None = Field(default=None, foreign_key="staff_user.id", index=True)
    estimate: list[dict[str, Any]] = _json()
    approval: dict[str, Any] | None = _json(nullable=True)
    preapproved_budget_cents: int | None = Field(default=None, sa_type=BigInteger)
    outcome: str | None = Field(default=None, max_length=20)
    work_started_at: datetime | None = _utc(nullable=True)  # first entered repairing: no cancelling after
    passcode_ciphertext: str | None = Field(default=None, sa_type=Text)
    # The customer's link: looked up by its SHA-256, kept encrypted to be shown to staff and put in messages.
    tracking_hash: str | None = Field(default=None, max_length=64)
    tracking_ciphertext: str | None = Field(default=None, sa_type=Text)
    tracking_issued_at: datetime | None = _utc(nullable=True)
    # Pickup: only a salted, keyed hash of the code; wrong codes counted apart from the job's version.
    pickup_code_hash: str | None = Field(default=None, max_length=200)
    pickup_slot: str | None = Field(default=None, max_length=20)
    pickup_failures: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    pickup_locked_until: datetime | None = _utc(nullable=True)
    collected_at: datetime | None = _utc(nullable=True)
    paid_cents: int | None = Field(default=None, sa_type=BigInteger)
    version: int = 1
    created_at: datetime = _utc()
    updated_at: datetime = _utc()


class JobEventRow(SQLModel, table=True):
    __tablename__ = "job_event"

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="repair_job.id", index=True)
    at: datetime = _utc()
    actor: str | None = Field(default=None, max_length=150)
    kind: str = Field(max_length=32)
    from_stage: str | None = Field(default=None, max_length=20)
    to_stage: str | None = Field(default=None, max_length=20)
    note: str | None = Field(default=None, sa_type=Text)
    data: dict[str, Any] = _json()


class IdempotencyRow(SQLModel, table=True):
    """A stored response for an Idempotency-Key, per user, so a retried request creates nothing."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("user_id", "key", name="uq_idempotency_user_key"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="staff_user.id")
    key: str = Field(max_length=255)
    fingerprint: str = Field(max_length=64)
    status_code: int
    body: str = Field(sa_type=Text)
    headers: dict[str, str] = _json()
    created_at: datetime = _utc(index=True)


class PartRow(SQLModel, table=True):
    """Our catalogue: our SKU, what it is, the device models it fits."""

    __tablename__ = "part"

    sku: str = Field(primary_key=True, max_length=64)
    description: str = Field(max_length=200)
    models: list[str] = _json()
    created_at: datetime = _utc()
    updated_at: datetime = _utc()


class SupplierRow(SQLModel, table=True):
    """A supplier and how to reach it. Credentials and webhook secrets are Fernet-encrypted (never
    returned by the API); `last_ok_at`/`stale_since` say how fresh its data is."""

    __tablename__ = "supplier"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=120, unique=True)
    adapter: str = Field(max_length=20)
    base_url: str = Field(max_length=500)
    credentials_ciphertext: str | None = Field(default=None, sa_type=Text)
    webhook_secrets_ciphertext: str | None = Field(default=None, sa_type=Text)
    poll_interval_seconds: int = 900
    rate_limit_per_minute: int = 60
    active: bool = True
    last_ok_at: datetime | None = _utc(nullable=True)
    stale_since: datetime | None = _utc(nullable=True)
    last_polled_at: datetime | None = _utc(nullable=True)  # when its latest poll was scheduled (claimed)
    # Its changes feed was read up to here (its own clock, less an overlap): the next poll asks from it.
    feed_watermark: datetime | None = _utc(nullable=True)
    version: int = 1
    created_at: datetime = _utc()
    updated_at: datetime = _utc()


class SupplierSkuRow(SQLModel, table=True):
    """A supplier's SKU mapped to ours (`sku` NULL: seen but not mapped yet, listed for review)."""

    __tablename__ = "supplier_sku"

    supplier_id: int = Field(foreign_key="supplier.id", primary_key=True)
    supplier_sku: str = Field(primary_key=True, max_length=100)
    sku: str | None = Field(default=None, foreign_key="part.sku", index=True, max_length=64)
    updated_at: datetime = _utc()


class SupplierStockRow(SQLModel, table=True):
    """The latest stock a supplier reported for one of its SKUs (webhook or poll), newest fact wins."""

    __tablename__ = "supplier_stock"

    supplier_id: int = Field(foreign_key="supplier.id", primary_key=True)
    supplier_sku: str = Field(primary_key=True, max_length=100)
    available: int
    price_cents: int | None = Field(default=None, sa_type=BigInteger)
    currency: str | None = Field(default=None, max_length=3)
    eta: datetime | None = _utc(nullable=True)
    observed_at: datetime = _utc()  # when the supplier says it was true
    updated_at: datetime = _utc()


class SupplierOrderRow(SQLModel, table=True):
    __tablename__ = "supplier_order"
    __table_args__ = (
        Index("ix_supplier_order_branch_status", "branch_id", "status", "id"),
        # A changes feed names orders by the supplier's id: found a page at a time.
        Index("ix_supplier_order_supplier_ref", "supplier_id", "supplier_ref"),
    )

    id: int | None = Field(default=None, primary_key=True)
    supplier_id: int = Field(foreign_key="supplier.id", index=True)
    branch_id: int = Field(foreign_key="branch.id")
    job_id: int = Field(foreign_key="repair_job.id", index=True)
    supplier_ref: str | None = Field(default=None, max_length=100)
    status: str = Field(max_length=20)
    tracking_number: str | None = Field(default=None, max_length=100)
    choice_reason: str = Field(sa_type=Text)
    placed_by: str = Field(max_length=150)
    placed_at: datetime = _utc()
    updated_at: datetime = _utc()


class PartLineRow(SQLModel, table=True):
    __tablename__ = "part_line"
    __table_args__ = (
        # The late-parts list and the workers scan open lines by ETA.
        Index("ix_part_line_status_eta", "status", "eta"),
        # The escalation sweep's other half: lines on order whose ETA slipped past the promise. Partial, so
        # it holds those few lines only, not every open line (nor the history of fitted ones).
        Index(
            "ix_part_line_slipped",
            "job_id",
            postgresql_where=text(SLIPPED_LINE),
            sqlite_where=text(SLIPPED_LINE),
        ),
        Index("ix_part_line_branch_status", "branch_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="repair_job.id", index=True)
    branch_id: int = Field(foreign_key="branch.id")
    sku: str = Field(max_length=64, foreign_key="part.sku")
    quantity: int
    status: str = Field(max_length=20)
    supplier_id: int | None = Field(default=None, foreign_key="supplier.id", index=True)
    supplier_sku: str | None = Field(default=None, max_length=100)
    order_id: int | None = Field(default=None, foreign_key="supplier_order.id", index=True)
    unit_price_cents: int | None = Field(default=None, sa_type=BigInteger)
    promised_at: datetime | None = _utc(nullable=True)
    eta: datetime | None = _utc(nullable=True)
    shipped_quantity: int = 0
    received_quantity: int = 0
    received_at: datetime | None = _utc(nullable=True)
    fact_at: datetime | None = _utc(nullable=True)
    status_fact_at: datetime | None = _utc(nullable=True)
    cancel_reason: str | None = Field(default=None, sa_type=Text)
    cancelled_by_supplier: bool = False
    version: int = 1
    created_at: datetime = _utc()
    updated_at: datetime = _utc()


class EtaRevisionRow(SQLModel, table=True):
    """Every time a line's ETA moved: the promise history that scorecards and the late list read."""

    __tablename__ = "eta_revision"
    __table_args__ = (Index("ix_eta_revision_supplier_learned", "supplier_id", "learned_at"),)

    id: int | None = Field(default=None, primary_key=True)
    line_id: int = Field(foreign_key="part_line.id", index=True)
    supplier_id: int | None = Field(default=None, foreign_key="supplier.id")
    source: str = Field(max_length=10)
    learned_at: datetime = _utc()
    old_eta: datetime | None = _utc(nullable=True)
    new_eta: datetime = _utc()


class WebhookEventRow(SQLModel, table=True):
    """A supplier webhook we applied, unique per supplier and webhook-id: a redelivery finds it here."""

    __tablename__ = "webhook_event"

    supplier_id: int = Field(foreign_key="supplier.id", primary_key=True)
    webhook_id: str = Field(primary_key=True, max_length=255)
    type: str = Field(max_length=40)
    received_at: datetime = _utc(index=True)


class OutboxRow(SQLModel, table=True):
    """What must leave the process (a message, a re-sourcing, a supplier call), written in the same
    transaction as the change that causes it; the relay hands it to the workers (its id is the task id)."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_pending", "dispatched_at", "available_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40)
    payload: dict[str, Any] = _json()
    job_id: int | None = Field(default=None, foreign_key="repair_job.id", index=True)
    created_at: datetime = _utc()
    available_at: datetime = _utc()  # not before (quiet hours, retry backoff)
    dispatched_at: datetime | None = _utc(nullable=True)
    done_at: datetime | None = _utc(nullable=True)
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_type=Text)


class EscalationRow(SQLModel, table=True):
    """A rung of the late-parts ladder reached by a job for one promise: the unique constraint makes the
    sweep idempotent (a re-run, or two workers at once, records and acts once)."""

    __tablename__ = "escalation"
    __table_args__ = (UniqueConstraint("job_id", "level", "promise_key", name="uq_escalation_job_level_promise"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: int = Field(foreign_key="repair_job.id", index=True)
    level: int
    promise_key: str = Field(max_length=40)  # the parts ETA it was about ("none" when unknown)
    reasons: list[str] = _json()
    created_at: datetime = _utc()
    cleared_at: datetime | None = _utc(nullable=True)


class AlertRow(SQLModel, table=True):
    """The staff feed of a branch (audience staff) and the managers' (audience manager)."""

    __tablename__ = "alert"
    __table_args__ = (Index("ix_alert_branch_created", "branch_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    branch_id: int = Field(foreign_key="branch.id")
    job_id: int | None = Field(default=None, foreign_key="repair_job.id")
    audience: str = Field(max_length=10)
    kind: str = Field(max_length=40)
    message: str = Field(sa_type=Text)
    data: dict[str, Any] = _json()
    created_at: datetime = _utc()
    acknowledged_at: datetime | None = _utc(nullable=True)
    acknowledged_by: str | None = Field(default=None, max_length=150)


class NotificationRow(SQLModel, table=True):
    """A message to a customer and what became of it (one per outbox entry and channel)."""

    __tablename__ = "notification"
    __table_args__ = (UniqueConstraint("outbox_id", "channel", name="uq_notification_outbox_channel"),)

    id: int | None = Field(default=None, primary_key=True)
    outbox_id: int = Field(foreign_key="outbox.id")
    job_id: int = Field(foreign_key="repair_job.id", index=True)
    channel: str = Field(max_length=10)
    template: str = Field(max_length=40)
    language: str = Field(max_length=5)
    recipient: str = Field(max_length=254)
    body: str = Field(sa_type=Text)
    status: str = Field(max_length=12)  # pending, sent, delayed, failed, skipped
    attempts: int = 0
    scheduled_for: datetime = _utc()
    sent_at: datetime | None = _utc(nullable=True)
    provider_id: str | None = Field(default=None, max_length=100)
    error: str | None = Field(default=None, sa_type=Text)
    created_at: datetime = _utc()


branch_t = BranchRow.__table__  # type: ignore[attr-defined]
user_t = StaffUserRow.__table__  # type: ignore[attr-defined]
customer_t = CustomerRow.__table__  # type: ignore[attr-defined]
job_t = RepairJobRow.__table__  # type: ignore[attr-defined]
event_t = JobEventRow.__table__  # type: ignore[attr-defined]
idempotency_t = IdempotencyRow.__table__  # type: ignore[attr-defined]
part_t = PartRow.__table__  # type: ignore[attr-defined]
supplier_t = SupplierRow.__table__  # type: ignore[attr-defined]
supplier_sku_t = SupplierSkuRow.__table__  # type: ignore[attr-defined]
supplier_stock_t = SupplierStockRow.__table__  # type: ignore[attr-defined]
order_t = SupplierOrderRow.__table__  # type: ignore[attr-defined]
line_t = PartLineRow.__table__  # type: ignore[attr-defined]
revision_t = EtaRevisionRow.__table__  # type: ignore[attr-defined]
webhook_t = WebhookEventRow.__table__  # type: ignore[attr-defined]
outbox_t = OutboxRow.__table__  # type: ignore[attr-defined]
escalation_t = EscalationRow.__table__  # type: ignore[attr-defined]
alert_t = AlertRow.__table__  # type: ignore[attr-defined]
notification_t = NotificationRow.__table__  # type: ignore[attr-defined]

__all__ = [
    "AlertRow",
    "BranchRow",
    "CustomerRow",
    "EscalationRow",
    "EtaRevisionRow",
    "IdempotencyRow",
    "JobEventRow",
    "NotificationRow",
    "OutboxRow",
    "PartLineRow",
    "PartRow",
    "RepairJobRow",
    "StaffUserRow",
    "SupplierOrderRow",
    "SupplierRow",
    "SupplierSkuRow",
    "SupplierStockRow",
    "WebhookEventRow",
    "alert_t",
    "branch_t",
    "customer_t",
    "escalation_t",
    "event_t",
    "idempotency_t",
    "job_t",
    "line_t",
    "notification_t",
    "order_t",
    "outbox_t",
    "part_t",
    "revision_t",
    "supplier_sku_t",
    "supplier_stock_t",
    "supplier_t",
    "user_t",
    "webhook_t",
]
