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

The per-request part is done by the middleware itself, inline (`running[task] = deadline`,
`arm` when that is earlier than `next` or on another loop; `running.pop(task)` at the end, and
`forget` when the timer had taken it out): a method call is ~0.5k instructions, and the
protection defaults' budget against a hand-written layer is a few thousand (docs/performance.md,
"Second cost pass").
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable
from time import monotonic

TaskLookup = Callable[[asyncio.AbstractEventLoop], "asyncio.Task[object] | None"]


def task_lookup() -> TaskLookup:
    """`asyncio.current_task(loop)` as cheaply as this Python has it.

    On 3.11 `current_task` is a Python function returning `_current_tasks.get(loop)`, a dict of
    the running task by loop (the C module's): about 1.2k instructions a call under callgrind,
    against 0.3k for that dict's own `get` — and it runs for every request the time limit
    tracks. The dict is private, so its `get` is used only when `current_task` is such a Python
    function reading exactly that dict (checked here, at import); anything else (3.12+, where
    `current_task` is C and cheap, or another asyncio) gets the public function."""
    public = asyncio.current_task
    running: object = vars(asyncio.tasks).get("_current_tasks")
    if not isinstance(public, types.FunctionType) or "_current_tasks" not in public.__code__.co_names:
        return public
    if public.__globals__.get("_current_tasks") is not running or not isinstance(running, dict):
        return public
    lookup: TaskLookup = running.get
    return lookup


running_loop = asyncio.get_running_loop
current_task = task_lookup()


class Deadlines:
    """The running requests' deadlines and the timer that enforces them.

    `running` (task → deadline, `time.monotonic()`), `next` (when the timer fires; inf: not
    armed) and `loop` (the loop it is armed on) are read and written by the middleware per
    request; the rest only when a limit passes."""

    __slots__ = ("_expired", "_handle", "loop", "next", "running")

    def __init__(self) -> None:
        self.running: dict[asyncio.Task[object], float] = {}
        self._expired: set[asyncio.Task[object]] = set()
        self._handle: asyncio.TimerHandle | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.next = float("inf")  # when the timer fires (inf: not armed)

    @property
    def cut(self) -> int:
        """How many tasks were cut here and not yet answered or finished."""
        return len(self._expired)

    @property
    def armed(self) -> bool:
        """Whether the timer is set (only while requests run, or until it next fires)."""
        return self._handle is not None

    def forget(self, task: asyncio.Task[object]) -> None:
        """A finished request whose task was no longer in `running`, i.e. cut here: not to be
        remembered as cut (a handler may swallow the cancellation and return normally)."""
        self._expired.discard(task)

    def expired(self, task: asyncio.Task[object] | None) -> bool:
        """Whether `task` was cancelled here for passing its deadline (then it is uncancelled,
        so it can still answer)."""
        if task is None or task not in self._expired:
            return False
        self._expired.discard(task)
        task.uncancel()
        return True

    def arm(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        """Fire at `deadline` on `loop` (replacing the timer armed before)."""
        if self._handle is not None:
            self._handle.cancel()
        self.loop = loop
        # call_later with the delay measured here: the loop's clock need not be time.monotonic
        # (uvloop keeps its own).
        self._handle = loop.call_later(max(0.0, deadline - monotonic()), self._fire)
        self.next = deadline

    def _fire(self) -> None:
        self._handle = None
        self.next = float("inf")
        now = monotonic()
        late = [task for task, deadline in self.running.items() if deadline <= now]
        for task in late:
            del self.running[task]
            if not task.done() and not task.get_loop().is_closed():
                self._expired.add(task)
                task.cancel()
        if self.running and self.loop is not None:
            self.arm(self.loop, min(self.running.values()))
