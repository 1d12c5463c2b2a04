"""Erasing a customer's personal data: what goes, what stays, and when the retention period is over.

What identifies a person goes (name, phone, email, the device's IMEI and serial, their link and codes, who
our messages went to); what the shop must keep stays, anonymous: jobs, stages, dates, estimates, approvals
and amounts (invoices are kept by law). Only a customer with no open job can be erased: the shop still
needs to reach the owner of a device it holds.
"""

from __future__ import annotations

from calendar import monthrange
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from domain.errors import NotPermitted, RuleConflict
from domain.model import Actor
from domain.stages import Role

ERASED_NAME = "[erased]"  # the customer's name, and the stored copy of the messages sent to them
RETENTION_ACTOR = "retention"  # who erased, in the history, when the retention period ran out
# Keys of job-event data that can hold personal data (notification events carry the "recipient").
PERSONAL_KEYS: frozenset[str] = frozenset(
    {"recipient", "phone", "email", "customer", "customer_name", "imei", "serial_number", "tracking_url"}
)


def check_may_erase(actor: Actor) -> None:
    if actor.role is not Role.MANAGER:
        raise NotPermitted("only a manager erases a customer's personal data")


def check_erasable(open_refs: Sequence[str]) -> None:
    if open_refs:
        raise RuleConflict(f"the customer has open jobs ({', '.join(open_refs)}): erase once they are closed")


def scrub(data: Mapping[str, Any]) -> dict[str, Any]:
    """Event data without personal values (nested too); the keys stay, so the history keeps its shape."""
    return {key: None if key in PERSONAL_KEYS else _scrub_value(value) for key, value in data.items()}


def _scrub_value(value: Any) -> Any:
    if isinstance(value, Mapping):
        return scrub(value)
    if isinstance(value, list):
        return [_scrub_value(item) for item in value]
    return value


def months_before(moment: datetime, months: int) -> datetime:
    """The same time `months` calendar months earlier (31 March less one month is 28 or 29 February)."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    day = min(moment.day, monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)
