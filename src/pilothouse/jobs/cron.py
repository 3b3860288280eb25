"""Cron arithmetic on epoch seconds, in a schedule's time zone, by croniter (never by hand).

Times are epoch floats because the store's clock is (`SELECT {now}`); the time zone only decides
which instants a cron expression names (03:00 in Europe/Berlin moves with daylight saving time).
"""

from __future__ import annotations

import datetime
import itertools
import zoneinfo
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # croniter comes with the `schedules` extra: imported when a schedule is computed
    from croniter import croniter

MAX_SLOTS = 100_000
"""A schedule down for longer than this many of its slots counts the rest as missed without
listing them (an every-second schedule after a day of downtime)."""


def _iterator(expression: str, timezone: str, after: float) -> croniter:
    from croniter import croniter

    start = datetime.datetime.fromtimestamp(after, zoneinfo.ZoneInfo(timezone))
    return croniter(expression, start)


def fire_times(expression: str, timezone: str, after: float, until: float) -> tuple[list[float], int]:
    """The slots in (after, until], at most MAX_SLOTS of the latest ones, and how many earlier
    ones were left out."""
    it = _iterator(expression, timezone, after)
    slots: list[float] = []
    dropped = 0
    while True:
        slot = float(it.get_next(float))
        if slot > until:
            return slots, dropped
        slots.append(slot)
        if len(slots) > MAX_SLOTS:
            slots.pop(0)
            dropped += 1


def next_fires(expression: str, timezone: str, after: float, count: int = 1) -> list[float]:
    """The next `count` slots after `after`."""
    it = _iterator(expression, timezone, after)
    return [float(it.get_next(float)) for _ in range(count)]


def longest_period(expression: str, timezone: str, after: float, sample: int = 16) -> float:
    """The longest gap between the next `sample` slots: how long a healthy schedule may go
    without a run (weekdays-only schedules have a weekend gap)."""
    times = next_fires(expression, timezone, after, sample)
    return max(b - a for a, b in itertools.pairwise(times))
