"""What the parts, suppliers and supplier-order endpoints accept and return.

Secrets are write-only: requests may carry an API key and webhook secrets, responses only say whether
they are set.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from annotated_types import Interval, Len, MaxLen
from pydantic import AwareDatetime, BeforeValidator, field_validator, model_validator

from domain.errors import InvalidValue
from domain.model import format_ref
from domain.parts import EtaRevision, Part, PartLine, PartStatus, Supplier, SupplierOrder, normalise_sku
from domain.sourcing import Offer, Scorecard
from integrations.suppliers.base import AdapterKind
from service.api.openapi import Closed, absent, present
from service.api.schemas import Body, Flag, Note, Number, Short, TextRule, filled
from service.persistence.suppliers import SkuMapping
from service.usecases.parts import JobParts, LateItem
from service.usecases.sourcing import Quotes

Quantity = Annotated[int, Number, Interval(ge=1, le=100)]
# Sent in an HTTP header to the supplier: visible ASCII only (anything else cannot be encoded there).
ApiKey = Annotated[str, TextRule(min_length=1, max_length=200, pattern=r"^\s*[!-~]+\s*$", checked=True)]
# Standard Webhooks: `whsec_` + base64 of 24 to 64 bytes (`integrations.webhooks.secret_key` checks it).
WEBHOOK_SECRET_SHAPE = r"^\s*whsec_(?:[A-Za-z0-9+/]{4}){8,21}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?\s*$"  # noqa: S105 - a pattern, not a secret
WebhookSecret = Annotated[str, TextRule(max_length=200, pattern=WEBHOOK_SECRET_SHAPE)]
Url = Annotated[str, filled(500)]
Id = Annotated[int, Number, Interval(ge=1, le=2**31 - 1)]
# Our SKUs (`domain.parts.normalise_sku`), in any case and with the whitespace the body's fields are stripped of.
SKU_PATTERN = r"^\s*[A-Za-z0-9][A-Za-z0-9._-]{0,63}\s*$"
Sku = Annotated[str, TextRule(pattern=SKU_PATTERN)]
Models = Annotated[list[Short], MaxLen(50)]


def _sku(value: str) -> str:
    try:
        return normalise_sku(value)
    except InvalidValue as exc:
        raise ValueError(exc.reason) from exc


class PartIn(Body):
    sku: Sku
    description: Annotated[str, filled(200)]
    models: Models = []

    _norm = field_validator("sku")(_sku)

    def to_domain(self) -> Part:
        return Part(self.sku, self.description, tuple(self.models))


class PartUpdateIn(Body):
    description: Annotated[str, filled(200)]
    models: Models = []


def _not_a_flag(value: Any) -> Any:
    # Lax validation would take true for 1.
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    return value


class LineIn(Body):
    sku: Sku
    # Not `Quantity`: the job page checks the quantity it reads from its form (text) with this model.
    quantity: Annotated[int, BeforeValidator(_not_a_flag), Interval(ge=1, le=100)] = 1

    _norm = field_validator("sku")(_sku)


class LinesIn(Body):
    """Either `{"lines": [{"sku", "quantity"}, ...]}` or one line as `{"sku", "quantity"}`."""

    lines: Annotated[list[Closed[LineIn]], Len(1, 20)] | None = None
    sku: Sku | None = None
    quantity: Quantity | None = None

    @model_validator(mode="after")
    def _one_form(self) -> LinesIn:
        if (self.lines is None) == (self.sku is None):
            raise ValueError("give either lines, or one line's sku (and quantity)")
        if self.sku is not None:
            self.lines = [LineIn(sku=self.sku, quantity=self.quantity or 1)]
        elif self.quantity is not None:
            raise ValueError("quantity goes inside each line")
        return self


# The rules across fields of these bodies, for the schema (their validators check the same).
LINES_FORMS = [
    {"allOf": [present("lines", "array"), absent("sku", "quantity")]},
    {"allOf": [present("sku", "string"), absent("lines")]},
]
LINE_CHANGES = [present("eta", "string"), present("status", "string")]


def _only_text(value: Any) -> Any:
    # Lax validation would take a number of seconds for a date: the schema says an RFC 3339 text.
    if not isinstance(value, str):
        raise ValueError("must be a date and time with its offset, as text")
    return value


class StaffLineStatus(StrEnum):
    """What staff set a line to; the rest of a line's life follows the supplier."""

    FITTED = PartStatus.FITTED.value
    CANCELLED = PartStatus.CANCELLED.value


class LineChangeIn(Body):
    eta: Annotated[AwareDatetime, BeforeValidator(_only_text)] | None = None
    status: StaffLineStatus | None = None
    note: Note | None = None

    @model_validator(mode="after")
    def _something(self) -> LineChangeIn:
        if self.eta is None and self.status is None:
            raise ValueError("give a new eta, a status (fitted or cancelled), or both")
        return self


class OrderIn(Body):
    supplier_id: Id | None = None


class ReceiptLineIn(Body):
    line_id: Id
    quantity: Quantity | None = None


class ReceiptIn(Body):
    """No lines: everything still outstanding on the order arrived."""

    lines: Annotated[list[Closed[ReceiptLineIn]], MaxLen(50)] = []


