"""What a step receives: its job's parameters, a logger that tags every line with the job id
and step, a cancellation flag, `run()` for subprocesses the worker can kill, and the paths of
its declared outputs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import threading
from collections.abc import MutableMapping, Sequence
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("pilothouse.jobs")


class Cancelled(Exception):
    """Raised by `StepContext.raise_if_cancelled()`: the job was asked to stop."""


class _Killable(Protocol):
    pid: int


class StepLog(logging.LoggerAdapter[logging.Logger]):
    """Adds `job_id`, `job`, `step` and `attempt` as log record attributes (JSON log fields)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


class StepContext:
    """One attempt of one step. Shared state between steps goes in `shared`."""

    def __init__(
        self,
        job_id: int,
        job: str,
        step: str,
        attempt: int,
        params: dict[str, Any],
        shared: dict[str, Any],
        max_rc: int,
        outputs: Sequence[Path] = (),
    ) -> None:
        self.job_id = job_id
        self.job = job
        self.step = step
        self.attempt = attempt
        self.params = params
        self.shared = shared
        self.max_rc = max_rc
        self.outputs = list(outputs)  # the step's declared outputs, resolved: write these
        self.log = StepLog(log, {"job_id": job_id, "job": job, "step": step, "attempt": attempt})
        self._stop = threading.Event()
        self._stop_async = asyncio.Event()
        self._processes: set[_Killable] = set()

    # -- cooperative cancellation (also set when the step times out) ---------------------------

    @property
    def cancelled(self) -> bool:
        return self._stop.is_set()

    def raise_if_cancelled(self) -> None:
        if self._stop.is_set():
            raise Cancelled(f"job {self.job_id} cancelled")

    def wait_cancelled(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds in a plain (thread) step, waking early (True) on cancellation."""
        return self._stop.wait(timeout)

    async def sleep(self, seconds: float) -> bool:
        """Sleep in a coroutine step, waking early (True) on cancellation."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stop_async.wait()
        return self.cancelled

    def request_stop(self) -> None:
        """Called on the event loop's thread (cancel, timeout)."""
        self._stop.set()
        self._stop_async.set()

    # -- subprocesses the worker may kill ------------------------------------------------------

    async def run(self, *argv: str, check: bool = False) -> int:
        """Run a command (its own process group) from a coroutine step; return its exit code."""
        proc = await asyncio.create_subprocess_exec(*argv, start_new_session=True)
        self._processes.add(proc)
        try:
            code = await proc.wait()
        finally:
            self._processes.discard(proc)
        if check and code:
            raise subprocess.CalledProcessError(code, argv)
        return code

    def run_sync(self, *argv: str, check: bool = False) -> int:
        """Run a command from a plain (thread) step; return its exit code."""
        proc = subprocess.Popen(argv, start_new_session=True)
        self._processes.add(proc)
        try:
            code = proc.wait()
        finally:
            self._processes.discard(proc)
        if check and code:
            raise subprocess.CalledProcessError(code, argv)
        return code

    def kill(self) -> int:
        """SIGKILL every subprocess group this step started; the number killed."""
        killed = 0
        for proc in list(self._processes):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
        return killed
