"""Log lines for events that can come in floods (refused connections, failed accepts).

A flood of connections must not become a flood of log lines (each with a traceback): an event is
counted every time, logged the first time, then at most once per interval with the count since
the last line. The log stays a few lines a minute however hard the port is hit.
"""

from __future__ import annotations

import logging
import time


class ThrottledLog:
    """`log(text)` counts; a line goes out at most once per `interval` seconds."""

    __slots__ = ("_last", "_logger", "_pending", "interval", "level", "total")

    def __init__(self, logger: logging.Logger, level: int = logging.WARNING, interval: float = 10.0) -> None:
        self._logger = logger
        self.level = level
        self.interval = interval
        self.total = 0
        self._pending = 0
        self._last = -interval

    def __call__(self, text: str) -> None:
        self.total += 1
        self._pending += 1
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._logger.log(
            self.level, "%s (%d time(s) since the last such line, %d in all)", text, self._pending, self.total
        )
        self._last, self._pending = now, 0
