"""A branch's opening hours and business-time arithmetic in its own timezone.

Promises to customers are made in business time: a shop that closes at 19:00 cannot repair a phone
overnight, and Sunday does not count. All arithmetic happens on the branch's local wall clock
(so daylight-saving changes are right) and results are returned in UTC.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.errors import InvalidValue

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_MAX_SEARCH_DAYS = 366


@dataclass(frozen=True, slots=True)
class Interval:
    opens: time
    closes: time


@dataclass(frozen=True, slots=True)
class OpeningHours:
    """Open intervals per weekday (Monday first); an empty tuple is a closed day."""

    days: tuple[tuple[Interval, ...], ...]

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Sequence[Sequence[str]]], field: str = "hours") -> OpeningHours:
        """Parse `{"mon": [["09:00", "19:00"]], ...}`; weekdays not named are closed."""
        unknown = set(raw) - set(WEEKDAYS)
        if unknown:
            raise InvalidValue(field, f"unknown weekday(s): {', '.join(sorted(unknown))}")
        days = tuple(_parse_day(raw.get(day, ()), f"{field}.{day}") for day in WEEKDAYS)
        if not any(days):
            raise InvalidValue(field, "a branch must open on at least one day")
        return cls(days)

    def to_mapping(self) -> dict[str, list[list[str]]]:
        return {
            day: [[i.opens.strftime("%H:%M"), i.closes.strftime("%H:%M")] for i in intervals]
            for day, intervals in zip(WEEKDAYS, self.days, strict=True)
            if intervals
        }

    def on(self, day: date) -> tuple[Interval, ...]:
        return self.days[day.weekday()]


def _parse_day(raw: Sequence[Sequence[str]], field: str) -> tuple[Interval, ...]:
    intervals: list[Interval] = []
    if not isinstance(raw, (list, tuple)):
        raise InvalidValue(field, "a day is a list of [opens, closes] intervals")
    for pair in raw:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise InvalidValue(field, "each interval is [opens, closes]")
        try:
            opens, closes = (time.fromisoformat(p) for p in pair)
        except (TypeError, ValueError) as exc:
            raise InvalidValue(field, "times are HH:MM") from exc
        if opens.tzinfo is not None or closes.tzinfo is not None:
            raise InvalidValue(field, "times are HH:MM, in the branch's own timezone")
        if opens >= closes:
            raise InvalidValue(field, "an interval must close after it opens")
        if intervals and opens < intervals[-1].closes:
            raise InvalidValue(field, "intervals must be in order and must not overlap")
        intervals.append(Interval(opens, closes))
    return tuple(intervals)


def _clamp_into(intervals: tuple[Interval, ...], wanted: time) -> time:
    """`wanted` if the shop is open then, else the next opening that day, else the day's closing."""
    for interval in intervals:
        if wanted <= interval.closes:
            return max(wanted, interval.opens)
    return intervals[-1].closes


def zone(name: str, field: str = "timezone") -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidValue(field, f"unknown timezone {name!r}") from exc


@dataclass(frozen=True, slots=True)
class BusinessCalendar:
    hours: OpeningHours
    tz: ZoneInfo

    def _open_spans(self, start: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Open spans (local, aware) that end after `start`, in order; the first may begin before it."""
        local = start.astimezone(self.tz)
        for offset in range(_MAX_SEARCH_DAYS):
            day = local.date() + timedelta(days=offset)
            for interval in self.hours.on(day):
                opens = datetime.combine(day, interval.opens, tzinfo=self.tz)
                closes = datetime.combine(day, interval.closes, tzinfo=self.tz)
                if closes > local:
                    yield opens, closes

    def add_business_time(self, start: datetime, amount: timedelta) -> datetime:
        """The instant when `amount` of open time has passed since `start`."""
        remaining = amount
        for opens, closes in self._open_spans(start):
            begin = max(opens, start.astimezone(self.tz))
            available = closes - begin
            if remaining <= available:
                return (begin + remaining).astimezone(UTC)
            remaining -= available
        raise InvalidValue("hours", "the branch is never open")

    def next_open(self, start: datetime) -> datetime:
        for opens, _closes in self._open_spans(start):
            return max(opens, start.astimezone(self.tz))
        raise InvalidValue("hours", "the branch is never open")

    def add_business_days(self, start: datetime, days: int) -> datetime:
        """Same time of day `days` open days later, counted from the next open moment.

        A job received at Monday 14:00 is due Thursday 14:00 with three business days; one received
        on a closed Sunday starts counting at Monday's opening. The time is moved into the target
        day's hours: to its next opening (a lunch break), or to its closing (a short Saturday).
        """
        begin = self.next_open(start)
        day = begin.date()
        for _ in range(days):
            day += timedelta(days=1)
            while not self.hours.on(day):
                day += timedelta(days=1)
        clock = _clamp_into(self.hours.on(day), begin.timetz().replace(tzinfo=None))
        return datetime.combine(day, clock, tzinfo=self.tz).astimezone(UTC)

    def business_time_between(self, start: datetime, end: datetime) -> timedelta:
        """Open time from `start` to `end` (zero when `end` is not after `start`)."""
        total = timedelta()
        if end <= start:
            return total
        for opens, closes in self._open_spans(start):
            begin = max(opens, start.astimezone(self.tz))
            if begin >= end:
                break
            total += min(closes, end.astimezone(self.tz)) - begin
        return total
