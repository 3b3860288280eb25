"""In-process timestamps the app updates ("config synced", "queue consumed") for freshness checks."""

from __future__ import annotations

import time

_marks: dict[str, float] = {}


def touch(marker: str) -> None:
    """Record that `marker` happened now."""
    _marks[marker] = time.monotonic()


def age(marker: str) -> float | None:
    """Seconds since `marker` was last touched, or None if never."""
    mark = _marks.get(marker)
    return None if mark is None else time.monotonic() - mark
