"""The late-parts escalation ladder (`domain.escalation`): each rung, graces per tier in business time,
breach after N business days or a missed due date, stale supplier data, and which rungs to record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.calendar import BusinessCalendar, OpeningHours
from domain.escalation import EscalationPolicy, Level, TierRules, assess, levels_to_record
from domain.model import Tier
from domain.parts import PartLine, PartStatus
from domain.sla import SlaPolicy

# Valence: Monday to Saturday 09:00-19:00, Paris time (UTC+1 in early March 2026).
VALENCE = BusinessCalendar(
    OpeningHours.from_mapping({day: [["09:00", "19:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat")}),
    ZoneInfo("Europe/Paris"),
)
SLA = SlaPolicy()
POLICY = EscalationPolicy()
FAR = timedelta(days=30)  # a due date far enough not to be at stake


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    """2 March 2026 is a Monday; 09:00 in Valence is 08:00 UTC."""
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


def line(
    promised: datetime | None,
    eta: datetime | None,
    *,
    status: PartStatus = PartStatus.ORDERED,
    supplier_id: int | None = 1,
) -> PartLine:
    return PartLine(
        1,
        10,
        1,
        "IPH13-SCREEN-OLED",
        1,
        utc(2, 8),
        status=status,
        supplier_id=supplier_id,
        promised_at=promised,
        eta=eta,
    )


def level(
    tier: Tier,
    lines: list[PartLine],
    now: datetime,
    *,
    due_at: datetime | None = None,
    policy: EscalationPolicy = POLICY,
    stale: dict[int, datetime] | None = None,
) -> Level | None:
    return assess(
        tier=tier,
        due_at=due_at or now + FAR,
        lines=lines,
        calendar=VALENCE,
        sla=SLA,
        policy=policy,
        now=now,
        stale_since=stale,
    ).level


NOW = utc(2, 9)  # Monday 10:00 in Valence


def test_on_time_is_no_level() -> None:
    assert level(Tier.EXPRESS, [line(utc(3, 9), utc(3, 9))], NOW) is None
    assert level(Tier.STANDARD, [line(utc(3, 9), utc(3, 9))], NOW) is None


def test_received_or_cancelled_lines_never_escalate() -> None:
    for status in (PartStatus.RECEIVED, PartStatus.FITTED, PartStatus.CANCELLED):
        assert level(Tier.EXPRESS, [line(utc(2, 8), utc(2, 8), status=status)], NOW, due_at=NOW - timedelta(1)) is None


def test_an_eta_passed_without_the_part_is_late() -> None:
    # Promised and expected at 09:30 Paris, now 10:00: not here.
    assessment = assess(
        tier=Tier.STANDARD,
        due_at=NOW + FAR,
        lines=[line(utc(2, 8, 30), utc(2, 8, 30))],
        calendar=VALENCE,
        sla=SLA,
        policy=POLICY,
        now=NOW,
    )
    assert assessment.level is Level.LATE
    assert assessment.promise == utc(2, 8, 30)


def test_express_grace_is_one_business_hour() -> None:
    promised = utc(3, 9)  # Tuesday 10:00 Paris
    assert level(Tier.EXPRESS, [line(promised, promised + timedelta(hours=1))], NOW) is None
    assert level(Tier.EXPRESS, [line(promised, promised + timedelta(hours=1, minutes=5))], NOW) is Level.LATE


def test_standard_grace_is_one_business_day() -> None:
    promised = utc(3, 9)  # Tuesday 10:00 Paris
    assert level(Tier.STANDARD, [line(promised, promised + timedelta(hours=5))], NOW) is None
    # Wednesday 10:00 Paris, the same time a business day later: still within the grace; a minute more is late.
    assert level(Tier.STANDARD, [line(promised, utc(4, 9))], NOW) is None
    assert level(Tier.STANDARD, [line(promised, utc(4, 9, 1))], NOW) is Level.LATE


def test_the_standard_grace_is_a_day_whatever_the_opening_hours() -> None:
    # A shop open 7 hours a day (09:00-12:00, 14:00-18:00): Tuesday 10:00 → Wednesday 11:00 is 8 business
    # hours, yet more than one business day: late.
    short_days = BusinessCalendar(
        OpeningHours.from_mapping({day: [["09:00", "12:00"], ["14:00", "18:00"]] for day in ("tue", "wed")}),
        ZoneInfo("Europe/Paris"),
    )
    promised = utc(3, 9)
    rules = POLICY.for_tier(Tier.STANDARD)
    assert rules.grace_ends(promised, short_days) == utc(4, 9)
    assessment = assess(
        tier=Tier.STANDARD,
        due_at=NOW + FAR,
        lines=[line(promised, utc(4, 10))],
        calendar=short_days,
        sla=SLA,
        policy=POLICY,
        now=NOW,
    )
    assert assessment.level is Level.LATE


def test_the_standard_grace_day_skips_closed_days() -> None:
    # Promised Saturday 11:00 Paris; Sunday is closed, so the grace runs to Monday 11:00.
    sat_now = utc(7, 9)
    promised = utc(7, 10)
    assert level(Tier.STANDARD, [line(promised, utc(9, 10))], sat_now) is None
    assert level(Tier.STANDARD, [line(promised, utc(9, 10, 30))], sat_now) is Level.LATE


def test_the_grace_is_counted_in_business_time() -> None:
    # Express, promised Monday 18:30 Paris, now expected Tuesday 09:45: 15 wall-clock hours but only
    # 30 + 45 business minutes: 1 h 15 over the grace of 1 h.
    assert level(Tier.EXPRESS, [line(utc(2, 17, 30), utc(3, 8, 45))], NOW) is Level.LATE
    # Saturday 18:30 → Monday 09:20 (Sunday closed): 39 wall-clock hours, 50 business minutes: not late.
    sat_now = utc(7, 9)
    assert level(Tier.EXPRESS, [line(utc(7, 17, 30), utc(9, 8, 20))], sat_now) is None


def test_the_grace_per_tier_is_configurable() -> None:
    strict = EscalationPolicy(
        rules={Tier.EXPRESS: TierRules(grace=timedelta(minutes=10)), Tier.STANDARD: TierRules(grace=timedelta(0))}
    )
    promised = utc(3, 9)
    assert level(Tier.EXPRESS, [line(promised, promised + timedelta(minutes=20))], NOW) is None
    assert level(Tier.EXPRESS, [line(promised, promised + timedelta(minutes=20))], NOW, policy=strict) is Level.LATE
    assert level(Tier.STANDARD, [line(promised, promised + timedelta(minutes=1))], NOW, policy=strict) is Level.LATE


def test_at_risk_when_the_forecast_ready_time_is_after_the_due_date() -> None:
    # Express due Monday 12:00 Paris; the part comes at 11:30 and the bench needs an hour: ready 12:30.
    eta = utc(2, 10, 30)
    assert level(Tier.EXPRESS, [line(eta, eta)], NOW, due_at=utc(2, 11)) is Level.AT_RISK
    # Due at 12:30: ready just in time.
    assert level(Tier.EXPRESS, [line(eta, eta)], NOW, due_at=utc(2, 11, 30)) is None


def test_breached_when_the_due_date_passed_with_parts_awaited() -> None:
    assessment = assess(
        tier=Tier.EXPRESS,
        due_at=utc(2, 8, 45),
        lines=[line(utc(2, 8, 30), utc(2, 8, 30))],
        calendar=VALENCE,
        sla=SLA,
        policy=POLICY,
        now=NOW,
    )
    assert assessment.level is Level.BREACHED
    assert "the due date has passed" in assessment.reasons


def test_breached_when_a_part_is_more_than_n_business_days_late() -> None:
    promised = utc(3, 9)  # Tuesday 10:00 Paris
    # Three business days later is Friday 10:00: an ETA on Friday at 10:00 is late, not breached.
    assert level(Tier.STANDARD, [line(promised, utc(6, 9))], NOW) is Level.LATE
    # Friday 11:00: over three business days late, whatever the due date (30 days away).
    assert level(Tier.STANDARD, [line(promised, utc(6, 10))], NOW) is Level.BREACHED
    # Sunday does not count: promised Saturday 10:00, three business days is Wednesday 10:00.
    assert level(Tier.STANDARD, [line(utc(7, 9), utc(10, 8))], NOW) is Level.LATE
    assert level(Tier.STANDARD, [line(utc(7, 9), utc(11, 10))], NOW) is Level.BREACHED
    # Configurable: one business day.
    quick = EscalationPolicy(
        rules={
            Tier.STANDARD: TierRules(grace=timedelta(hours=10), breach_days=1),
            Tier.EXPRESS: TierRules(grace=timedelta(hours=1)),
        }
    )
    assert level(Tier.STANDARD, [line(promised, utc(4, 10))], NOW, policy=quick) is Level.BREACHED


def test_stale_supplier_data_is_not_trusted_within_the_window_but_is_after() -> None:
    late = [line(utc(2, 8, 30), utc(2, 8, 30), supplier_id=7)]
    # Stale for an hour (window 4 h): its line alone escalates nothing.
    assert level(Tier.STANDARD, late, NOW, stale={7: NOW - timedelta(hours=1)}) is None
    # Stale for five hours: trusted again (the part is still not here).
    assert level(Tier.STANDARD, late, NOW, stale={7: NOW - timedelta(hours=5)}) is Level.LATE
    # Another supplier being stale changes nothing.
    assert level(Tier.STANDARD, late, NOW, stale={8: NOW - timedelta(minutes=5)}) is Level.LATE
    # The window is configurable.
    short = EscalationPolicy(stale_window=timedelta(minutes=30))
    assert level(Tier.STANDARD, late, NOW, stale={7: NOW - timedelta(hours=1)}, policy=short) is Level.LATE


def test_a_date_the_supplier_stated_after_going_stale_is_trusted() -> None:
    # The supplier stopped answering polls an hour ago, but pushed this ETA (a webhook) since: it is news.
    stale = {7: NOW - timedelta(hours=1)}
    fresh = line(utc(2, 8, 30), utc(2, 8, 30), supplier_id=7)
    fresh.fact_at = NOW - timedelta(minutes=10)
    assert level(Tier.STANDARD, [fresh], NOW, stale=stale) is Level.LATE
    old = line(utc(2, 8, 30), utc(2, 8, 30), supplier_id=7)
    old.fact_at = NOW - timedelta(hours=2)
    assert level(Tier.STANDARD, [old], NOW, stale=stale) is None


def test_the_promise_is_the_jobs_latest_parts_eta() -> None:
    lines = [line(utc(3, 9), utc(3, 11)), line(utc(3, 9), utc(4, 10))]
    assessment = assess(
        tier=Tier.STANDARD, due_at=NOW + FAR, lines=lines, calendar=VALENCE, sla=SLA, policy=POLICY, now=NOW
    )
    assert assessment.promise == utc(4, 10)
    assert assessment.level is Level.LATE


@pytest.mark.parametrize(
    ("current", "recorded", "expected"),
    [
        (None, [], []),
        (None, [Level.LATE], []),
        (Level.LATE, [], [Level.LATE]),
        (Level.LATE, [Level.LATE], []),
        (Level.AT_RISK, [Level.LATE], [Level.AT_RISK]),
        (Level.BREACHED, [], [Level.LATE, Level.AT_RISK, Level.BREACHED]),
        (Level.BREACHED, [Level.LATE], [Level.AT_RISK, Level.BREACHED]),
        (Level.AT_RISK, [Level.LATE, Level.AT_RISK, Level.BREACHED], []),
        (Level.LATE, [Level.AT_RISK], [Level.LATE]),
    ],
)
def test_levels_to_record(current: Level | None, recorded: list[Level], expected: list[Level]) -> None:
    assert levels_to_record(current, recorded) == expected


def test_labels() -> None:
    assert [lvl.label for lvl in Level] == ["late", "at_risk", "breached"]
