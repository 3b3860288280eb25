"""Running one job: steps in order, return-code bookkeeping, timeouts, retries, cancellation.

Cancellation has two phases. `cancel()` is cooperative: the running step sees
`ctx.cancelled` and no further step starts. `kill()` is forceful: the step's subprocesses get
SIGKILL and its task is cancelled (a plain function running in a thread cannot be stopped by
Python; it is abandoned and the job is recorded as cancelled anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pilothouse.jobs.context import Cancelled, StepContext, StepLog, log
from pilothouse.jobs.definition import ABEND_RC, ERROR, Abend, Job, Step, rc_outcome
from pilothouse.jobs.tracing import finish_span, job_span, step_span
from pilothouse.redaction import redact

if TYPE_CHECKING:
    from pilothouse.jobs.attest import OutputAttester

FAILED_TRY = ("abend", "timeout")  # a try that may be retried
ERROR_OUTCOMES = ("error", *FAILED_TRY)  # counted in pilothouse_job_errors_total: RC 8+ too
ATTEST_STEP = "provenance"  # the step that signs a run's outputs (jobs/attest.py)


@dataclass(frozen=True, slots=True)
class StepResult:
    seq: int
    name: str
    outcome: str
    rc: int | None
    tries: int
    duration: float
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RunResult:
    outcome: str
    max_rc: int
    steps: tuple[StepResult, ...]
    error: str | None = None


class Observer(Protocol):
    """Told about every step as it happens (the store and the metrics listen)."""

    async def step_started(self, seq: int, step: Step) -> None: ...
    async def step_finished(self, result: StepResult) -> None: ...
    def attempt_failed(self, step: Step, outcome: str) -> None: ...


def job_outcome(max_rc: int, steps: list[StepResult], cancelled: bool) -> str:
    if cancelled:
        return "cancelled"
    if max_rc >= ERROR or any(s.outcome in FAILED_TRY for s in steps):
        return "failed"
    return "warning" if max_rc else "ok"


class Execution:
    """One run (attempt) of one job."""

    def __init__(
        self,
        job: Job,
        job_id: int,
        params: dict[str, Any],
        observer: Observer,
        *,
        attempt: int = 1,
        traceparent: str | None = None,
        attester: OutputAttester | None = None,
    ) -> None:
        self.job = job
        self.job_id = job_id
        self.params = params
        self.observer = observer
        self.attempt = attempt
        self.traceparent = traceparent
        self.attester = attester if job.outputs else None
        self.cancel_reason: str | None = None
        self.log = StepLog(log, {"job_id": job_id, "job": job.name, "attempt": attempt})
        self._ctx: StepContext | None = None
        self._inner: asyncio.Future[Any] | None = None

    def cancel(self, reason: str) -> None:
        """Ask the running step to stop; start no further step."""
        if self.cancel_reason is None:
            self.cancel_reason = reason
            self.log.info("cancel requested: %s", reason)
        if self._ctx is not None:
            self._ctx.request_stop()

    def kill(self) -> None:
        """Kill the running step's subprocesses and cancel its task."""
        self.cancel(self.cancel_reason or "killed")
        if self._ctx is not None and self._ctx.kill():
            self.log.warning("killed the subprocesses of step %s", self._ctx.step)
        if self._inner is not None:
            self._inner.cancel()

    async def run(self) -> RunResult:
        results: list[StepResult] = []
        max_rc, shared, stopped = 0, dict[str, Any](), False
        started, produced = datetime.now(UTC), list[tuple[str, Path]]()
        steps = list(self.job.steps)
        if self.attester is not None:
            steps.append(Step(ATTEST_STEP, self._attest_step(started, produced, results)))
        with job_span(self.job.name, self.job_id, self.attempt, self.traceparent) as span:
            self.log.info("job %s started (attempt %d)", self.job.name, self.attempt)
            for seq, step in enumerate(steps, 1):
                skip = None
                if self.cancel_reason is not None:
                    skip = "cancelled"
                elif stopped or (step.when_below is not None and max_rc >= step.when_below):
                    skip = "skipped"
                elif step.name == ATTEST_STEP and self.attester is not None and max_rc >= ERROR:
                    skip = "skipped"  # a failed run's outputs are not vouched for
                if skip is not None:
                    result = StepResult(seq, step.name, skip, None, 0, 0.0)
                else:
                    await self.observer.step_started(seq, step)
                    result = await self._run_step(seq, step, max_rc, shared, produced)
                    stopped = result.outcome in FAILED_TRY
                    max_rc = max(max_rc, result.rc or 0)
                await self.observer.step_finished(result)
                results.append(result)
            outcome = job_outcome(max_rc, results, self.cancel_reason is not None)
            error = self.cancel_reason or next((r.error for r in results if r.error), None)
            finish_span(span, rc=max_rc, outcome=outcome, error=error)
            self.log.info("job %s ended: %s, RC %d", self.job.name, outcome, max_rc)
        return RunResult(outcome, max_rc, tuple(results), error)

    def _attest_step(
        self, started: datetime, produced: list[tuple[str, Path]], results: list[StepResult]
    ) -> Callable[[StepContext], Awaitable[int]]:
        """The `provenance` step: sign what the steps that ran declared (jobs/attest.py)."""
        attester = self.attester
        assert attester is not None

        async def provenance(ctx: StepContext) -> int:
            steps = [{"name": r.name, "outcome": r.outcome, "rc": r.rc, "tries": r.tries} for r in results]
            written = await asyncio.to_thread(
                attester.attest, self.job, self.job_id, self.attempt, self.params, produced, started, steps
            )
            ctx.log.info("signed provenance for %d output(s): %s", len(produced), " ".join(map(str, written)))
            return 0

        return provenance

    async def _run_step(
        self, seq: int, step: Step, max_rc: int, shared: dict[str, Any], produced: list[tuple[str, Path]]
    ) -> StepResult:
        started = time.monotonic()
        outputs: list[Path] = []
        if self.attester is not None and step.outputs:
            try:
                outputs = self.attester.resolve(step, self.params)
            except Abend as exc:
                self.log.warning("step %s abend: %s", step.name, exc)
                return StepResult(seq, step.name, "abend", exc.code, 0, 0.0, str(exc))
        with step_span(self.job.name, step.name) as span:
            tries = 0
            while True:
                tries += 1
                ctx = StepContext(
                    self.job_id, self.job.name, step.name, self.attempt, self.params, shared, max_rc, outputs
                )
                ctx.log.info("step %s started (try %d)", step.name, tries)
                outcome, rc, error = await self._attempt(step, ctx)
                if outcome in ERROR_OUTCOMES:
                    self.observer.attempt_failed(step, outcome)
                if outcome in FAILED_TRY:
                    ctx.log.warning("step %s %s: %s", step.name, outcome, error)
                if outcome not in FAILED_TRY or tries > step.retries or self.cancel_reason is not None:
                    break
                await self._interruptible(asyncio.sleep(step.backoff * 2 ** (tries - 1)))
                if self.cancel_reason is not None:
                    break
            ctx.log.info("step %s ended: %s, RC %s", step.name, outcome, rc)
            finish_span(span, rc=rc or 0, outcome=outcome, error=error)
        if outcome in ("ok", "warning"):
            produced += [(step.name, path) for path in outputs]
        return StepResult(seq, step.name, outcome, rc, tries, time.monotonic() - started, error)

    async def _attempt(self, step: Step, ctx: StepContext) -> tuple[str, int | None, str | None]:
        self._ctx = ctx
        if self.cancel_reason is not None:
            ctx.request_stop()
        call: Awaitable[Any] = (
            step.func(ctx) if inspect.iscoroutinefunction(step.func) else in_daemon_thread(step.func, ctx)
        )
        try:
            task = await self._interruptible(call, step.timeout)
        finally:
            self._ctx = None
        if not task.done():
            ctx.request_stop()
            ctx.kill()
            task.cancel()
            return "timeout", ABEND_RC, f"timed out after {step.timeout}s"
        if task.cancelled():
            return "cancelled", None, self.cancel_reason
        exc = task.exception()
        if isinstance(exc, Cancelled):
            return "cancelled", None, self.cancel_reason
        # An exception's text may quote a secret (a URL, a key): masked before span, log and store.
        if isinstance(exc, Abend):
            return "abend", exc.code, redact(str(exc))
        if exc is not None:
            return "abend", ABEND_RC, redact(f"{type(exc).__name__}: {exc}")
        return _rc_of(task.result())

    async def _interruptible(self, call: Awaitable[Any], limit: float | None = None) -> asyncio.Future[Any]:
        """Run `call` as a task `kill()` can cancel; return it (pending if the timeout passed)."""
        task = asyncio.ensure_future(call)
        self._inner = task
        try:
            await asyncio.wait({task}, timeout=limit)
        finally:
            self._inner = None
        return task


def _rc_of(value: object) -> tuple[str, int | None, str | None]:
    if value is None:
        return "ok", 0, None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 4095:
        return rc_outcome(value), value, None
    return "abend", ABEND_RC, redact(f"step returned {value!r}; expected a return code 0-4095 or None")


def in_daemon_thread(func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """Run a plain step in a daemon thread: a step that ignores cancellation and is abandoned
    after a kill must not keep the process from exiting (the default executor's threads would)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def target() -> None:
        try:
            result = (True, context.run(func, *args))
        except BaseException as exc:
            result = (False, exc)
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits for this step
            loop.call_soon_threadsafe(settle, *result)

    threading.Thread(target=target, daemon=True, name="pilothouse-job-step").start()
    return future
