"""Erasure rules: who may erase, when, what event data loses, and when the retention period ends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.erasure import check_erasable, check_may_erase, months_before, scrub
from domain.errors import NotPermitted, RuleConflict

from .factories import CHAIN_MANAGER, DESK, MANAGER, TECH


def test_only_managers_erase() -> None:
    check_may_erase(MANAGER)
    check_may_erase(CHAIN_MANAGER)
    for actor in (DESK, TECH):
        with pytest.raises(NotPermitted):
            check_may_erase(actor)


def test_a_customer_with_an_open_job_is_not_erased() -> None:
    check_erasable([])
    with pytest.raises(RuleConflict, match="AT-000007"):
        check_erasable(["AT-000007"])


def test_scrub_keeps_the_shape_and_drops_personal_values() -> None:
    data = {
        "channel": "sms",
        "recipient": "+33612345678",
        "attempts": 1,
        "nested": {"email": "a@example.org", "total_cents": 8900},
        "lines": [{"imei": "490154203237518", "sku": "X"}],
    }
    assert scrub(data) == {
        "channel": "sms",
        "recipient": None,
        "attempts": 1,
        "nested": {"email": None, "total_cents": 8900},
        "lines": [{"imei": None, "sku": "X"}],
    }
    assert scrub({"from": "tech.valence", "to": "tech2.valence"}) == {"from": "tech.valence", "to": "tech2.valence"}


def test_months_before_is_calendar_months() -> None:
    at = datetime(2029, 3, 31, 3, 0, tzinfo=UTC)
    assert months_before(at, 36) == datetime(2026, 3, 31, 3, 0, tzinfo=UTC)
    assert months_before(at, 1) == datetime(2029, 2, 28, 3, 0, tzinfo=UTC)
    assert months_before(datetime(2028, 3, 31, tzinfo=UTC), 1) == datetime(2028, 2, 29, tzinfo=UTC)
    assert months_before(datetime(2027, 1, 15, tzinfo=UTC), 13) == datetime(2025, 12, 15, tzinfo=UTC)
