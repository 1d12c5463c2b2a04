"""A branch's own settings, where they differ from the chain's defaults: its express capacity a day and the
storage slots (shelves, bins) that hold devices waiting for their owners. None means the default."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from domain.errors import InvalidValue

MAX_EXPRESS_CAPACITY = 1000
MAX_SLOT_LENGTH = 20  # the width of repair_job.pickup_slot
MAX_SLOTS = 500


def check_express_capacity(value: int | None) -> int | None:
    if value is not None and not 0 <= value <= MAX_EXPRESS_CAPACITY:
        raise InvalidValue(
            "express_capacity", f"a whole number from 0 to {MAX_EXPRESS_CAPACITY}, or null for the default"
        )
    return value


def check_storage_slots(value: Sequence[str] | None) -> list[str] | None:
    """Slot names in the order they are filled: unique, 1 to 20 characters each, at least one."""
    if value is None:
        return None
    slots = [name.strip() for name in value]
    if not slots or len(slots) > MAX_SLOTS:
        raise InvalidValue("storage_slots", f"from 1 to {MAX_SLOTS} slot names, or null for the default")
    for index, name in enumerate(slots):
        if not name or len(name) > MAX_SLOT_LENGTH:
            raise InvalidValue("storage_slots", f"slot {index + 1}: a slot name has 1 to {MAX_SLOT_LENGTH} characters")
    duplicates = sorted(name for name, count in Counter(slots).items() if count > 1)
    if duplicates:
        raise InvalidValue("storage_slots", f"each slot is named once: {', '.join(duplicates)} repeated")
    return slots
