"""The shutdown signal policy shared by the server and the `--workers` supervisor, and how
`attach` follows the signals of a host server it does not own.

The first SIGTERM/SIGINT starts the graceful shutdown (readiness fails at once, then drain);
a second one means "now": the process exits at once with 128 + the signal number, after
`exit_now` (the supervisor kills its workers there).

Whatever a shutdown waits on (a frozen dependency, an app whose shutdown blocks the event loop),
the process is gone by `[lifecycle].hard_exit_after` seconds after the first signal: a daemon
timer logs one line and exits with status 1, before the orchestrator's SIGKILL would.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

from pilothouse.runtime.lifecycle import Lifecycle

log = logging.getLogger("pilothouse.server")

Handler = Callable[[int, FrameType | None], Any]


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


class HostSignals:
    """Readiness fails when the host server is told to stop, not when it is done draining.

    uvicorn stops accepting and waits for open connections before it runs the lifespan shutdown,
    so readiness that waited for the lifespan would stay 200 while the app port already refuses.
    Host servers install their SIGTERM/SIGINT handlers with `signal.signal` before the lifespan
    starts (uvicorn's `capture_signals`; asyncio's `add_signal_handler` leaves a Python handler
    too): each is wrapped so the lifecycle moves to DRAINING on the event loop, then the host's
    handler runs unchanged. A signal the host does not handle (default or ignored) is left alone.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, wrapped: dict[signal.Signals, tuple[Handler, Handler]]) -> None:
        self._wrapped = wrapped

    @classmethod
    def follow(cls, lifecycle: Lifecycle) -> HostSignals | None:
        if threading.current_thread() is not threading.main_thread():
            return None  # signal handlers can only be set from the main thread
        loop = asyncio.get_running_loop()
        wrapped: dict[signal.Signals, tuple[Handler, Handler]] = {}
        for sig in cls.SIGNALS:
            host = signal.getsignal(sig)
            if not callable(host):
                continue

            def handler(signum: int, frame: FrameType | None, host: Handler = host) -> None:
                reason = f"{signal.Signals(signum).name} received"
                with contextlib.suppress(RuntimeError):  # the loop is closed: nothing to mark
                    loop.call_soon_threadsafe(lifecycle.begin_shutdown, reason)
                host(signum, frame)

            signal.signal(sig, handler)
            wrapped[sig] = (host, handler)
        return cls(wrapped)

    def restore(self) -> None:
        """Put the host's handlers back (unless something replaced ours meanwhile)."""
        for sig, (host, ours) in self._wrapped.items():
            if signal.getsignal(sig) is ours:
                signal.signal(sig, host)
