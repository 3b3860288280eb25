"""Per-request time limits without a timer per request.

`asyncio.timeout()` around each request costs a `TimerHandle`, a heap push and a cancel per
request — measured at about 8 µs of the ~9 µs the protection defaults cost in process
(bench/middleware_cost-style loop, 2026-12-02), most of the layer. Instead each request records
its task and deadline in a dict (two C-level dict operations), and one periodic sweep per
process, every `tick` (a tenth of the shortest limit, 10 ms to 1 s), cancels the tasks past
their deadline and remembers them, so the middleware can tell its own cancellation (answer
504) from anyone else's, e.g. the drain's (re-raise). A limit is thus enforced within one tick.
"""

from __future__ import annotations

import asyncio


class Deadlines:
    """The running requests' deadlines and the sweep that enforces them."""

    __slots__ = ("_expired", "_handle", "_loop", "_running", "tick")

    def __init__(self, shortest_limit: float) -> None:
        self.tick = min(1.0, max(0.01, shortest_limit / 10))
        self._running: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, limit: float) -> asyncio.Task[object] | None:
        """Track the current task under `limit` seconds; the task to pass to `finish`."""
        task = asyncio.current_task()
        if task is None:
            return None
        loop = self._loop
        if loop is None or self._handle is None:
            loop = self._loop = asyncio.get_running_loop()
            self._handle = loop.call_later(self.tick, self._sweep)
        self._running[task] = loop.time() + limit
        return task

    def finish(self, task: asyncio.Task[object] | None) -> None:
        if task is not None:
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

    def _sweep(self) -> None:
        loop = self._loop
        assert loop is not None
        now = loop.time()
        late = [task for task, deadline in self._running.items() if deadline <= now]
        for task in late:
            del self._running[task]
            if not task.done():
                self._expired.add(task)
                task.cancel()
        self._handle = loop.call_later(self.tick, self._sweep) if not loop.is_closed() else None
