"""The one shutdown sequence (`pilothouse.runtime.shutdown`): its order, its one drain deadline,
and the deadlines derived from `[lifecycle]` for every process kind."""

from __future__ import annotations

import asyncio
import socket

import pytest

from pilothouse.config import config_from_dict
from pilothouse.config.lifecycle import LifecycleConfig
from pilothouse.runtime.lifecycle import Lifecycle, State
from pilothouse.runtime.runtime import Runtime
from pilothouse.runtime.server import PilothouseServer
from pilothouse.runtime.shutdown import Deadlines, Phase, Step, Steps, run_shutdown


def recording_steps(ran: list[Phase], lifecycle: Lifecycle) -> Steps:
    """Steps that record their phase (and check the lifecycle state each runs in)."""

    def step(phase: Phase) -> Step:
        async def run() -> None:
            expected = State.STOPPED if phase is Phase.STOP_OPS else State.DRAINING
            assert lifecycle.state is expected, phase
            ran.append(phase)

        return run

    return Steps(
        pre_stop=True,
        stop_accepting=step(Phase.STOP_ACCEPTING),
        drain=step(Phase.DRAIN),
        feature_drain=step(Phase.FEATURE_DRAIN),
        lifespan=step(Phase.LIFESPAN),
        flush=step(Phase.FLUSH),
        stop_ops=step(Phase.STOP_OPS),
    )


async def test_every_phase_runs_once_in_order() -> None:
    lifecycle = Lifecycle()
    lifecycle.mark_ready()
    ran: list[Phase] = []
    entered: list[Phase] = []
    await run_shutdown(
        lifecycle, recording_steps(ran, lifecycle), Deadlines(0.0, 1.0, 1.0), on_phase=entered.append
    )
    assert entered == list(Phase)
    assert ran == [p for p in Phase if p not in (Phase.FAIL_READINESS, Phase.PRE_STOP)]
    assert lifecycle.state is State.STOPPED and lifecycle.drain_reason == "shutting down"


async def test_a_process_without_a_step_keeps_the_order_of_the_others() -> None:
    lifecycle = Lifecycle()
    ran: list[Phase] = []
    steps = recording_steps(ran, lifecycle)
    steps.pre_stop, steps.stop_accepting, steps.drain, steps.lifespan = False, None, None, None
    entered: list[Phase] = []
    await run_shutdown(lifecycle, steps, Deadlines(5.0, 1.0, 1.0), on_phase=entered.append)
    assert entered == [Phase.FAIL_READINESS, Phase.FEATURE_DRAIN, Phase.FLUSH, Phase.STOP_OPS]
    assert ran == [Phase.FEATURE_DRAIN, Phase.FLUSH, Phase.STOP_OPS]


async def test_the_drain_and_the_feature_drain_share_one_deadline() -> None:
    """The feature drain runs beside the request drain and is cut at the drain deadline; what
    follows still runs. Both drains wait on an event that only the other one sets, so the test
    ends only if they run at the same time (no clock is asserted)."""
    lifecycle = Lifecycle()
    both = asyncio.Event(), asyncio.Event()
    ran: list[str] = []

    async def drain() -> None:
        both[0].set()
        await both[1].wait()
        ran.append("drain")

    async def feature_drain() -> None:
        both[1].set()
        await both[0].wait()
        await asyncio.Event().wait()  # never finishes by itself: the deadline ends it

    async def flush() -> None:
        ran.append("flush")

    steps = Steps(drain=drain, feature_drain=feature_drain, flush=flush)
    # A wait far beyond the drain deadline: reaching it means the deadline did not hold.
    await asyncio.wait_for(
        run_shutdown(lifecycle, steps, Deadlines(pre_stop=60.0, drain=0.05, flush=1.0)), 30
    )
    assert ran == ["drain", "flush"]
    assert lifecycle.state is State.STOPPED


async def test_the_pre_stop_wait_is_the_pre_stop_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("pilothouse.runtime.shutdown.asyncio.sleep", sleep)
    await run_shutdown(Lifecycle(), Steps(pre_stop=True), Deadlines(7.5, 1.0, 1.0))
    await run_shutdown(Lifecycle(), Steps(pre_stop=False), Deadlines(7.5, 1.0, 1.0))
    assert slept == [7.5]


async def test_an_operator_drain_reason_is_kept() -> None:
    lifecycle = Lifecycle()
    lifecycle.mark_ready()
    lifecycle.drain("maintenance")
    await run_shutdown(lifecycle, Steps(), Deadlines(0, 0, 0), reason="supervisor stopping")
    assert lifecycle.drain_reason == "maintenance" and lifecycle.shutting_down


def test_deadlines_come_from_the_lifecycle_section() -> None:
    lifecycle = LifecycleConfig(pre_stop_delay="4s", drain_timeout="20s", flush_timeout="3s")
    deadlines = Deadlines.of(lifecycle)
    assert (deadlines.pre_stop, deadlines.drain, deadlines.flush) == (4, 20, 3)
    # A parent waits for a child's drain and flush (the child has no pre-stop wait of its own)...
    assert deadlines.child_exit == 20 + 3 + 2
    # ...and kills a stuck child before its own forced exit ends the parent.
    assert deadlines.pre_stop + deadlines.child_exit <= lifecycle.hard_exit_after
    # Running jobs get the drain minus the cancel grace (and a second), so the kill that follows
    # the cancellation still lands inside the one drain deadline.
    assert deadlines.job_grace(5) == 14
    assert deadlines.job_grace(5) + 5 + 1 == deadlines.drain
    assert deadlines.job_grace(30) == 0


def test_serve_runs_every_phase() -> None:
    """The single-process server hands a step to every phase after a signal (a worker under the
    supervisor: no pre-stop wait and no ops port)."""
    runtime = Runtime(config_from_dict({"service": {"name": "svc"}}))

    async def app(scope: object, receive: object, send: object) -> None:
        return None

    async def steps_of(serve_ops: bool) -> Steps:
        server = PilothouseServer(runtime, app, serve_ops=serve_ops)
        server._app_loop = asyncio.create_task(asyncio.sleep(0))  # started
        server._app_socket = socket.socket()
        server._signals.count = 1
        try:
            return server._steps()
        finally:
            server._app_socket.close()
            await server._app_loop

    full = asyncio.run(steps_of(True))
    assert full.pre_stop and all(
        step is not None
        for step in (
            full.stop_accepting,
            full.drain,
            full.feature_drain,
            full.lifespan,
            full.flush,
            full.stop_ops,
        )
    )
    worker = asyncio.run(steps_of(False))
    assert not worker.pre_stop and worker.stop_ops is None and worker.lifespan is not None