class CancelOrderIn(Body):
    reason: Note = "cancelled by staff"


class SupplierIn(Body):
    name: Annotated[str, filled(120)]
    adapter: AdapterKind
    base_url: Url
    api_key: ApiKey | None = None
    webhook_secrets: Annotated[list[WebhookSecret], MaxLen(5)] = []
    poll_interval_seconds: Annotated[int, Number, Interval(ge=60, le=86_400)] = 900
    rate_limit_per_minute: Annotated[int, Number, Interval(ge=1, le=6_000)] = 60
    active: Flag = True


class SupplierUpdateIn(Body):
    name: Annotated[str, filled(120)] | None = None
    adapter: AdapterKind | None = None
    base_url: Url | None = None
    api_key: ApiKey | None = None
    clear_api_key: Flag = False
    webhook_secrets: Annotated[list[WebhookSecret], MaxLen(5)] | None = None
    poll_interval_seconds: Annotated[int, Number, Interval(ge=60, le=86_400)] | None = None
    rate_limit_per_minute: Annotated[int, Number, Interval(ge=1, le=6_000)] | None = None
    active: Flag | None = None


class SkuMapIn(Body):
    """Our SKU for the supplier's; null says it is none of ours (reviewed, kept out of the list)."""

    sku: Sku | None

    @field_validator("sku")
    @classmethod
    def _norm(cls, value: str | None) -> str | None:
        return _sku(value) if value is not None else None


# --- responses -------------------------------------------------------------------------------


@dataclass(slots=True)
class PartOut:
    sku: str
    description: str
    models: list[str]


@dataclass(slots=True)
class EtaRevisionOut:
    source: str
    learned_at: datetime
    old_eta: datetime | None
    new_eta: datetime


@dataclass(slots=True)
class LineOut:
    id: int
    sku: str
    quantity: int
    status: PartStatus
    supplier_id: int | None
    order_id: int | None
    unit_price_cents: int | None
    promised_at: datetime | None
    eta: datetime | None
    late_by: timedelta  # ISO 8601 duration behind the promise (PT0S when on time)
    late_by_seconds: int
    late: bool
    shipped_quantity: int
    received_quantity: int
    received_at: datetime | None
    eta_history: list[EtaRevisionOut]


@dataclass(slots=True)
class JobPartsOut:
    ref: str
    stage: str
    tier: str
    version: int
    due_at: datetime
    parts_eta: datetime | None
    forecast_ready_at: datetime | None
    at_risk: bool
    waiting_without_date: bool
    lines: list[LineOut]


@dataclass(slots=True)
class OfferOut:
    supplier_id: int
    supplier: str
    supplier_sku: str
    stock: int
    price_cents: int | None  # per unit
    currency: str
    eta: datetime | None
    expected_at: datetime | None
    orderable: bool


@dataclass(slots=True)
class ChoiceOut:
    supplier_id: int
    supplier: str
    reason: str


@dataclass(slots=True)
class QuoteFailureOut:
    supplier_id: int
    supplier: str
    reason: str


@dataclass(slots=True)
class QuotesOut:
    ref: str
    line_id: int
    sku: str
    quantity: int
    quotes: list[OfferOut]
    failures: list[QuoteFailureOut]
    recommended: ChoiceOut | None
    no_recommendation_reason: str | None


@dataclass(slots=True)
class OrderOut:
    id: int
    po: str
    supplier_id: int
    supplier_ref: str | None
    job_ref: str
    status: str
    tracking_number: str | None
    choice_reason: str
    placed_by: str
    placed_at: datetime
    updated_at: datetime | None
    lines: list[LineOut]


@dataclass(slots=True)
class OrderPageOut:
    items: list[OrderOut]
    next_cursor: str | None


@dataclass(slots=True)
class LateLineOut:
    """One late line, with what is at stake: the job, its tier and due date, and the SLA risk."""

    ref: str  # the job
    stage: str
    tier: str
    due_at: datetime
    sla_at_risk: bool
    forecast_ready_at: datetime | None
    line_id: int
    sku: str
    quantity: int
    status: PartStatus
    order_id: int | None
    supplier_id: int | None
    supplier: str | None
    supplier_stale_since: datetime | None
    promised_at: datetime | None
    eta: datetime | None
    late_by: timedelta
    late_by_seconds: int
    escalation: str | None = None  # the job's open rung of the ladder: late, at_risk, breached


@dataclass(slots=True)
class SupplierOut:
    id: int
    name: str
    adapter: str
    base_url: str
    poll_interval_seconds: int
    rate_limit_per_minute: int
    active: bool
    has_api_key: bool
    webhook_secret_count: int
    last_ok_at: datetime | None
    stale_since: datetime | None


@dataclass(slots=True)
class SkuMappingOut:
    supplier_sku: str
    sku: str | None
    available: int | None
    observed_at: datetime | None


@dataclass(slots=True)
class ScorecardOut:
    supplier_id: int
    window_days: int
    lines: int
    due: int
    on_time_rate: float | None
    mean_delay_hours: float | None
    p90_delay_hours: float | None
    slip_rate: float | None
    fill_rate: float | None


