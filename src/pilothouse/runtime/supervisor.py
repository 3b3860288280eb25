"""`pilothouse serve --workers N`: one supervisor, N worker processes, one ops port.

The supervisor binds the app socket and hands it to N spawned workers; each runs the
single-process server (`PilothouseServer`, without ops port) on that shared socket and the
kernel spreads connections over them. Only the supervisor serves the ops port, so the
orchestrator sees one coherent answer: readiness is READY only while every worker is up and
reports its own checks passing (each worker runs the configured checks against its own
initialized app, cached per TTL; the supervisor asks each over a pipe and shows one
`worker-<i>` check per worker, naming the failing checks), and `/metrics` adds up every
worker's samples (prometheus_client multiprocess mode, see `pilothouse.runtime.multiprocess`).

This module is the parent; `worker_process` is a worker's entry point and `readiness_pipe` the
questions and answers between them.

Shutdown, on the first SIGTERM/SIGINT to the supervisor, is the sequence of
`pilothouse.runtime.shutdown`:
  1. readiness fails at once;
  2. the workers keep serving for pre_stop_delay, so load balancers notice;
  3. each worker gets SIGTERM and drains like a single process (stop accepting, finish in-flight
     requests within drain_timeout, cut the rest, lifespan shutdown, flush); a worker still
     running after `Deadlines.child_exit` is killed; the supervisor's features drain beside;
  4. the supervisor flushes, marks itself STOPPED, closes the ops port and exits 0.
A second signal kills the workers and exits at once. A worker that dies while serving is
replaced. Workers ignore SIGINT: Ctrl-C reaches the whole process group, and only the
supervisor decides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
from dataclasses import dataclass, field
from multiprocessing.context import SpawnProcess
from multiprocessing.synchronize import Event
from typing import Any

from pilothouse.errors import OperationError
from pilothouse.runtime.checks import Check, CheckFailed
from pilothouse.runtime.checks.result import Probe
from pilothouse.runtime.connection_guard import quiet_accept_errors
from pilothouse.runtime.multiprocess import setup_dir, worker_exited
from pilothouse.runtime.ops_port import OpsPort
from pilothouse.runtime.readiness_pipe import ReadinessAsker
from pilothouse.runtime.runtime import Runtime
from pilothouse.runtime.server import HANDLED_SIGNALS, bind
from pilothouse.runtime.shutdown import Deadlines, Steps, run_shutdown
from pilothouse.runtime.signals import ShutdownSignals
from pilothouse.runtime.uvicorn_server import check_stack
from pilothouse.runtime.worker_process import worker_main

log = logging.getLogger("pilothouse.supervisor")

_spawn = multiprocessing.get_context("spawn")


@dataclass
class _Worker:
    index: int
    process: SpawnProcess
    started: Event
    readiness: ReadinessAsker
    restarts: int = field(default=0)

    def as_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "pid": self.process.pid,
            "alive": self.process.is_alive(),
            "started": self.started.is_set(),
            "restarts": self.restarts,
        }


class Supervisor:
    """Runs N workers on one app socket and the ops app for all of them."""

    def __init__(self, runtime: Runtime, app_ref: str, workers: int) -> None:
        self.runtime = runtime
        self.app_ref = app_ref
        self.count = workers
        self.workers: list[_Worker] = []
        self.ops = OpsPort(runtime)
        # Per worker: [in flight, dropped], published by the worker every 100 ms.
        self.counts: Any = _spawn.Array("q", 2 * workers, lock=False)
        self._stop = asyncio.Event()
        deadline = runtime.config.lifecycle.hard_exit_after
        self._signals = ShutdownSignals(runtime.lifecycle, self._stop, deadline, exit_now=self._kill_workers)
        runtime.inflight_source = self._counts
        runtime.status_extras = lambda: {"workers": [w.as_dict() for w in self.workers]}
        runtime.record_check_metrics = False  # the workers run and record the configured checks
        runtime.run_config_checks = False
        config = runtime.config
        # A worker answers within its slowest check's timeout; the pipe waits that plus a margin.
        self.answer_timeout = (
            max([config.probes.check_timeout, *map(config.check_timeout, config.checks)]) + 1
        )
        timeout = self.answer_timeout + 0.5
        for index in range(workers):
            runtime.add_check(Check(f"worker-{index}", "worker", True, timeout, self._worker_probe(index)))

    def _counts(self) -> tuple[int, int]:
        values = list(self.counts)
        return sum(values[0::2]), sum(values[1::2])

    def _worker_probe(self, index: int) -> Probe:
        async def probe() -> None:
            worker = self.workers[index] if index < len(self.workers) else None
            if worker is None or not worker.process.is_alive() or not worker.started.is_set():
                raise CheckFailed("worker not serving")
            failures = await asyncio.to_thread(worker.readiness.ask, self.answer_timeout)
            if failures:
                raise CheckFailed("; ".join(failures))

        return probe

    async def serve(self) -> int:
        self._signals.install(HANDLED_SIGNALS)
        quiet_accept_errors(asyncio.get_running_loop())
        try:
            await self.startup()
            await self.main_loop()
        finally:
            await self.shutdown()
        return 0

    # -- startup -----------------------------------------------------------------------------

    async def startup(self) -> None:
        config = self.runtime.config
        # [telemetry].multiprocess_dir if set (kept), else a temporary one (removed at exit).
        self._own_metrics_dir = config.telemetry.multiprocess_dir is None
        metrics_dir = config.telemetry.multiprocess_dir
        self._metrics_dir = setup_dir(None if metrics_dir is None else config.state_path(metrics_dir))
        await self.ops.start()
        self._app_socket = bind(config.service.host, config.service.port, "app")
        self._app_socket.listen(2048)
        self.runtime.start_checks()
        self.workers = [self._spawn(i) for i in range(self.count)]
        if not await self._wait_started(config.lifecycle.startup_timeout):
            return  # signalled while starting: shut down what started, exit 0
        await self.runtime.run_start_hooks()
        self.runtime.lifecycle.mark_ready()
        log.info(
            "serving %s on %s:%d with %d workers, ops on %s:%d",
            config.service.name,
            config.service.host,
            config.service.port,
            self.count,
            config.ops.host,
            config.ops.port,
        )

    def _spawn(self, index: int, restarts: int = 0) -> _Worker:
        started = _spawn.Event()
        ours, theirs = _spawn.Pipe()
        process = _spawn.Process(
            target=worker_main,
            args=(self.runtime.config, self.app_ref, self._app_socket, index, started, self.counts, theirs),
            name=f"pilothouse-worker-{index}",
        )
        process.start()
        theirs.close()
        return _Worker(index, process, started, ReadinessAsker(ours), restarts)

    async def _wait_started(self, limit: float) -> bool:
        """True once every worker has started; False if a signal asked to stop first."""
        deadline = asyncio.get_running_loop().time() + limit
        while not all(w.started.is_set() for w in self.workers):
            if self._stop.is_set():
                return False
            for worker in self.workers:
                if worker.process.exitcode is not None:
                    raise OperationError(
                        f"worker {worker.index} exited during startup with code {worker.process.exitcode}"
                    )
            if asyncio.get_running_loop().time() > deadline:
                raise OperationError(f"workers did not start within {limit:g}s")
            await asyncio.sleep(0.05)
        return True

    # -- serving -----------------------------------------------------------------------------

    async def main_loop(self) -> None:
        while not self._stop.is_set():
            for i, worker in enumerate(self.workers):
                if worker.process.exitcode is not None and not self.runtime.lifecycle.shutting_down:
                    log.warning(
                        "worker %d (pid %s) exited with %s; restarting",
                        worker.index,
                        worker.process.pid,
                        worker.process.exitcode,
                    )
                    if worker.process.pid is not None:
                        worker_exited(worker.process.pid)
                    self.workers[i] = self._spawn(worker.index, worker.restarts + 1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 0.2)

    # -- shutdown ----------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """The shutdown sequence (`pilothouse.runtime.shutdown`) with the supervisor's steps: the
        workers keep serving through the pre-stop wait, then each drains like a single process
        while the supervisor's own features (e.g. the job worker) drain beside them."""
        self._deadlines = Deadlines.of(self.runtime.config.lifecycle)
        steps = Steps(
            pre_stop=bool(self._signals.count and self.workers),
            stop_accepting=self._signal_workers,
            drain=self._stop_workers,
            feature_drain=self.runtime.run_drain_hooks,
            flush=self.runtime.flush,
            stop_ops=self.ops.stop,
        )
        await run_shutdown(self.runtime.lifecycle, steps, self._deadlines, reason="supervisor stopping")
        if getattr(self, "_own_metrics_dir", False):
            shutil.rmtree(self._metrics_dir, ignore_errors=True)
        log.info("stopped")

    async def _signal_workers(self) -> None:
        """Each worker stops accepting and drains; the supervisor's copy of the socket closes."""
        if hasattr(self, "_app_socket"):
            self._app_socket.close()
        for worker in self.workers:
            if worker.process.is_alive() and worker.process.pid is not None:
                os.kill(worker.process.pid, signal.SIGTERM)

    async def _stop_workers(self) -> None:
        """Wait for the signalled workers within the whole budget; kill what outlives it."""
        budget = self._deadlines.child_exit
        deadline = asyncio.get_running_loop().time() + budget
        for worker in self.workers:
            remaining = max(0.0, deadline - asyncio.get_running_loop().time())
            await asyncio.to_thread(worker.process.join, remaining)
            if worker.process.is_alive():
                log.warning("worker %d did not stop within %.0fs; killing it", worker.index, budget)
                worker.process.kill()
            worker.process.join(1)
            if worker.process.pid is not None:
                worker_exited(worker.process.pid)
        _, dropped = self._counts()
        if dropped:
            log.warning("drain timeout: %d request(s) cut", dropped)

    def _kill_workers(self) -> None:
        for worker in self.workers:
            worker.process.kill()


def run(runtime: Runtime, app_ref: str, workers: int) -> int:
    """Serve with `workers` processes until signalled; the process exit code."""
    check_stack(runtime.config)  # one line here, not one per worker
    return asyncio.run(Supervisor(runtime, app_ref, workers).serve())
