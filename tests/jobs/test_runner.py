"""Return-code semantics of one job run: max RC, conditions, abends, timeouts, retries, cancel."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pilothouse.errors import PilothouseError
from pilothouse.jobs import ABEND_RC, Abend, Job, Param, Registry, StepContext
from pilothouse.jobs.definition import JobDefinitionError, ParamError
from pilothouse.jobs.runner import Execution, RunResult, StepResult
from tests.helpers import alive


class Collect:
    """An Observer that keeps what it is told (the store and metrics have their own tests)."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[StepResult] = []
        self.failed_tries: list[tuple[str, str]] = []

    async def step_started(self, seq: int, step: object) -> None:
        self.started.append(step.name)  # type: ignore[attr-defined]

    async def step_finished(self, result: StepResult) -> None:
        self.finished.append(result)

    def attempt_failed(self, step: object, outcome: str) -> None:
        self.failed_tries.append((step.name, outcome))  # type: ignore[attr-defined]


async def run(job: Job, params: dict[str, object] | None = None) -> tuple[RunResult, Collect]:
    seen = Collect()
    result = await Execution(job, 1, job.bind(params or {}), seen).run()
    return result, seen


def outcomes(result: RunResult) -> dict[str, tuple[str, int | None]]:
    return {s.name: (s.outcome, s.rc) for s in result.steps}


def new_job(name: str = "j", **kwargs: object) -> Job:
    return Registry().job(name, **kwargs)  # type: ignore[arg-type]


async def test_job_rc_is_the_highest_step_rc_and_conditions_skip() -> None:
    job = new_job()
    job.step("a")(lambda ctx: 0)
    job.step("b")(lambda ctx: 4)
    job.step("c", when_below=4)(lambda ctx: 0)  # max RC is 4: skipped
    job.step("d", when_below=8)(lambda ctx: None)  # None counts as 0
    job.step("e")(lambda ctx: 2)
    result, seen = await run(job)
    assert outcomes(result) == {
        "a": ("ok", 0),
        "b": ("warning", 4),
        "c": ("skipped", None),
        "d": ("ok", 0),
        "e": ("warning", 2),
    }
    assert (result.outcome, result.max_rc) == ("warning", 4)
    assert seen.started == ["a", "b", "d", "e"]
    assert [r.name for r in seen.finished] == ["a", "b", "c", "d", "e"]


async def test_rc_8_is_an_error_and_later_steps_still_run_unless_conditioned() -> None:
    job = new_job()
    job.step("load")(lambda ctx: 8)
    job.step("report")(lambda ctx: 0)
    job.step("publish", when_below=8)(lambda ctx: 0)
    result, _ = await run(job)
    assert outcomes(result) == {"load": ("error", 8), "report": ("ok", 0), "publish": ("skipped", None)}
    assert (result.outcome, result.max_rc) == ("failed", 8)


async def test_an_exception_is_an_abend_that_stops_the_job() -> None:
    job = new_job()

    @job.step()
    def explode(ctx: StepContext) -> None:
        raise KeyError("sku")

    job.step("after")(lambda ctx: 0)
    result, seen = await run(job)
    assert outcomes(result) == {"explode": ("abend", ABEND_RC), "after": ("skipped", None)}
    assert result.outcome == "failed" and result.max_rc == ABEND_RC
    assert result.error == "KeyError: 'sku'"
    assert seen.failed_tries == [("explode", "abend")]


async def test_a_user_abend_carries_its_code() -> None:
    job = new_job()

    @job.step()
    async def check(ctx: StepContext) -> None:
        raise Abend(222, "ledger does not balance")

    result, _ = await run(job)
    assert outcomes(result) == {"check": ("abend", 222)}
    assert result.max_rc == 222 and result.error == "ledger does not balance"


@pytest.mark.parametrize("value", ["yes", -1, 4096, True, 2.0])
async def test_a_step_returning_nonsense_abends(value: object) -> None:
    job = new_job()
    job.step("weird")(lambda ctx: value)  # type: ignore[arg-type,return-value] # nonsense on purpose
    result, _ = await run(job)
    assert outcomes(result)["weird"] == ("abend", ABEND_RC)
    assert result.error == f"step returned {value!r}; expected a return code 0-4095 or None"


async def test_timeouts_for_coroutines_and_threads() -> None:
    job = new_job()

    @job.step(timeout="100ms")
    async def hangs(ctx: StepContext) -> None:
        await asyncio.sleep(30)

    other = new_job("other")
    stopped: list[bool] = []

    @other.step(timeout=0.1)
    def blocks(ctx: StepContext) -> None:
        stopped.append(ctx.wait_cancelled(30))  # a cooperative thread step wakes on the timeout

    result, _ = await run(job)
    result2, _ = await run(other)
    assert outcomes(result) == {"hangs": ("timeout", ABEND_RC)}
    assert outcomes(result2) == {"blocks": ("timeout", ABEND_RC)}
    assert result.outcome == "failed" and "timed out after 0.1s" in (result.error or "")
    await eventually(lambda: stopped == [True])  # the thread wakes on the timeout, not after 30 s


