"""The process lifecycle: STARTING -> READY -> DRAINING -> STOPPED.

Readiness follows the state (only READY accepts traffic); liveness does not, so a draining pod
is never killed for being slow to stop. An operator drain (admin endpoint) is DRAINING that can
be undone; a shutdown drain cannot.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

Listener = Callable[["State"], None]


class State(enum.StrEnum):
    """Where the process is; shown on /status and /ready and as `pilothouse_lifecycle_state`."""

    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"


class Lifecycle:
    """The one state machine the ops endpoints, metrics and app code read."""

    def __init__(self) -> None:
        self.state = State.STARTING
        self.since = time.time()
        self.started_at = self.since
        self.shutting_down = False
        self.drain_reason: str | None = None
        self.broken_reason: str | None = None
        self._listeners: list[Listener] = []

    @property
    def accepting_traffic(self) -> bool:
        return self.state is State.READY

    @property
    def live(self) -> bool:
        return self.broken_reason is None

    def subscribe(self, listener: Listener) -> None:
        """Call `listener(state)` on every transition (and once now)."""
        self._listeners.append(listener)
        listener(self.state)

    def mark_ready(self) -> None:
        """Startup finished. An operator drain requested during startup stays in force."""
        if self.state is State.STARTING:
            self._move(State.DRAINING if self.drain_reason else State.READY)

    def drain(self, reason: str = "operator") -> None:
        """Stop taking traffic (readiness 503) while still serving what arrives."""
        self.drain_reason = reason
        if self.state is State.READY:
            self._move(State.DRAINING)

    def undrain(self) -> bool:
        """Undo an operator drain; refused (False) once shutdown has begun."""
        if self.shutting_down:
            return False
        self.drain_reason = None
        if self.state is State.DRAINING:
            self._move(State.READY)
        return True

    def begin_shutdown(self, reason: str) -> None:
        """A signal (or lifespan shutdown) arrived: DRAINING for good, readiness fails from now."""
        self.shutting_down = True
        self.drain_reason = reason
        if self.state in (State.STARTING, State.READY):
            self._move(State.DRAINING)

    def mark_stopped(self) -> None:
        self._move(State.STOPPED)

    def mark_broken(self, reason: str) -> None:
        """The app declares itself unrecoverable: liveness fails and the orchestrator restarts it."""
        self.broken_reason = reason

    def _move(self, state: State) -> None:
        if state is self.state:
            return
        self.state = state
        self.since = time.time()
        for listener in self._listeners:
            listener(state)
