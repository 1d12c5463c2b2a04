"""Which supplier to order from, and how reliable each supplier has been.

A supplier's ETA is a promise; its scorecard says how well it keeps them. Sourcing judges offers on the
*expected* arrival (the quoted ETA plus the supplier's usual delay), so a supplier that is always three
days late is not the "earliest" one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import mean

from domain.errors import RuleConflict
from domain.model import Tier

WINDOW = timedelta(days=90)


@dataclass(frozen=True, slots=True)
class Offer:
    supplier_id: int
    supplier_name: str
    supplier_sku: str
    available: int
    unit_price_cents: int | None
    currency: str
    eta: datetime | None
    usual_delay: timedelta = timedelta(0)  # the supplier's mean delay over the scorecard window
    orderable: bool = True  # a stock feed tells us prices and dates but takes no orders

    @property
    def expected_at(self) -> datetime | None:
        return self.eta + self.usual_delay if self.eta is not None else None


@dataclass(frozen=True, slots=True)
class Choice:
    offer: Offer
    reason: str


def choose_offer(
    offers: Sequence[Offer],
    *,
    tier: Tier,
    quantity: int,
    budget_cents: int | None,
    due_at: datetime,
    ready_at: Callable[[datetime], datetime],
) -> Choice:
    """Express: the earliest expected arrival within the pre-approved budget (speed over price).
    Standard: the cheapest offer that still meets `due_at`, else the earliest.

    `ready_at` turns a parts arrival into the job's forecast ready time (business calendar, repair time).
    """
    dated = [o for o in offers if o.orderable and o.expected_at is not None and o.unit_price_cents is not None]
    if not dated:
        raise RuleConflict("no supplier we can order from offered this part with a price and a delivery date")
    earliest = min(dated, key=_by_arrival)
    if tier is Tier.EXPRESS:
        if budget_cents is None:
            return Choice(earliest, "express: earliest expected delivery (no pre-approved budget)")
        affordable = [o for o in dated if _total(o, quantity) <= budget_cents]
        if not affordable:
            raise RuleConflict(
                f"no offer fits the pre-approved budget of {budget_cents} cents: choose a supplier explicitly"
            )
        best = min(affordable, key=_by_arrival)
        return Choice(best, f"express: earliest expected delivery within the budget of {budget_cents} cents")
    in_time = [o for o in dated if ready_at(_arrival(o)) <= due_at]
    if in_time:
        cheapest = min(in_time, key=lambda o: (_total(o, quantity), _arrival(o), o.supplier_id))
        return Choice(cheapest, "standard: cheapest offer that still meets the due date")
    return Choice(earliest, "standard: no offer meets the due date, so the earliest expected delivery")


def _arrival(offer: Offer) -> datetime:
    assert offer.expected_at is not None
    return offer.expected_at


def _by_arrival(offer: Offer) -> tuple[datetime, int, int]:
    return (_arrival(offer), offer.unit_price_cents or 0, offer.supplier_id)


def _total(offer: Offer, quantity: int) -> int:
    return (offer.unit_price_cents or 0) * quantity


@dataclass(frozen=True, slots=True)
class LineRecord:
    """What the scorecard needs of one part line ordered from the supplier."""

    quantity: int
    received_quantity: int
    promised_at: datetime | None
    received_at: datetime | None
    eta: datetime | None
    slipped: bool  # its ETA moved later at least once after the order
    cancelled_by_us: bool = False


@dataclass(frozen=True, slots=True)
class Scorecard:
    lines: int
    due: int  # lines whose promise date has passed (or that arrived): the ones that count
    on_time_rate: float | None
    mean_delay_hours: float | None
    p90_delay_hours: float | None
    slip_rate: float | None
    fill_rate: float | None

    @property
    def usual_delay(self) -> timedelta:
        return timedelta(hours=self.mean_delay_hours or 0.0)


def scorecard(records: Sequence[LineRecord], now: datetime) -> Scorecard:
    """On-time rate, mean and p90 delay over lines that are due (arrived, or past their promise);
    slip rate over every line ordered; fill rate = quantity received of what was due by now."""
    lines = [r for r in records if not r.cancelled_by_us and r.promised_at is not None]
    due = [r for r in lines if r.received_at is not None or (r.promised_at is not None and r.promised_at <= now)]
    delays = [_delay(r, now).total_seconds() / 3600 for r in due]
    due_quantity = sum(r.quantity for r in due)
    return Scorecard(
        lines=len(lines),
        due=len(due),
        on_time_rate=_ratio(sum(1 for d in delays if d <= 0), len(due)),
        mean_delay_hours=round(mean(delays), 2) if delays else None,
        p90_delay_hours=round(_percentile(delays, 0.9), 2) if delays else None,
        slip_rate=_ratio(sum(1 for r in lines if r.slipped), len(lines)),
        fill_rate=_ratio(sum(min(r.received_quantity, r.quantity) for r in due), due_quantity),
    )


def _delay(record: LineRecord, now: datetime) -> timedelta:
    assert record.promised_at is not None
    arrival = record.received_at or max(now, record.eta or now)
    return max(arrival - record.promised_at, timedelta(0))


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile: the smallest value with at least q of the values at or below it."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 1))  # ceil(n * q), at least 1
    return ordered[int(rank) - 1]
