"""The shutdown signal policy shared by the server and the `--workers` supervisor.

The first SIGTERM/SIGINT starts the graceful shutdown (readiness fails at once, then drain);
a second one means "now": the process exits at once with 128 + the signal number, after
`exit_now` (the supervisor kills its workers there).

Whatever a shutdown waits on (a frozen dependency, an app whose shutdown blocks the event loop),
the process is gone by `[lifecycle].hard_exit_after` seconds after the first signal: a daemon
timer logs one line and exits with status 1, before the orchestrator's SIGKILL would.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable

from pilothouse.runtime.lifecycle import Lifecycle

log = logging.getLogger("pilothouse.server")


class ShutdownSignals:
    """Counts shutdown signals and acts on them; `count` tells whether one arrived."""

    def __init__(
        self,
        lifecycle: Lifecycle,
        stop: asyncio.Event,
        deadline: float,
        exit_now: Callable[[], None] | None = None,
    ) -> None:
        """`deadline`: seconds from the first signal to the forced exit."""
        self.count = 0
        self._lifecycle = lifecycle
        self._stop = stop
        self._deadline = deadline
        self._exit_now = exit_now

    def install(self, signals: Iterable[int]) -> None:
        """Handle `signals` in the running event loop."""
        loop = asyncio.get_running_loop()
        for sig in signals:
            loop.add_signal_handler(sig, self, sig)

    def __call__(self, sig: int) -> None:
        self.count += 1
        name = signal.Signals(sig).name
        if self.count > 1:
            log.warning("second %s: exiting now without draining", name)
            if self._exit_now is not None:
                self._exit_now()
            logging.shutdown()
            os._exit(128 + sig)
        self._lifecycle.begin_shutdown(f"{name} received")
        self._stop.set()
        overdue = threading.Timer(self._deadline, self._overdue)
        overdue.daemon = True
        overdue.start()

    def _overdue(self) -> None:
        log.error("shutdown did not finish within %gs of the signal; exiting now", self._deadline)
        if self._exit_now is not None:
            self._exit_now()
        os._exit(1)