async def test_idempotent_steps_are_retried_with_backoff() -> None:
    job = new_job()
    tries: list[float] = []

    @job.step(idempotent=True, retries=3, backoff="50ms")
    def flaky(ctx: StepContext) -> int:
        tries.append(time.monotonic())
        if len(tries) < 3:
            raise ConnectionError("upstream reset")
        return 4

    result, seen = await run(job)
    assert outcomes(result) == {"flaky": ("warning", 4)}
    assert result.steps[0].tries == 3
    assert seen.failed_tries == [("flaky", "abend"), ("flaky", "abend")]
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # exponential: 50ms, then 100ms


async def test_retries_give_up_after_the_limit() -> None:
    job = new_job()
    calls: list[int] = []

    @job.step(idempotent=True, retries=1, backoff=0.0)
    def always(ctx: StepContext) -> None:
        calls.append(1)
        raise Abend(20)

    result, seen = await run(job)
    assert len(calls) == 2 and outcomes(result) == {"always": ("abend", 20)}
    assert len(seen.failed_tries) == 2


def test_retries_need_idempotent_and_names_are_checked() -> None:
    job = new_job()
    with pytest.raises(JobDefinitionError, match="idempotent"):
        job.step("x", retries=2)(lambda ctx: 0)
    with pytest.raises(JobDefinitionError, match="job name"):
        new_job("Bad Name")
    with pytest.raises(JobDefinitionError, match="declared twice"):
        job.step("y")(lambda ctx: 0)
        job.step("y")(lambda ctx: 0)
    registry = Registry()
    registry.job("dup")
    with pytest.raises(JobDefinitionError, match="declared twice"):
        registry.job("dup")


def test_parameters_are_typed_and_checked() -> None:
    job = new_job(params={"limit": Param(int), "dry_run": Param(bool, default=False), "day": Param(str, "x")})
    assert job.bind({"limit": "3", "dry_run": "yes"}) == {"limit": 3, "dry_run": True, "day": "x"}
    with pytest.raises(ParamError, match="'limit' is required"):
        job.bind({})
    with pytest.raises(ParamError, match="'ten' is not a valid int"):
        job.bind({"limit": "ten"})
    with pytest.raises(ParamError, match="unknown parameter 'limt'"):
        job.bind({"limt": "1"})


async def test_cooperative_cancel_stops_the_step_and_skips_the_rest() -> None:
    job = new_job()

    running = asyncio.Event()

    @job.step()
    async def long(ctx: StepContext) -> None:
        running.set()
        assert await ctx.sleep(30)  # wakes early, True: cancelled
        ctx.raise_if_cancelled()

    job.step("next")(lambda ctx: 0)
    seen = Collect()
    execution = Execution(job, 7, {}, seen)
    task = asyncio.create_task(execution.run())
    await asyncio.wait_for(running.wait(), 30)
    execution.cancel("operator")
    result = await asyncio.wait_for(task, 5)
    assert outcomes(result) == {"long": ("cancelled", None), "next": ("cancelled", None)}
    assert result.outcome == "cancelled" and result.error == "operator"


async def test_kill_ends_a_step_that_ignores_cancellation(tmp_path: Path) -> None:
    job = new_job()
    pidfile = tmp_path / "pid"

    @job.step()
    async def stubborn(ctx: StepContext) -> None:
        await ctx.run("sh", "-c", f"echo $$ > {pidfile}; exec sleep 30")

    execution = Execution(job, 8, {}, Collect())
    task = asyncio.create_task(execution.run())
    await eventually(lambda: pidfile.exists() and bool(pidfile.read_text().strip()))
    pid = int(pidfile.read_text())
    execution.cancel("drain timeout")
    await asyncio.sleep(0.2)
    assert not task.done()  # the subprocess ignores the cooperative request
    execution.kill()
    result = await asyncio.wait_for(task, 5)
    assert result.outcome == "cancelled"
    await eventually(lambda: not alive(pid))


async def eventually(condition: Callable[[], bool], timeout: float = 30) -> None:
    """Wait for `condition` without blocking the loop the job runs on."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


def test_job_errors_are_pilothouse_errors() -> None:
    """The CLI's one-line handler (`PilothouseError`, exit 2) covers them; callers that caught
    them as ValueError still do."""
    for cls in (JobDefinitionError, ParamError):
        assert issubclass(cls, PilothouseError) and issubclass(cls, ValueError)
        assert cls("x").exit_code == 2
