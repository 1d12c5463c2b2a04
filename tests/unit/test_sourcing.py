"""Which supplier to order from (judged on expected arrival, not the quoted ETA), and suppliers' scorecards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import RuleConflict
from domain.model import Tier
from domain.sourcing import Choice, LineRecord, Offer, Scorecard, choose_offer, scorecard

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
DUE = NOW + 3 * DAY


def offer(
    supplier_id: int,
    *,
    price: int | None,
    eta: datetime | None,
    usual_delay: timedelta = timedelta(0),
    orderable: bool = True,
) -> Offer:
    return Offer(
        supplier_id,
        f"supplier {supplier_id}",
        f"S{supplier_id}-OLED",
        available=5,
        unit_price_cents=price,
        currency="EUR",
        eta=eta,
        usual_delay=usual_delay,
        orderable=orderable,
    )


def plus(delay: timedelta) -> Callable[[datetime], datetime]:
    """A `ready_at` that puts the job `delay` after its parts arrive."""
    return lambda arrival: arrival + delay


ON_ARRIVAL = plus(timedelta(0))


def choose(
    offers: list[Offer],
    *,
    tier: Tier,
    quantity: int = 1,
    budget_cents: int | None = None,
    due_at: datetime = DUE,
    ready_at: Callable[[datetime], datetime] = ON_ARRIVAL,
) -> Choice:
    return choose_offer(
        offers, tier=tier, quantity=quantity, budget_cents=budget_cents, due_at=due_at, ready_at=ready_at
    )


# Fast and dear, middling, slow and cheap.
FAST = offer(1, price=12000, eta=NOW + DAY)
MIDDLE = offer(2, price=8000, eta=NOW + 2 * DAY)
SLOW = offer(3, price=5000, eta=NOW + 4 * DAY)
OFFERS = [SLOW, FAST, MIDDLE]


def test_expected_arrival_is_the_eta_plus_the_usual_delay() -> None:
    assert offer(1, price=1, eta=NOW, usual_delay=5 * HOUR).expected_at == NOW + 5 * HOUR
    assert offer(1, price=1, eta=None, usual_delay=5 * HOUR).expected_at is None


# --- express -----------------------------------------------------------------------------------


def test_express_without_a_budget_takes_the_earliest_whatever_it_costs() -> None:
    choice = choose(OFFERS, tier=Tier.EXPRESS)
    assert choice.offer == FAST
    assert "no pre-approved budget" in choice.reason


def test_express_takes_the_earliest_within_the_budget() -> None:
    choice = choose(OFFERS, tier=Tier.EXPRESS, budget_cents=9000)
    assert choice.offer == MIDDLE
    assert "9000" in choice.reason


def test_express_budget_is_for_the_whole_quantity() -> None:
    assert choose(OFFERS, tier=Tier.EXPRESS, quantity=2, budget_cents=16000).offer == MIDDLE
    assert choose(OFFERS, tier=Tier.EXPRESS, quantity=2, budget_cents=15999).offer == SLOW


def test_express_budget_is_inclusive() -> None:
    assert choose(OFFERS, tier=Tier.EXPRESS, budget_cents=12000).offer == FAST


def test_express_with_no_offer_in_the_budget_is_a_conflict() -> None:
    with pytest.raises(RuleConflict, match="4999"):
        choose(OFFERS, tier=Tier.EXPRESS, budget_cents=4999)


def test_express_judges_the_expected_arrival_not_the_quoted_eta() -> None:
    always_late = offer(1, price=9000, eta=NOW + DAY, usual_delay=3 * DAY)  # expected NOW + 4 days
    reliable = offer(2, price=9000, eta=NOW + 2 * DAY)
    assert choose([always_late, reliable], tier=Tier.EXPRESS).offer == reliable
    assert choose([always_late, reliable], tier=Tier.EXPRESS, budget_cents=10000).offer == reliable


def test_express_ties_on_arrival_go_to_the_cheaper_then_the_lower_supplier_id() -> None:
    dear = offer(1, price=9000, eta=NOW + DAY)
    cheap_b = offer(3, price=7000, eta=NOW + DAY)
    cheap_a = offer(2, price=7000, eta=NOW + DAY)
    for offers in ([dear, cheap_b, cheap_a], [cheap_a, cheap_b, dear], [cheap_b, dear, cheap_a]):
        assert choose(offers, tier=Tier.EXPRESS).offer == cheap_a
        assert choose(offers, tier=Tier.EXPRESS, budget_cents=9000).offer == cheap_a


# --- standard ----------------------------------------------------------------------------------


def test_standard_takes_the_cheapest_offer_that_still_meets_the_due_date() -> None:
    choice = choose(OFFERS, tier=Tier.STANDARD, due_at=NOW + 3 * DAY)
    assert choice.offer == MIDDLE  # SLOW is cheaper but arrives after the due date
    assert choice.reason == "standard: cheapest offer that still meets the due date"


def test_standard_takes_the_cheapest_when_everything_is_in_time() -> None:
    assert choose(OFFERS, tier=Tier.STANDARD, due_at=NOW + 10 * DAY).offer == SLOW


def test_standard_counts_the_repair_time_after_the_parts_arrive() -> None:
    # Without the repair time SLOW (NOW + 4 days) would meet a due date of NOW + 4 days 12 hours.
    due = NOW + 4 * DAY + 12 * HOUR
    assert choose(OFFERS, tier=Tier.STANDARD, due_at=due).offer == SLOW
    assert choose(OFFERS, tier=Tier.STANDARD, due_at=due, ready_at=plus(DAY)).offer == MIDDLE


def test_standard_asks_ready_at_about_the_expected_arrival() -> None:
    seen: list[datetime] = []

    def ready_at(arrival: datetime) -> datetime:
        seen.append(arrival)
        return arrival

    late = offer(1, price=100, eta=NOW + DAY, usual_delay=2 * DAY)
    choose([late], tier=Tier.STANDARD, ready_at=ready_at)
    assert seen == [NOW + 3 * DAY]


def test_standard_ready_exactly_at_the_due_date_is_in_time() -> None:
    assert choose(OFFERS, tier=Tier.STANDARD, due_at=NOW + 4 * DAY).offer == SLOW
    assert choose(OFFERS, tier=Tier.STANDARD, due_at=NOW + 4 * DAY - timedelta(seconds=1)).offer == MIDDLE


def test_standard_with_nothing_in_time_takes_the_earliest() -> None:
    choice = choose(OFFERS, tier=Tier.STANDARD, due_at=NOW + HOUR)
    assert choice.offer == FAST
    assert "no offer meets the due date" in choice.reason


def test_standard_judges_the_expected_arrival_not_the_quoted_eta() -> None:
    cheap_but_late = offer(1, price=3000, eta=NOW + DAY, usual_delay=3 * DAY)  # expected NOW + 4 days
    reliable = offer(2, price=6000, eta=NOW + 2 * DAY)
    assert choose([cheap_but_late, reliable], tier=Tier.STANDARD, due_at=NOW + 3 * DAY).offer == reliable
    # and when nothing is in time, "earliest" is the reliable one too
    assert choose([cheap_but_late, reliable], tier=Tier.STANDARD, due_at=NOW).offer == reliable


def test_standard_ties_on_price_go_to_the_earlier_then_the_lower_supplier_id() -> None:
    later = offer(1, price=5000, eta=NOW + 2 * DAY)
    sooner_b = offer(3, price=5000, eta=NOW + DAY)
    sooner_a = offer(2, price=5000, eta=NOW + DAY)
    for offers in ([later, sooner_b, sooner_a], [sooner_a, sooner_b, later], [sooner_b, later, sooner_a]):
        assert choose(offers, tier=Tier.STANDARD).offer == sooner_a


# --- offers that do not count ------------------------------------------------------------------


@pytest.mark.parametrize(
    "unusable",
    [
        offer(9, price=1, eta=NOW + HOUR, orderable=False),
        offer(9, price=None, eta=NOW + HOUR),
        offer(9, price=1, eta=None),
    ],
    ids=["not-orderable", "no-price", "no-eta"],
)
@pytest.mark.parametrize("tier", list(Tier))
def test_offers_without_a_price_a_date_or_a_way_to_order_are_ignored(unusable: Offer, tier: Tier) -> None:
    # The unusable offer would be both the cheapest and the earliest.
    assert choose([unusable, *OFFERS], tier=tier).offer != unusable
    assert choose([unusable, *OFFERS], tier=tier, budget_cents=100_000).offer != unusable
    with pytest.raises(RuleConflict):
        choose([unusable], tier=tier)


def test_no_offers_at_all_is_a_conflict() -> None:
    with pytest.raises(RuleConflict):
        choose([], tier=Tier.STANDARD)


def test_a_free_part_is_a_price() -> None:
    free = replace(SLOW, unit_price_cents=0)
    assert choose([free, FAST], tier=Tier.STANDARD, due_at=NOW + 10 * DAY).offer == free


# --- scorecard ---------------------------------------------------------------------------------

PROMISED = NOW - 10 * DAY


def record(
    *,
    delay: timedelta | None = None,
    promised_at: datetime | None = PROMISED,
    quantity: int = 1,
    received_quantity: int | None = None,
    eta: datetime | None = None,
    slipped: bool = False,
    cancelled_by_us: bool = False,
) -> LineRecord:
    """A line received `delay` after its promise (None: not received)."""
    received_at = promised_at + delay if delay is not None and promised_at is not None else None
    if received_quantity is None:
        received_quantity = quantity if received_at is not None else 0
    return LineRecord(quantity, received_quantity, promised_at, received_at, eta, slipped, cancelled_by_us)


def test_an_empty_scorecard_has_no_figures() -> None:
    assert scorecard([], NOW) == Scorecard(0, 0, None, None, None, None, None)
    assert scorecard([], NOW).usual_delay == timedelta(0)


def test_on_time_rate_counts_lines_received_by_their_promise() -> None:
    card = scorecard([record(delay=-DAY), record(delay=timedelta(0)), record(delay=HOUR), record(delay=DAY)], NOW)
    assert card.due == 4
    assert card.on_time_rate == 0.5


def test_mean_and_p90_delay_in_hours() -> None:
    records = [record(delay=h * HOUR) for h in range(1, 11)]  # 1 to 10 hours late
    card = scorecard(records, NOW)
    assert card.mean_delay_hours == 5.5
    assert card.p90_delay_hours == 9.0  # nearest rank: the 9th of 10
    assert card.usual_delay == timedelta(hours=5.5)
    assert card.on_time_rate == 0.0


def test_p90_is_the_nearest_rank_not_an_interpolation() -> None:
    eleven = [record(delay=h * HOUR) for h in range(11)]  # 0 to 10 hours; ceil(9.9) = 10th value
    assert scorecard(eleven, NOW).p90_delay_hours == 9.0
    twenty = [record(delay=h * HOUR) for h in range(1, 21)]  # ceil(18) = 18th value
    assert scorecard(twenty, NOW).p90_delay_hours == 18.0
    one = [record(delay=7 * HOUR)]
    assert scorecard(one, NOW).p90_delay_hours == 7.0


def test_early_lines_count_as_no_delay_not_negative() -> None:
    card = scorecard([record(delay=-2 * DAY), record(delay=4 * HOUR)], NOW)
    assert card.mean_delay_hours == 2.0
    assert card.on_time_rate == 0.5


def test_a_line_not_received_past_its_promise_is_late_until_now() -> None:
    card = scorecard([record(promised_at=NOW - 6 * HOUR)], NOW)
    assert card.due == 1
    assert card.on_time_rate == 0.0
    assert card.mean_delay_hours == 6.0
    assert card.fill_rate == 0.0


def test_a_line_past_its_promise_with_a_later_eta_is_late_until_that_eta() -> None:
    card = scorecard([record(promised_at=NOW - 6 * HOUR, eta=NOW + 18 * HOUR)], NOW)
    assert card.mean_delay_hours == 24.0


def test_lines_not_yet_due_count_only_for_the_slip_rate() -> None:
    due = record(delay=2 * HOUR)
    not_yet = record(promised_at=NOW + DAY, eta=NOW + 3 * DAY, slipped=True)
    card = scorecard([due, not_yet], NOW)
    assert (card.lines, card.due) == (2, 1)
    assert card.on_time_rate == 0.0
    assert card.mean_delay_hours == 2.0
    assert card.p90_delay_hours == 2.0
    assert card.fill_rate == 1.0
    assert card.slip_rate == 0.5


def test_a_line_received_before_its_promise_date_counts_already() -> None:
    early = record(promised_at=NOW + DAY, delay=-2 * DAY)  # received yesterday, promised for tomorrow
    card = scorecard([early], NOW)
    assert card.due == 1
    assert card.on_time_rate == 1.0


def test_only_lines_not_yet_due_leave_the_delay_figures_empty() -> None:
    card = scorecard([record(promised_at=NOW + DAY, slipped=True)], NOW)
    assert (card.lines, card.due) == (1, 0)
    assert card.on_time_rate is None
    assert card.mean_delay_hours is None
    assert card.p90_delay_hours is None
    assert card.fill_rate is None
    assert card.slip_rate == 1.0


def test_slip_rate_is_over_every_line_ordered() -> None:
    records = [record(delay=HOUR, slipped=True), record(delay=HOUR), record(delay=HOUR), record(delay=HOUR)]
    assert scorecard(records, NOW).slip_rate == 0.25


def test_fill_rate_is_the_quantity_received_of_what_was_due() -> None:
    records = [
        record(delay=HOUR, quantity=2),  # 2 of 2
        record(promised_at=NOW - DAY, quantity=3, received_quantity=1),  # 1 of 3, still awaited
        record(promised_at=NOW + DAY, quantity=5),  # not due yet: does not count
    ]
    assert scorecard(records, NOW).fill_rate == round(3 / 5, 4)


def test_fill_rate_never_counts_more_than_was_ordered() -> None:
    over = LineRecord(2, 3, PROMISED, PROMISED, None, False)
    assert scorecard([over, record(promised_at=NOW - HOUR, quantity=2)], NOW).fill_rate == 0.5


def test_rates_are_rounded_to_four_places() -> None:
    records = [record(delay=timedelta(0)), record(delay=HOUR), record(delay=HOUR)]
    assert scorecard(records, NOW).on_time_rate == 0.3333


def test_lines_we_cancelled_or_never_got_a_promise_for_are_left_out() -> None:
    counted = record(delay=HOUR)
    cancelled_by_us = record(promised_at=NOW - 9 * DAY, slipped=True, cancelled_by_us=True)
    unpromised = record(promised_at=None, slipped=True)
    card = scorecard([counted, cancelled_by_us, unpromised], NOW)
    assert card == scorecard([counted], NOW)
    assert (card.lines, card.due, card.slip_rate, card.fill_rate) == (1, 1, 0.0, 1.0)
