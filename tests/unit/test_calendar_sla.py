"""Business-time arithmetic and SLA due dates for two Europe/Paris branches."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.calendar import BusinessCalendar, Interval, OpeningHours, zone
from domain.errors import InvalidValue
from domain.model import Branch, Tier
from domain.sla import SlaPolicy

PARIS = ZoneInfo("Europe/Paris")

# Valence: Monday to Saturday 09:00-19:00. Guilherand: Monday to Friday 09:00-18:00.
VALENCE_HOURS = OpeningHours.from_mapping(
    {day: [["09:00", "19:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat")}
)
GUILHERAND_HOURS = OpeningHours.from_mapping({day: [["09:00", "18:00"]] for day in ("mon", "tue", "wed", "thu", "fri")})
VALENCE = BusinessCalendar(VALENCE_HOURS, PARIS)
GUILHERAND = BusinessCalendar(GUILHERAND_HOURS, PARIS)
SLA = SlaPolicy()

# 2 March 2026 is a Monday (winter time, UTC+1); 1 June 2026 is a Monday (summer time, UTC+2).
MON, TUE, WED, THU, FRI, SAT, SUN = (2, 3, 4, 5, 6, 7, 8)


def paris(day: int, hour: int, minute: int = 0, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=PARIS)


def local(result: datetime) -> datetime:
    """The result must be UTC; compare it on the Paris wall clock."""
    assert result.tzinfo is not None
    assert result.utcoffset() == timedelta(0)
    return result.astimezone(PARIS)


def wall(dt: datetime) -> tuple[int, int, int, int, int]:
    return (dt.year, dt.month, dt.day, dt.hour, dt.minute)


# --- OpeningHours ----------------------------------------------------------------------------


def test_from_mapping_reads_days_and_leaves_unnamed_days_closed() -> None:
    assert GUILHERAND_HOURS.days[0] == (Interval(time(9), time(18)),)
    assert GUILHERAND_HOURS.days[5] == ()
    assert GUILHERAND_HOURS.days[6] == ()
    assert VALENCE_HOURS.days[5] == (Interval(time(9), time(19)),)


def test_from_mapping_accepts_split_days_and_round_trips() -> None:
    raw = {"mon": [["09:00", "12:00"], ["14:00", "18:30"]], "sat": [["10:00", "13:00"]]}
    hours = OpeningHours.from_mapping(raw)
    assert hours.days[0] == (Interval(time(9), time(12)), Interval(time(14), time(18, 30)))
    assert hours.to_mapping() == raw


def test_from_mapping_accepts_touching_intervals() -> None:
    hours = OpeningHours.from_mapping({"tue": [["09:00", "12:00"], ["12:00", "13:00"]]})
    assert len(hours.days[1]) == 2


@pytest.mark.parametrize(
    ("raw", "field", "reason_part"),
    [
        ({"mon": [["09:00", "18:00"]], "funday": [["09:00", "18:00"]]}, "hours", "funday"),
        ({"mon": [["18:00", "09:00"]]}, "hours.mon", "close after it opens"),
        ({"tue": [["09:00", "09:00"]]}, "hours.tue", "close after it opens"),
        ({"wed": [["09:00", "13:00"], ["12:00", "18:00"]]}, "hours.wed", "overlap"),
        ({"thu": [["14:00", "18:00"], ["09:00", "12:00"]]}, "hours.thu", "overlap"),
        ({"fri": [["9am", "6pm"]]}, "hours.fri", "HH:MM"),
        ({"fri": [["09:00", "25:00"]]}, "hours.fri", "HH:MM"),
        ({"sat": [["09:00"]]}, "hours.sat", "[opens, closes]"),
        ({}, "hours", "at least one day"),
        ({"mon": [], "sun": []}, "hours", "at least one day"),
    ],
)
def test_from_mapping_rejects_bad_hours_naming_the_field(raw: dict, field: str, reason_part: str) -> None:
    with pytest.raises(InvalidValue) as info:
        OpeningHours.from_mapping(raw)
    assert info.value.field == field
    assert reason_part in info.value.reason


def test_from_mapping_uses_the_given_field_name() -> None:
    with pytest.raises(InvalidValue) as info:
        OpeningHours.from_mapping({"mon": [["19:00", "09:00"]]}, field="branch.hours")
    assert info.value.field == "branch.hours.mon"


def test_zone_accepts_a_real_timezone() -> None:
    assert zone("Europe/Paris") == PARIS


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "../etc/passwd"])
def test_zone_rejects_an_unknown_timezone(name: str) -> None:
    with pytest.raises(InvalidValue) as info:
        zone(name, field="branch.timezone")
    assert info.value.field == "branch.timezone"


def test_branch_calendar_uses_the_branch_timezone_and_hours() -> None:
    branch = Branch(1, "VAL", "Valence", "Europe/Paris", VALENCE_HOURS)
    assert branch.calendar == VALENCE


# --- Express: 4 business hours ---------------------------------------------------------------


def test_express_within_the_same_day() -> None:
    due = SLA.due_at(Tier.EXPRESS, VALENCE, paris(MON, 10))
    assert wall(local(due)) == (2026, 3, MON, 14, 0)
    assert due == datetime(2026, 3, MON, 13, 0, tzinfo=UTC)  # UTC+1 in March before the change


def test_express_spills_over_to_the_next_morning() -> None:
    # 17:00-19:00 on Monday, then 09:00-11:00 on Tuesday.
    due = SLA.due_at(Tier.EXPRESS, VALENCE, paris(MON, 17))
    assert wall(local(due)) == (2026, 3, TUE, 11, 0)


def test_express_ending_exactly_at_closing_time_stays_on_that_day() -> None:
    due = SLA.due_at(Tier.EXPRESS, VALENCE, paris(MON, 15))
    assert wall(local(due)) == (2026, 3, MON, 19, 0)


def test_express_received_after_closing_starts_next_opening() -> None:
    due = SLA.due_at(Tier.EXPRESS, VALENCE, paris(MON, 19, 30))
    assert wall(local(due)) == (2026, 3, TUE, 13, 0)


def test_express_friday_afternoon_skips_the_weekend_at_guilherand() -> None:
    # One hour on Friday (17:00-18:00), three on Monday.
    due = SLA.due_at(Tier.EXPRESS, GUILHERAND, paris(FRI, 17))
    assert wall(local(due)) == (2026, 3, MON + 7, 12, 0)


def test_express_friday_afternoon_uses_saturday_at_valence() -> None:
    # Two hours on Friday (17:00-19:00), two on Saturday.
    due = SLA.due_at(Tier.EXPRESS, VALENCE, paris(FRI, 17))
    assert wall(local(due)) == (2026, 3, SAT, 11, 0)


@pytest.mark.parametrize("calendar", [VALENCE, GUILHERAND], ids=["valence", "guilherand"])
def test_express_received_on_sunday_counts_from_monday_opening(calendar: BusinessCalendar) -> None:
    due = SLA.due_at(Tier.EXPRESS, calendar, paris(SUN, 11))
    assert wall(local(due)) == (2026, 3, MON + 7, 13, 0)


def test_express_accepts_a_utc_start() -> None:
    # 09:00 UTC is 10:00 in Paris in winter.
    due = SLA.due_at(Tier.EXPRESS, VALENCE, datetime(2026, 3, MON, 9, 0, tzinfo=UTC))
    assert due == datetime(2026, 3, MON, 13, 0, tzinfo=UTC)


def test_express_across_the_spring_dst_change() -> None:
    # Clocks go forward on Sunday 29 March 2026. Saturday 17:00 is 16:00 UTC (UTC+1): two hours on
    # Saturday, Sunday closed, two hours on Monday: 11:00 local, now UTC+2, so 09:00 UTC.
    received = datetime(2026, 3, 28, 17, 0, tzinfo=PARIS)
    assert received.utcoffset() == timedelta(hours=1)
    due = SLA.due_at(Tier.EXPRESS, VALENCE, received)
    assert wall(local(due)) == (2026, 3, 30, 11, 0)
    assert local(due).utcoffset() == timedelta(hours=2)
    assert due == datetime(2026, 3, 30, 9, 0, tzinfo=UTC)


def test_express_across_the_autumn_dst_change() -> None:
    # Clocks go back on Sunday 25 October 2026: Saturday 18:00 (UTC+2) + 1h, then Monday 09:00-12:00 (UTC+1).
    due = SLA.due_at(Tier.EXPRESS, VALENCE, datetime(2026, 10, 24, 18, 0, tzinfo=PARIS))
    assert wall(local(due)) == (2026, 10, 26, 12, 0)
    assert due == datetime(2026, 10, 26, 11, 0, tzinfo=UTC)


def test_express_hours_are_configurable() -> None:
    due = SlaPolicy(express_hours=1.5).due_at(Tier.EXPRESS, GUILHERAND, paris(MON, 17))
    assert wall(local(due)) == (2026, 3, TUE, 9, 30)


# --- Standard: 3 business days ---------------------------------------------------------------


@pytest.mark.parametrize("calendar", [VALENCE, GUILHERAND], ids=["valence", "guilherand"])
def test_standard_monday_afternoon_is_due_thursday_same_time(calendar: BusinessCalendar) -> None:
    due = SLA.due_at(Tier.STANDARD, calendar, paris(MON, 14))
    assert wall(local(due)) == (2026, 3, THU, 14, 0)


def test_standard_received_on_closed_saturday_counts_from_monday_opening() -> None:
    due = SLA.due_at(Tier.STANDARD, GUILHERAND, paris(SAT, 11))
    assert wall(local(due)) == (2026, 3, THU + 7, 9, 0)


def test_standard_counts_open_saturday_at_valence() -> None:
    # Friday, Saturday, (Sunday closed), Monday.
    due = SLA.due_at(Tier.STANDARD, VALENCE, paris(THU, 18, 30))
    assert wall(local(due)) == (2026, 3, MON + 7, 18, 30)


def test_standard_skips_the_weekend_at_guilherand() -> None:
    # Monday, Tuesday, Wednesday of the following week.
    due = SLA.due_at(Tier.STANDARD, GUILHERAND, paris(THU, 10))
    assert wall(local(due)) == (2026, 3, TUE + 7, 10, 0)


def test_standard_received_after_closing_counts_from_next_opening() -> None:
    due = SLA.due_at(Tier.STANDARD, GUILHERAND, paris(MON, 18, 30))
    assert wall(local(due)) == (2026, 3, FRI, 9, 0)


def test_standard_clamps_into_a_shorter_target_day() -> None:
    hours = OpeningHours.from_mapping(
        {**{d: [["09:00", "19:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}, "sat": [["09:00", "12:00"]]}
    )
    calendar = BusinessCalendar(hours, PARIS)
    due = SLA.due_at(Tier.STANDARD, calendar, paris(WED, 17))  # Thu, Fri, Sat
    assert wall(local(due)) == (2026, 3, SAT, 12, 0)


def test_standard_across_the_spring_dst_change_keeps_the_wall_clock_time() -> None:
    # Friday 27 March 14:00 (UTC+1) at valence: Saturday, Monday, Tuesday 31 March 14:00 (UTC+2).
    due = SLA.due_at(Tier.STANDARD, VALENCE, datetime(2026, 3, 27, 14, 0, tzinfo=PARIS))
    assert wall(local(due)) == (2026, 3, 31, 14, 0)
    assert due == datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


def test_standard_days_are_configurable() -> None:
    due = SlaPolicy(standard_days=1).due_at(Tier.STANDARD, GUILHERAND, paris(FRI, 15))
    assert wall(local(due)) == (2026, 3, MON + 7, 15, 0)


def test_results_are_utc_in_summer_too() -> None:
    due = SLA.due_at(Tier.EXPRESS, VALENCE, datetime(2026, 6, 1, 10, 0, tzinfo=PARIS))
    assert due == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # 14:00 at UTC+2
    assert due.tzinfo is UTC


# --- next_open / business_time_between -------------------------------------------------------


def test_next_open_inside_hours_is_now_and_outside_is_next_opening() -> None:
    assert wall(VALENCE.next_open(paris(MON, 11, 15))) == (2026, 3, MON, 11, 15)
    assert wall(VALENCE.next_open(paris(MON, 7))) == (2026, 3, MON, 9, 0)
    assert wall(GUILHERAND.next_open(paris(FRI, 18))) == (2026, 3, MON + 7, 9, 0)


def test_business_time_between_same_day() -> None:
    assert VALENCE.business_time_between(paris(MON, 10), paris(MON, 14)) == timedelta(hours=4)


def test_business_time_between_ignores_closed_hours() -> None:
    # Monday 17:00 -> Tuesday 11:00 at valence: 2h + 2h.
    assert VALENCE.business_time_between(paris(MON, 17), paris(TUE, 11)) == timedelta(hours=4)
    # Before opening to after closing: one full day.
    assert GUILHERAND.business_time_between(paris(MON, 6), paris(MON, 22)) == timedelta(hours=9)


def test_business_time_between_over_a_weekend() -> None:
    # Friday 17:00 -> Monday 12:00 at guilherand: 1h + 3h; at valence add Saturday's 10h.
    assert GUILHERAND.business_time_between(paris(FRI, 17), paris(MON + 7, 12)) == timedelta(hours=4)
    assert VALENCE.business_time_between(paris(FRI, 17), paris(MON + 7, 12)) == timedelta(hours=15)


def test_business_time_between_entirely_closed_period_is_zero() -> None:
    assert GUILHERAND.business_time_between(paris(SAT, 10), paris(SUN, 18)) == timedelta(0)
    assert VALENCE.business_time_between(paris(MON, 19, 30), paris(TUE, 8)) == timedelta(0)


@pytest.mark.parametrize("offset", [timedelta(0), timedelta(hours=-3)])
def test_business_time_between_is_zero_when_end_is_not_after_start(offset: timedelta) -> None:
    start = paris(MON, 12)
    assert VALENCE.business_time_between(start, start + offset) == timedelta(0)


def test_business_time_between_mixes_timezones() -> None:
    # 16:00 UTC on Saturday 28 March is 17:00 in Paris; 09:00 UTC on Monday 30 March is 11:00 (UTC+2).
    start = datetime(2026, 3, 28, 16, 0, tzinfo=UTC)
    end = datetime(2026, 3, 30, 9, 0, tzinfo=UTC)
    assert VALENCE.business_time_between(start, end) == timedelta(hours=4)


@pytest.mark.parametrize(
    "start",
    [paris(MON, 10), paris(MON, 17), paris(FRI, 17), paris(SUN, 11), datetime(2026, 3, 28, 17, 0, tzinfo=PARIS)],
)
@pytest.mark.parametrize("calendar", [VALENCE, GUILHERAND], ids=["valence", "guilherand"])
def test_business_time_between_inverts_add_business_time(calendar: BusinessCalendar, start: datetime) -> None:
    due = calendar.add_business_time(start, timedelta(hours=4))
    assert calendar.business_time_between(start, due) == timedelta(hours=4)


# --- known defects (see the report to the domain's owner) -------------------------------------


def test_from_mapping_rejects_times_with_an_offset() -> None:
    with pytest.raises(InvalidValue) as info:
        OpeningHours.from_mapping({"mon": [["09:00+02:00", "19:00"]]})
    assert info.value.field == "hours.mon"


def test_from_mapping_rejects_hours_that_all_carry_an_offset() -> None:
    with pytest.raises(InvalidValue):
        hours = OpeningHours.from_mapping({"mon": [["09:00+02:00", "19:00+02:00"]]})
        BusinessCalendar(hours, PARIS).add_business_days(paris(MON, 10), 1)


@pytest.mark.parametrize("raw", [{"mon": None}, {"mon": [None]}])
def test_from_mapping_rejects_nulls(raw: dict) -> None:
    with pytest.raises(InvalidValue):
        OpeningHours.from_mapping(raw)


def test_standard_due_time_is_never_in_a_lunch_break() -> None:
    hours = OpeningHours.from_mapping(
        {
            **{d: [["09:00", "19:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
            "sat": [["09:00", "12:00"], ["14:00", "17:00"]],
        }
    )
    due = local(SLA.due_at(Tier.STANDARD, BusinessCalendar(hours, PARIS), paris(WED, 13)))  # Thu, Fri, Sat
    assert due.date() == paris(SAT, 0).date()
    assert any(i.opens <= due.time() <= i.closes for i in hours.on(due.date())), due
