"""Durations written as strings with units ("500ms", "5s", "2m", "1h30m").

A bare number is refused: "5" could mean seconds or milliseconds, and guessing is how a grace
period ends up 1000 times too short.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_MAX = 365 * 86400.0  # anything longer is a typo, and would overflow a pod's grace period
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")


def parse_duration(value: object) -> float:
    """Return seconds for a duration string; raise ValueError naming what is expected."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError(f"expected a duration with a unit such as '500ms', '5s' or '2m', got {value!r}")
    if not isinstance(value, str):
        raise ValueError("expected a duration string such as '500ms', '5s' or '2m'")
    text = value.strip().replace(" ", "")
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos == len(text) and text and total > _MAX:
        raise ValueError(f"expected a duration of at most 365d, got {value!r}")
    if pos != len(text) or not text:
        raise ValueError(f"expected a duration such as '500ms', '5s', '2m' or '1h30m', got {value!r}")
    return total


def format_duration(seconds: float) -> str:
    """The shortest exact string for a number of seconds ("1.5s", "2m", "250ms")."""
    if seconds == 0:
        return "0s"
    ms = round(seconds * 1000)
    if ms % 1000:
        return f"{ms}ms"
    whole = ms // 1000
    for unit, size in (("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
]
"""Seconds as a float in Python, a unit string in the file and in JSON output."""
