"""What the API accepts and returns. Request bodies forbid unknown fields (no mass assignment of
stage, version or ids) and bound every string and list; responses are plain dataclasses."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from annotated_types import Interval, Len, MaxLen
from litestar.params import KwargDefinition
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    GetCoreSchemaHandler,
    field_validator,
    model_validator,
)
from pydantic_core import CoreSchema, core_schema

from domain.errors import InvalidValue
from domain.identifiers import normalise_imei, normalise_phone, normalise_serial
from domain.model import (
    Customer,
    Device,
    EstimateLine,
    FaultCategory,
    JobEvent,
    LineKind,
    Outcome,
    RepairJob,
    Tier,
)
from domain.stages import Role, Stage
from service.api.openapi import FILLED, NO_NUL, Closed
from service.usecases.jobs import IntakeCommand

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")


@dataclass(frozen=True)
class TextRule(KwargDefinition):
    """A text field's rule, read by both sides: pydantic strips the text and checks its length; Litestar documents
    length and `pattern` (it drops pydantic's own constraints inside `X | None` and lists). The pattern documents
    what the models' validators check (no NUL, an SKU's or a pickup code's shape) unless `checked` here."""

    checked: bool = False

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        stripped = core_schema.str_schema(
            strip_whitespace=True, min_length=self.min_length, pattern=self.pattern if self.checked else None
        )
        if self.max_length is None:
            return stripped
        # The limit is on the text as sent, as the schema says: stripping must not let a longer one through.
        sent = core_schema.str_schema(strip_whitespace=False, max_length=self.max_length)
        return core_schema.chain_schema([sent, stripped])


def filled(max_length: int) -> TextRule:
    """A required text: 1 to `max_length` characters once stripped (so not only whitespace)."""
    return TextRule(min_length=1, max_length=max_length, pattern=FILLED)


def optional_text(max_length: int) -> TextRule:
    """A text that may be empty: at most `max_length` characters once stripped."""
    return TextRule(max_length=max_length, pattern=NO_NUL)


def _only_bool(value: Any) -> Any:
    # Not `StrictBool`: Litestar validates bodies with `strict=False`, which overrides it ("yes" -> True).
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _only_number(value: Any) -> Any:
    # Likewise, lax validation would take true or "5" for a number (5.0 is a whole number, as in JSON Schema).
    if isinstance(value, bool | str):
        raise ValueError("must be a whole number")
    return value


Flag = Annotated[bool, BeforeValidator(_only_bool)]
Number = BeforeValidator(_only_number)  # on every integer of a body: Annotated[int, Number, Interval(...)]
# Bounds as annotated-types, not `Field(...)`: Litestar's schema keeps these inside `X | None`, not Field's.
Name = Annotated[str, filled(200)]
Short = Annotated[str, filled(80)]
Note = Annotated[str, filled(4000)]
Text = Annotated[str, optional_text(2000)]
Cents = Annotated[int, Number, Interval(ge=0, le=100_000_000)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, str_strip_whitespace=True)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold U+0000: refuse it as bad input rather than fail in the database.
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(text, str) and "\x00" in text for text in texts):
            raise ValueError("must not contain NUL characters")
        return value


def _check(fn: Any, value: str) -> str:
    try:
        result: str = fn(value)
    except InvalidValue as exc:
        raise ValueError(exc.reason) from exc
    return result


class CustomerIn(Body):
    name: Name
    phone: Annotated[str, filled(32)]
    email: Annotated[str, optional_text(254)] | None = None
    sms_consent: Flag = False
    language: Literal["fr", "en"] = "fr"

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str) -> str:
        return _check(normalise_phone, value)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not _EMAIL.match(value):
            raise ValueError("not an email address")
        return value

    def to_domain(self) -> Customer:
        return Customer(None, self.name, self.phone, self.email, self.sms_consent, self.language)


class DeviceIn(Body):
    brand: Short
    model: Short
    imei: Annotated[str, filled(32)] | None = None
    serial_number: Annotated[str, filled(40)] | None = None
    colour: Annotated[str, optional_text(40)] | None = None
    condition: Text = ""
    accessories: Annotated[list[Short], MaxLen(20)] = []

    @field_validator("imei")
    @classmethod
    def _imei(cls, value: str | None) -> str | None:
        return None if value is None else _check(normalise_imei, value)

    @field_validator("serial_number")
    @classmethod
    def _serial(cls, value: str | None) -> str | None:
        return None if value is None else _check(normalise_serial, value)

    @model_validator(mode="after")
    def _identified(self) -> DeviceIn:
        if self.imei is None and self.serial_number is None:
            raise ValueError("give the device's imei or its serial_number")
        return self

    def to_domain(self) -> Device:
        return Device(
            self.brand, self.model, self.imei, self.serial_number, self.colour, self.condition, tuple(self.accessories)
        )


class FaultIn(Body):
    category: FaultCategory
    description: Annotated[str, filled(2000)]


class IntakeIn(Body):
    customer: Closed[CustomerIn]
    device: Closed[DeviceIn]
    fault: Closed[FaultIn]
    tier: Tier
    preapproved_budget_cents: Cents | None = None
    passcode: Annotated[str, filled(64)] | None = None
    branch: Annotated[str, filled(32)] | None = None
    # A manager taking an express job beyond the day's capacity says why (recorded with the intake).
    express_override_reason: Annotated[str, filled(500)] | None = None

    def to_command(self) -> IntakeCommand:
        """The intake use case's command: the API and the counter page build it from the same body."""
        return IntakeCommand(
            customer=self.customer.to_domain(),
            device=self.device.to_domain(),
            fault_category=self.fault.category,
            fault_description=self.fault.description,
            tier=self.tier,
            preapproved_budget_cents=self.preapproved_budget_cents,
            passcode=self.passcode,
            branch_code=self.branch,
            express_override_reason=self.express_override_reason,
        )


