"""Worker edge cases, in process on a SQLite file: jobs it cannot run and jobs it lost track of
end as failed instead of staying queued or "running" forever."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pilothouse.config.loader import config_from_dict
from pilothouse.jobs import Registry, StepContext
from pilothouse.jobs.store import open_store
from pilothouse.jobs.worker import Worker
from tests.jobs.conftest import wait_until


async def test_unrunnable_and_orphaned_jobs_end_as_failed(tmp_path: Path) -> None:
    config = config_from_dict(
        {"service": {"name": "t"}, "jobs": {"poll_interval": "20ms", "heartbeat_interval": "50ms"}},
        source=tmp_path / "pilothouse.toml",
    )
    assert config.jobs is not None
    store = open_store(config)
    jobs = Registry()
    jobs.job("known", params={}).step("s")(lambda ctx: 0)
    worker = Worker(store, jobs, config.jobs)
    ghost = store.submit("ghost", {}, on_lost="requeue", max_attempts=3, traceparent=None)  # newer code's job
    stale_params = store.submit("known", {"gone": 1}, on_lost="requeue", max_attempts=3, traceparent=None)
    orphan = store.submit("known", {}, on_lost="requeue", max_attempts=3, traceparent=None)
    store.claim(worker.id, 1, orphan)  # claimed under this worker's id, but no task runs it
    await worker.start()
    try:
        await asyncio.to_thread(wait_until, lambda: store.counts()["finished"] == 3, 10, "all three to end")
    finally:
        await worker.stop()
    errors = {job_id: store.get(job_id) for job_id in (ghost, stale_params, orphan)}
    assert {r.outcome for r in errors.values() if r} == {"failed"}
    assert "unknown job 'ghost'" in (errors[ghost].error or "")  # type: ignore[union-attr]
    assert "unknown parameter 'gone'" in (errors[stale_params].error or "")  # type: ignore[union-attr]
    assert "lost track" in (errors[orphan].error or "")  # type: ignore[union-attr]


async def test_local_drain_cancels_then_kills_after_the_grace(tmp_path: Path) -> None:
    config = config_from_dict(
        {
            "service": {"name": "t"},
            "jobs": {"poll_interval": "20ms", "heartbeat_interval": "50ms", "cancel_grace": "100ms"},
        },
        source=tmp_path / "pilothouse.toml",
    )
    assert config.jobs is not None
    store = open_store(config)
    jobs = Registry()
    polite, deaf = jobs.job("polite"), jobs.job("deaf")
    ended: dict[str, str] = {}  # how each step ended: by the cooperative cancel or by the kill

    @polite.step()
    async def wait(ctx: StepContext) -> None:
        try:
            await ctx.sleep(30)
        except asyncio.CancelledError:
            ended["polite"] = "killed"
            raise
        ended["polite"] = "cooperative" if ctx.cancelled else "slept"
        ctx.raise_if_cancelled()

    @deaf.step()
    async def ignore(ctx: StepContext) -> None:
        try:
            await asyncio.sleep(30)  # never looks at ctx.cancelled: only the kill ends it
        except asyncio.CancelledError:
            ended["deaf"] = "killed"
            raise

    ids = [
        store.submit(name, {}, on_lost="requeue", max_attempts=3, traceparent=None)
        for name in ("polite", "deaf")
    ]
    worker = Worker(store, jobs, config.jobs)
    await worker.start()
    await asyncio.to_thread(wait_until, lambda: store.counts()["running"] == 2, 10, "both to start")
    assert await worker.drain(0.2) is False
    await worker.stop()
    records = [store.get(job_id) for job_id in ids]
    assert [(r.outcome, r.error) for r in records if r] == [("cancelled", "worker drain timed out")] * 2
    assert ended == {"polite": "cooperative", "deaf": "killed"}