@dataclass(slots=True)
class WebhookOut:
    id: str
    type: str
    outcome: str


def whole_seconds(delta: timedelta) -> timedelta:
    """`late_by` as a `duration` (RFC 3339), which has no fraction of a second; as `late_by_seconds` counts it."""
    return timedelta(seconds=int(delta.total_seconds()))


def part_out(part: Part) -> PartOut:
    return PartOut(part.sku, part.description, list(part.models))


def line_out(line: PartLine, history: list[EtaRevision] | None, now: datetime) -> LineOut:
    return LineOut(
        id=line.id or 0,
        sku=line.sku,
        quantity=line.quantity,
        status=line.status,
        supplier_id=line.supplier_id,
        order_id=line.order_id,
        unit_price_cents=line.unit_price_cents,
        promised_at=line.promised_at,
        eta=line.eta,
        late_by=whole_seconds(line.late_by(now)),
        late_by_seconds=int(line.late_by(now).total_seconds()),
        late=line.is_late(now),
        shipped_quantity=line.shipped_quantity,
        received_quantity=line.received_quantity,
        received_at=line.received_at,
        eta_history=[EtaRevisionOut(r.source.value, r.learned_at, r.old_eta, r.new_eta) for r in history or []],
    )


def job_parts_out(parts: JobParts, now: datetime) -> JobPartsOut:
    job, f = parts.job, parts.forecast
    return JobPartsOut(
        ref=job.ref,
        stage=job.stage.value,
        tier=job.tier.value,
        version=job.version,
        due_at=job.due_at,
        parts_eta=f.parts_eta,
        forecast_ready_at=f.ready_at,
        at_risk=f.at_risk,
        waiting_without_date=f.waiting_without_date,
        lines=[line_out(line, parts.history.get(line.id or 0), now) for line in parts.lines],
    )


def offer_out(offer: Offer) -> OfferOut:
    return OfferOut(
        offer.supplier_id,
        offer.supplier_name,
        offer.supplier_sku,
        offer.available,
        offer.unit_price_cents,
        offer.currency,
        offer.eta,
        offer.expected_at,
        offer.orderable,
    )


def quotes_out(q: Quotes) -> QuotesOut:
    choice = q.choice
    return QuotesOut(
        ref=q.job.ref,
        line_id=q.line.id or 0,
        sku=q.line.sku,
        quantity=q.line.quantity,
        quotes=[offer_out(o) for o in q.offers],
        failures=[QuoteFailureOut(f.supplier_id, f.supplier_name, f.reason) for f in q.failures],
        recommended=ChoiceOut(choice.offer.supplier_id, choice.offer.supplier_name, choice.reason) if choice else None,
        no_recommendation_reason=q.no_choice_reason,
    )


def order_out(order: SupplierOrder, now: datetime, history: dict[int, list[EtaRevision]] | None = None) -> OrderOut:
    return OrderOut(
        id=order.id or 0,
        po=order.po,
        supplier_id=order.supplier_id,
        supplier_ref=order.supplier_ref,
        job_ref=format_ref(order.job_id),
        status=order.status.value,
        tracking_number=order.tracking_number,
        choice_reason=order.choice_reason,
        placed_by=order.placed_by,
        placed_at=order.placed_at,
        updated_at=order.updated_at,
        lines=[line_out(line, (history or {}).get(line.id or 0), now) for line in order.lines],
    )


def late_out(item: LateItem, escalation: str | None = None) -> LateLineOut:
    late, line = item.late, item.late.line
    return LateLineOut(
        ref=format_ref(late.ref_id),
        stage=late.stage.value,
        tier=late.tier.value,
        due_at=late.due_at,
        sla_at_risk=item.forecast.at_risk,
        forecast_ready_at=item.forecast.ready_at,
        line_id=line.id or 0,
        sku=line.sku,
        quantity=line.quantity,
        status=line.status,
        order_id=line.order_id,
        supplier_id=line.supplier_id,
        supplier=late.supplier_name,
        supplier_stale_since=late.supplier_stale_since,
        promised_at=line.promised_at,
        eta=line.eta,
        late_by=whole_seconds(item.late_by),
        late_by_seconds=int(item.late_by.total_seconds()),
        escalation=escalation,
    )


def supplier_out(s: Supplier) -> SupplierOut:
    return SupplierOut(
        s.id,
        s.name,
        s.adapter,
        s.base_url,
        s.poll_interval_seconds,
        s.rate_limit_per_minute,
        s.active,
        s.has_api_key,
        s.webhook_secret_count,
        s.last_ok_at,
        s.stale_since,
    )


def mapping_out(m: SkuMapping) -> SkuMappingOut:
    return SkuMappingOut(m.supplier_sku, m.sku, m.available, m.observed_at)


def scorecard_out(supplier_id: int, card: Scorecard, window_days: int) -> ScorecardOut:
    return ScorecardOut(
        supplier_id,
        window_days,
        card.lines,
        card.due,
        card.on_time_rate,
        card.mean_delay_hours,
        card.p90_delay_hours,
        card.slip_rate,
        card.fill_rate,
    )