class TransitionIn(Body):
    to: Stage
    note: Note | None = None
    outcome: Outcome | None = None


class EstimateLineIn(Body):
    kind: LineKind
    description: Name
    quantity: Annotated[int, Number, Interval(ge=1, le=1000)] = 1
    unit_price_cents: Cents
    sku: Annotated[str, filled(64)] | None = None

    def to_domain(self) -> EstimateLine:
        return EstimateLine(self.kind, self.description, self.quantity, self.unit_price_cents, self.sku)


class EstimateIn(Body):
    lines: Annotated[list[Closed[EstimateLineIn]], Len(1, 50)]
    note: Note | None = None


class ApprovalIn(Body):
    approved: Flag
    note: Note | None = None


class AssignmentIn(Body):
    technician: Annotated[str, filled(150)] | None


class NoteIn(Body):
    note: Note


class TokenIn(Body):
    username: Annotated[str, filled(150)]
    password: Annotated[str, filled(1024)]


# --- responses -------------------------------------------------------------------------------


@dataclass(slots=True)
class TokenOut:
    access_token: str
    token_type: str
    expires_in: int


@dataclass(slots=True)
class CustomerOut:
    id: int | None
    name: str
    phone: str
    email: str | None
    sms_consent: bool
    language: str


@dataclass(slots=True)
class DeviceOut:
    brand: str
    model: str
    imei: str | None
    serial_number: str | None
    colour: str | None
    condition: str
    accessories: list[str]


@dataclass(slots=True)
class FaultOut:
    category: FaultCategory
    description: str


@dataclass(slots=True)
class EstimateLineOut:
    kind: LineKind
    description: str
    quantity: int
    unit_price_cents: int
    total_cents: int
    sku: str | None


@dataclass(slots=True)
class EstimateOut:
    lines: list[EstimateLineOut]
    total_cents: int
    currency: str = "EUR"


@dataclass(slots=True)
class ApprovalOut:
    approved: bool
    by: str
    at: datetime
    source: str
    note: str | None


@dataclass(slots=True)
class JobOut:
    ref: str
    branch: str
    stage: Stage
    tier: Tier
    due_at: datetime
    customer: CustomerOut
    device: DeviceOut
    fault: FaultOut
    technician: str | None
    estimate: EstimateOut
    approval: ApprovalOut | None
    preapproved_budget_cents: int | None
    outcome: Outcome | None
    held_from: Stage | None
    has_passcode: bool
    # Pickup: the shelf/bin holding the device while it waits (never the code), then the hand-over.
    pickup_slot: str | None
    collected_at: datetime | None
    paid_cents: int | None
    version: int
    created_at: datetime
    updated_at: datetime
    allowed_transitions: list[str] = field(default_factory=list)
    # The customer's link: a secret, so only in the intake answer (GET /api/v1/jobs/{ref}/tracking gives it later).
    tracking_url: str | None = None
    # Express slots left today at the job's branch, after this intake: only the intake answer carries it.
    express_slots_left: int | None = None


@dataclass(slots=True)
class JobPageOut:
    items: list[JobOut]
    next_cursor: str | None


@dataclass(slots=True)
class EventOut:
    id: int | None
    at: datetime
    actor: str | None
    kind: str
    from_stage: Stage | None
    to_stage: Stage | None
    note: str | None
    data: dict[str, Any]


@dataclass(slots=True)
class PasscodeOut:
    passcode: str


def job_out(job: RepairJob, role: Role) -> JobOut:
    c, d = job.customer, job.device
    return JobOut(
        ref=job.ref,
        branch=job.branch_code,
        stage=job.stage,
        tier=job.tier,
        due_at=job.due_at,
        customer=CustomerOut(c.id, c.name, c.phone, c.email, c.sms_consent, c.language),
        device=DeviceOut(d.brand, d.model, d.imei, d.serial_number, d.colour, d.condition, list(d.accessories)),
        fault=FaultOut(job.fault_category, job.fault_description),
        technician=job.technician.username if job.technician else None,
        estimate=EstimateOut(
            [
                EstimateLineOut(ln.kind, ln.description, ln.quantity, ln.unit_price_cents, ln.total_cents, ln.sku)
                for ln in job.estimate
            ],
            job.estimate_total_cents,
        ),
        approval=ApprovalOut(a.approved, a.by, a.at, a.source.value, a.note) if (a := job.approval) else None,
        preapproved_budget_cents=job.preapproved_budget_cents,
        outcome=job.outcome,
        held_from=job.held_from,
        has_passcode=job.has_passcode,
        pickup_slot=job.pickup_slot,
        collected_at=job.collected_at,
        paid_cents=job.paid_cents,
        version=job.version,
        created_at=job.created_at,
        updated_at=job.updated_at,
        allowed_transitions=job.allowed_targets(role),
    )


def event_out(event: JobEvent) -> EventOut:
    return EventOut(
        event.id,
        event.at,
        event.actor,
        event.kind.value,
        event.from_stage,
        event.to_stage,
        event.note,
        dict(event.data),
    )
