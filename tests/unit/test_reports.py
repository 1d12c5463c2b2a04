"""The reports' pure figures: on-time rates, intake per day, weekly supplier delay, SLA impact, formatting."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.model import Tier
from domain.sourcing import LineRecord
from service.persistence.reports import Delivered
from service.usecases.reports import intake_per_day, monday_of, on_time, sla_impact, tier_rates, weekly_delay
from service.web.reports import hours, percent, short_day, short_when

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 25, 15, 0, tzinfo=UTC)  # a Wednesday
DUE = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)


def delivered(tier: Tier, ready: datetime | None, collected: datetime) -> Delivered:
    return Delivered(tier, DUE, ready, collected)


def test_on_time_means_ready_by_the_due_date_whenever_the_customer_came() -> None:
    late_pickup = delivered(Tier.STANDARD, DUE - timedelta(hours=1), DUE + timedelta(days=3))
    assert on_time(late_pickup)
    assert on_time(delivered(Tier.STANDARD, DUE, DUE + timedelta(hours=1)))  # exactly at the due time
    assert not on_time(delivered(Tier.STANDARD, DUE + timedelta(minutes=1), DUE + timedelta(hours=1)))
    # Readiness never recorded: the collection is when it was ready at the latest.
    assert on_time(delivered(Tier.EXPRESS, None, DUE - timedelta(hours=2)))
    assert not on_time(delivered(Tier.EXPRESS, None, DUE + timedelta(hours=2)))


def test_rates_per_tier_express_first_and_none_without_jobs() -> None:
    jobs = [
        delivered(Tier.STANDARD, DUE - timedelta(hours=1), NOW),
        delivered(Tier.STANDARD, DUE + timedelta(hours=1), NOW),
        delivered(Tier.STANDARD, DUE - timedelta(hours=5), NOW),
    ]
    express, standard = tier_rates(jobs)
    assert (express.tier, express.on_time, express.collected, express.rate) == (Tier.EXPRESS, 0, 0, None)
    assert (standard.tier, standard.on_time, standard.collected) == (Tier.STANDARD, 2, 3)
    assert standard.rate == pytest.approx(2 / 3)


def test_intake_counts_local_days_and_keeps_empty_ones() -> None:
    received = [
        datetime(2026, 11, 24, 23, 30, tzinfo=UTC),  # already Wednesday 00:30 in Paris
        datetime(2026, 11, 25, 8, 0, tzinfo=UTC),
        datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
        datetime(2026, 11, 18, 22, 0, tzinfo=UTC),  # Wednesday 18th 23:00 in Paris: before the 7 days
    ]
    days = intake_per_day(received, PARIS, date(2026, 11, 25), 7)
    assert [day for day, _ in days] == [date(2026, 11, 19) + timedelta(days=n) for n in range(7)]
    assert dict(days)[date(2026, 11, 25)] == 2
    assert dict(days)[date(2026, 11, 23)] == 1
    assert sum(count for _, count in days) == 3


def test_intake_of_nothing_is_seven_zeros() -> None:
    assert [count for _, count in intake_per_day([], PARIS, date(2026, 11, 25), 7)] == [0] * 7


def record(promised: datetime, received: datetime | None, *, cancelled_by_us: bool = False) -> LineRecord:
    return LineRecord(1, 1 if received else 0, promised, received, promised, False, cancelled_by_us)


def test_weekly_delay_is_the_mean_delay_of_the_lines_received_each_week() -> None:
    this_week = monday_of(NOW)
    assert this_week == date(2026, 11, 23)
    promised = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    records = [
        record(promised, promised + timedelta(hours=4)),  # week of the 16th: 4 h and 0 h (early counts as 0)
        record(promised, promised - timedelta(hours=3)),
        record(promised, datetime(2026, 11, 24, 9, 0, tzinfo=UTC)),  # this week: 8 days late
        record(promised, None),  # not received: not in the chart
        record(promised, promised + timedelta(hours=50), cancelled_by_us=True),  # not the supplier's doing
    ]
    weeks = weekly_delay(records, NOW, 13)
    assert len(weeks) == 13 and weeks[-1][0] == this_week and weeks[0][0] == this_week - timedelta(weeks=12)
    by_week = dict(weeks)
    assert by_week[date(2026, 11, 16)] == 2.0
    assert by_week[this_week] == 8 * 24.0
    assert [value for _, value in weeks[:-2]] == [None] * 11


def test_a_line_received_before_the_window_is_left_out() -> None:
    long_ago = datetime(2026, 6, 1, tzinfo=UTC)
    assert all(value is None for _, value in weekly_delay([record(long_ago, long_ago)], NOW, 13))


def test_sla_impact_breached_past_due_else_at_risk_from_the_forecast() -> None:
    assert sla_impact(DUE + timedelta(seconds=1), DUE, at_risk=False) == "breached"
    assert sla_impact(DUE - timedelta(hours=1), DUE, at_risk=True) == "at_risk"
    assert sla_impact(DUE - timedelta(hours=1), DUE, at_risk=False) is None


def test_formatting() -> None:
    assert short_when(datetime(2026, 11, 23, 9, 0, tzinfo=UTC), PARIS, "fr") == "lun 23/11 10:00"
    assert short_when(datetime(2026, 11, 23, 9, 0, tzinfo=UTC), PARIS, "en") == "Mon 23/11 10:00"
    assert short_when(None, PARIS, "fr") == "—"
    assert short_day(date(2026, 11, 29), "fr") == "dim 29"
    assert (percent(None), percent(0.0), percent(0.6667), percent(1.0)) == ("—", "0 %", "67 %", "100 %")
    assert (hours(None), hours(0.0), hours(5.25), hours(36.6)) == ("—", "0.0 h", "5.2 h", "37 h")
