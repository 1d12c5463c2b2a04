"""Express capacity rules: the branch's own day, the refusal, the manager's override; and branch settings."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from domain.branches import check_express_capacity, check_storage_slots
from domain.errors import InvalidValue, NotPermitted, RuleConflict
from domain.express import LOOKBACK, CapacityReached, ExpressDay, admit, count_day, local_day, record_override
from domain.model import EventKind, Tier

from .factories import DESK, MANAGER, make_job

PARIS = ZoneInfo("Europe/Paris")
TODAY = date(2026, 3, 2)


def test_the_day_is_the_branch_calendar_day() -> None:
    # 00:30 in Paris is still the previous day in UTC: the count follows the branch.
    day, start, end = local_day(datetime(2026, 3, 2, 23, 30, tzinfo=UTC), PARIS)
    assert day == date(2026, 3, 3)
    assert (start, end) == (datetime(2026, 3, 2, 23, 0, tzinfo=UTC), datetime(2026, 3, 3, 23, 0, tzinfo=UTC))
    # The day clocks go forward lasts 23 hours.
    day, start, end = local_day(datetime(2026, 3, 29, 12, 0, tzinfo=UTC), PARIS)
    assert day == date(2026, 3, 29) and end - start == timedelta(hours=23)


def test_the_day_counts_the_intakes_of_the_branch_day_only() -> None:
    now = datetime(2026, 3, 2, 22, 0, tzinfo=UTC)  # 23:00 on Monday in Paris
    taken = [
        datetime(2026, 3, 1, 22, 59, tzinfo=UTC),  # Sunday 23:59 in Paris
        datetime(2026, 3, 1, 23, 0, tzinfo=UTC),  # Monday 00:00
        datetime(2026, 3, 2, 21, 0, tzinfo=UTC),
        now,
    ]
    assert count_day(now, PARIS, 6, taken) == ExpressDay(date(2026, 3, 2), 6, 3)
    assert now - LOOKBACK < taken[0]  # whatever the lookback reads, the day is counted right


def test_express_is_admitted_while_slots_are_left() -> None:
    assert admit(ExpressDay(TODAY, 6, 5), DESK, Tier.EXPRESS, None) is None
    assert ExpressDay(TODAY, 6, 5).left == 1
    assert ExpressDay(TODAY, 2, 3).left == 0  # an override went beyond it


def test_express_beyond_capacity_is_a_conflict_naming_the_tier() -> None:
    with pytest.raises(CapacityReached) as refused:
        admit(ExpressDay(TODAY, 6, 6), DESK, Tier.EXPRESS, None)
    assert isinstance(refused.value, RuleConflict)
    assert refused.value.field == "tier"
    assert "6 of 6" in refused.value.reason
    # A standard intake is never refused for capacity.
    assert admit(ExpressDay(TODAY, 0, 0), DESK, Tier.STANDARD, None) is None


def test_a_manager_overrides_with_a_reason_recorded() -> None:
    override = admit(ExpressDay(TODAY, 6, 6), MANAGER, Tier.EXPRESS, " loyal business customer ")
    assert override == {
        "express_override": {"reason": "loyal business customer", "by": MANAGER.username, "capacity": 6, "used": 6}
    }
    # Not needed while slots are left: nothing to record.
    assert admit(ExpressDay(TODAY, 6, 1), MANAGER, Tier.EXPRESS, "just in case") is None


def test_only_a_manager_overrides_and_only_an_express_intake() -> None:
    with pytest.raises(NotPermitted):
        admit(ExpressDay(TODAY, 6, 0), DESK, Tier.EXPRESS, "please")
    with pytest.raises(InvalidValue) as standard:
        admit(ExpressDay(TODAY, 6, 6), MANAGER, Tier.STANDARD, "why")
    assert standard.value.field == "express_override_reason"
    with pytest.raises(InvalidValue):
        admit(ExpressDay(TODAY, 6, 6), MANAGER, Tier.EXPRESS, "  ")


def test_the_override_goes_on_the_created_event() -> None:
    job = make_job(tier=Tier.EXPRESS)
    job.record_intake(MANAGER)
    record_override(job, {"express_override": {"reason": "VIP"}})
    (created,) = job.pending_events
    assert created.kind is EventKind.CREATED
    assert created.data["express_override"] == {"reason": "VIP"} and created.data["tier"] == "express"


def test_branch_settings_are_checked() -> None:
    assert check_express_capacity(None) is None
    assert check_express_capacity(0) == 0
    with pytest.raises(InvalidValue) as negative:
        check_express_capacity(-1)
    assert negative.value.field == "express_capacity"
    assert check_storage_slots(None) is None
    assert check_storage_slots([" A-01", "B-02 "]) == ["A-01", "B-02"]
    for bad in ([], ["A-01", "A-01"], [""], ["x" * 21]):
        with pytest.raises(InvalidValue) as refused:
            check_storage_slots(bad)
        assert refused.value.field == "storage_slots"
