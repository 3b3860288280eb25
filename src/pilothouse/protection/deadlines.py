"""Per-request time limits without a timer per request.

`asyncio.timeout()` around each request costs a `TimerHandle`, a heap push and a cancel per
request — measured at about 8 µs of the ~9 µs the protection defaults cost in process
(bench/middleware_cost-style loop, 2026-12-02), most of the layer. Instead each request records
its task and deadline in a dict (two C-level dict operations and a `time.monotonic()` call), and
one timer per process fires at the earliest deadline of the running requests: it cancels the
tasks past their deadline, remembers them, so the middleware can tell its own cancellation
(answer 504) from anyone else's, e.g. the drain's (re-raise), and re-arms itself at the next
earliest deadline (none while no request runs). A limit is thus enforced when it passes, as
precisely as the loop runs its timers, with one timer event per time limit rather than per
request: under a steady load with the 60 s default, one wake-up a minute.
"""

from __future__ import annotations

import asyncio
from time import monotonic

_current_task = asyncio.current_task
_running_loop = asyncio.get_running_loop


class Deadlines:
    """The running requests' deadlines and the timer that enforces them."""

    __slots__ = ("_expired", "_handle", "_loop", "_next", "_running")

    def __init__(self) -> None:
        self._running: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next = float("inf")  # when the timer fires (inf: not armed)

    @property
    def armed(self) -> bool:
        """Whether the timer is set (only while requests run, or until it next fires)."""
        return self._handle is not None

    def start(self, limit: float) -> asyncio.Task[object] | None:
        """Track the current task under `limit` seconds; the task to pass to `finish`."""
        loop = _running_loop()
        task = _current_task(loop)
        if task is None:
            return None
        deadline = self._running[task] = monotonic() + limit
        # Not armed, armed for later (a shorter route limit), or armed on an earlier loop.
        if deadline < self._next or loop is not self._loop:
            self._arm(loop, deadline)
        return task

    def finish(self, task: asyncio.Task[object]) -> None:
        self._running.pop(task, None)
        if self._expired:
            self._expired.discard(task)

    def expired(self, task: asyncio.Task[object] | None) -> bool:
        """Whether `task` was cancelled here for passing its deadline (then it is uncancelled,
        so it can still answer)."""
        if task is None or task not in self._expired:
            return False
        self._expired.discard(task)
        task.uncancel()
        return True

    def _arm(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._loop = loop
        # call_later with the delay measured here: the loop's clock need not be time.monotonic
        # (uvloop keeps its own).
        self._handle = loop.call_later(max(0.0, deadline - monotonic()), self._fire)
        self._next = deadline

    def _fire(self) -> None:
        self._handle = None
        self._next = float("inf")
        now = monotonic()
        late = [task for task, deadline in self._running.items() if deadline <= now]
        for task in late:
            del self._running[task]
            if not task.done() and not task.get_loop().is_closed():
                self._expired.add(task)
                task.cancel()
        if self._running and self._loop is not None:
            self._arm(self._loop, min(self._running.values()))
