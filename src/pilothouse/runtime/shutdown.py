"""The one shutdown sequence, and every shutdown deadline, for each kind of process.

`pilothouse serve` (one process or a `--workers` worker), the `--workers` supervisor, `attach`
under a host server and `pilothouse jobs worker` all stop in the same order:

  1. fail readiness      the lifecycle moves to DRAINING (the signal handler usually did it);
  2. pre-stop wait       keep serving `[lifecycle].pre_stop_delay` so load balancers notice
                         (only after a signal, and only where this process owns the ops port);
  3. stop accepting      the listening socket closes (or the workers are told to);
  4. drain               in-flight requests (or worker processes) finish within the drain
                         deadline; what is left is cut;
  5. feature drain       beside the drain, under the same one deadline (e.g. running jobs);
  6. lifespan shutdown   the app's own shutdown (close pools), after both drains;
  7. flush               telemetry, under `[lifecycle].flush_timeout`;
  8. stop ops port       the lifecycle is STOPPED; the ops port answers until here, then closes.

A process kind without a step (attach: the host server owns the socket and the lifespan) leaves
it out; the order of the others never changes. `Deadlines` derives every number from
`[lifecycle]`, so the deadlines a parent waits for a child and the grace jobs get are computed
here, beside the sequence they bound, and nowhere else.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from pilothouse.config.lifecycle import LifecycleConfig
from pilothouse.runtime.lifecycle import Lifecycle

log = logging.getLogger("pilothouse.server")

Step = Callable[[], Awaitable[None]]

CHILD_EXIT_SLACK = 2.0
"""Seconds a parent adds to a child's drain and flush for the child to receive its signal, exit
its interpreter and be reaped."""

JOB_CANCEL_SLACK = 1.0
"""Seconds kept free after a cancelled job's kill so the job feature's drain ends inside the
drain deadline."""


class Phase(enum.Enum):
    """The phases of a shutdown, in the only order they run."""

    FAIL_READINESS = "fail readiness"
    PRE_STOP = "pre-stop wait"
    STOP_ACCEPTING = "stop accepting"
    DRAIN = "drain"
    FEATURE_DRAIN = "feature drain"
    LIFESPAN = "lifespan shutdown"
    FLUSH = "flush"
    STOP_OPS = "stop ops port"


@dataclass(frozen=True)
class Deadlines:
    """Every shutdown deadline of a process, from `[lifecycle]`."""

    pre_stop: float
    drain: float
    flush: float

    @classmethod
    def of(cls, lifecycle: LifecycleConfig) -> Deadlines:
        return cls(lifecycle.pre_stop_delay, lifecycle.drain_timeout, lifecycle.flush_timeout)

    @property
    def child_exit(self) -> float:
        """How long a parent waits for a signalled child process (it drains and flushes like a
        single process, without the pre-stop wait the parent already did) before killing it."""
        return self.drain + self.flush + CHILD_EXIT_SLACK

    def job_grace(self, cancel_grace: float) -> float:
        """The time running jobs get to finish on their own, so that their cancellation and,
        `cancel_grace` later, their kill still fit inside the one drain deadline."""
        return max(0.0, self.drain - cancel_grace - JOB_CANCEL_SLACK)


@dataclass
class Steps:
    """What one kind of process does in each phase; None where it has nothing to do."""

    pre_stop: bool = False
    stop_accepting: Step | None = None
    drain: Step | None = None
    feature_drain: Step | None = None
    lifespan: Step | None = None
    flush: Step | None = None
    stop_ops: Step | None = None


async def run_shutdown(
    lifecycle: Lifecycle,
    steps: Steps,
    deadlines: Deadlines,
    *,
    reason: str = "shutting down",
    on_phase: Callable[[Phase], None] | None = None,
) -> None:
    """Run the shutdown phases in order, each bounded by its deadline."""

    def enter(phase: Phase) -> None:
        if on_phase is not None:
            on_phase(phase)

    enter(Phase.FAIL_READINESS)
    if not lifecycle.shutting_down:
        lifecycle.begin_shutdown(lifecycle.drain_reason or reason)
    if steps.pre_stop:
        enter(Phase.PRE_STOP)
        log.info("draining: readiness fails now; serving for %.1fs more", deadlines.pre_stop)
        await asyncio.sleep(deadlines.pre_stop)
    if steps.stop_accepting is not None:
        enter(Phase.STOP_ACCEPTING)
        await steps.stop_accepting()
    drains: list[Awaitable[None]] = []
    if steps.drain is not None:
        enter(Phase.DRAIN)
        drains.append(steps.drain())
    if steps.feature_drain is not None:
        enter(Phase.FEATURE_DRAIN)
        drains.append(_bounded(steps.feature_drain, deadlines.drain, "feature drain"))
    await asyncio.gather(*drains)
    if steps.lifespan is not None:
        enter(Phase.LIFESPAN)
        await steps.lifespan()
    if steps.flush is not None:
        enter(Phase.FLUSH)
        await steps.flush()
    enter(Phase.STOP_OPS)
    lifecycle.mark_stopped()
    if steps.stop_ops is not None:
        await steps.stop_ops()


async def _bounded(step: Step, limit: float, what: str) -> None:
    try:
        await asyncio.wait_for(step(), limit)
    except TimeoutError:
        log.warning("%s did not finish within the drain timeout", what)
