"""A worker: takes queued jobs with bounded concurrency, heartbeats, recovers dead workers' jobs.

Two loops run beside the jobs. The poll loop notices the store's drain flag and claims jobs while
there is room. The heartbeat loop proves this worker and its jobs alive, picks up cancel
requests, and requeues or fails jobs of workers whose heartbeat went stale. Store calls block,
so they run in (daemon) threads and the store bounds each one with `[jobs].store_timeout`; a
store outage is logged and retried, never fatal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pilothouse.backup.metrics import publish as publish_backup_metrics
from pilothouse.catalog import jobs as job_metrics
from pilothouse.config.jobs import JobsConfig
from pilothouse.errors import OperationError
from pilothouse.jobs.definition import ABEND_RC, ParamError
from pilothouse.jobs.recording import Recorder, count_run
from pilothouse.jobs.registry import Registry, UnknownJob
from pilothouse.jobs.runner import Execution, RunResult
from pilothouse.jobs.scheduler import Scheduler, check_schedules
from pilothouse.jobs.store import JobRecord, JobStore
from pilothouse.maintenance.metrics import publish as publish_maintenance_metrics
from pilothouse.metrics import Metrics
from pilothouse.runtime import threads

if TYPE_CHECKING:
    from pilothouse.jobs.attest import OutputAttester

log = logging.getLogger("pilothouse.jobs.worker")
T = TypeVar("T")


def new_worker_id(prefix: str = "") -> str:
    return f"{prefix}{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


class Worker:
    """Runs jobs from `store` that `registry` declares."""

    def __init__(
        self,
        store: JobStore,
        registry: Registry,
        settings: JobsConfig,
        metrics: Metrics | None = None,
        *,
        worker_id: str | None = None,
        concurrency: int | None = None,
        attester: OutputAttester | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.id = worker_id or new_worker_id()
        self.concurrency = concurrency or settings.concurrency
        self.attester = attester  # signs declared outputs (jobs/attest.py)
        self.running: dict[int, tuple[Execution | None, asyncio.Task[Any]]] = {}
        self.local_drain = False
        self.store_draining = False
        self._wake = asyncio.Event()
        self._loops: list[asyncio.Task[None]] = []
        self._claiming = 0
        self.scheduler: Scheduler | None = None
        if settings.scheduler == "worker" and settings.schedules:
            check_schedules(settings, registry)  # a schedule of an unknown job: one line, at start
            self.scheduler = Scheduler(store, registry, settings, self.metrics, self.id)

    @property
    def accepting(self) -> bool:
        return not (self.local_drain or self.store_draining)

    async def _call(self, func: Callable[..., T], *args: Any) -> T:
        return await threads.call(func, *args)

    # -- start and stop ------------------------------------------------------------------------

    async def start(self, *, claim: bool = True) -> None:
        """Register and start heartbeating; with `claim`, also start taking queued jobs."""
        await self._call(self.store.register_worker, self.id, socket.gethostname(), os.getpid())
        self._loops.append(asyncio.create_task(self._heartbeat_loop()))
        if claim:
            self._loops.append(asyncio.create_task(self._poll_loop()))
            if self.scheduler is not None:
                self._loops.append(asyncio.create_task(self._schedule_loop(self.scheduler)))
        log.info(
            "job worker %s started (concurrency %d, store %s)",
            self.id,
            self.concurrency,
            self.store.description,
        )

    def halt(self) -> None:
        """Stop polling and heartbeating now (no await: also when a drain ran out of time)."""
        for loop in self._loops:
            loop.cancel()

    async def stop(self) -> None:
        self.halt()
        await asyncio.gather(*self._loops, return_exceptions=True)
        self._loops.clear()
        if self.scheduler is not None:
            with contextlib.suppress(Exception):
                await self._call(self.scheduler.release)
        with contextlib.suppress(Exception):
            await self._call(self.store.unregister_worker, self.id)

    async def drain(self, grace: float) -> bool:
        """Stop taking jobs, let running ones (and any claimed meanwhile) finish within `grace`
        seconds, then cancel and kill the rest. True if every job finished on its own."""
        self.local_drain = True
        self._set_gauges()
        try:
            await self._report()
        except Exception as exc:
            log.warning("job store unavailable (drain): %s", exc)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        if self.running:
            log.info("draining: waiting up to %.1fs for %d job(s)", grace, len(self.running))
        while (self.running or self._claiming) and loop.time() < deadline:
            tasks = [task for _, task in self.running.values()]
            if tasks:
                await asyncio.wait(tasks, timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED)
            else:  # a claim is in flight: its jobs are ours to finish too
                await asyncio.sleep(0.01)
        if not self.running:
            return True
        log.warning("drain timeout: cancelling %d job(s)", len(self.running))
        tasks = [task for _, task in self.running.values()]
        for job_id in list(self.running):
            self.cancel(job_id, "worker drain timed out")
        await asyncio.wait(tasks, timeout=self.settings.cancel_grace + 1.0)
        return False

    # -- loops ---------------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        while True:
            try:
                draining = await self._call(self.store.draining_since) is not None
                if draining != self.store_draining:
                    self.store_draining = draining
                    log.info("store drain flag %s", "set: taking no new jobs" if draining else "cleared")
                    await self._report()
                free = self.concurrency - len(self.running)
                if self.accepting and free > 0:
                    await self.claim(free)
            except Exception as exc:
                log.warning("job store unavailable (poll): %s", exc)
            self._set_gauges()
            await self._nap()

    async def _schedule_loop(self, scheduler: Scheduler) -> None:
        """Fire due schedules while this worker takes jobs (a draining worker lets its lease
        lapse, so a replica that is not shutting down takes over)."""
        while True:
            try:
                if self.accepting:
                    if await self._call(scheduler.tick):
                        self._wake.set()  # a job was queued: claim it without waiting a poll
                elif scheduler.holding:
                    await self._call(scheduler.release)
                await self._call(scheduler.publish)
            except Exception as exc:
                log.warning("job store unavailable (scheduler): %s", exc)
            await asyncio.sleep(self.settings.poll_interval)

    async def _nap(self) -> None:
        """Sleep a poll interval, or less when a job finished (room for the next one).

        Not `asyncio.wait_for`: on Python 3.11 it can lose a cancellation that races with the
        event, and `stop()` would wait forever."""
        self._wake.clear()
        waiter = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({waiter}, timeout=self.settings.poll_interval)
        finally:
            waiter.cancel()

    async def _heartbeat_loop(self) -> None:
        while True:
            try:
                await self._report()
                for found in await self._call(self.store.recover_stale, self.settings.heartbeat_timeout):
                    log.warning("job %d (%s): %s", found.id, found.name, found.detail)
                    if found.action == "lost":
                        count_run(self.metrics, found.name, "lost", ABEND_RC)
                counts = await self._call(self.store.counts)
                self.metrics.gauge(job_metrics.JOB_QUEUE_DEPTH).set(counts["queued"])
                await self._call(publish_backup_metrics, self.store, self.registry, self.metrics)
                await self._call(publish_maintenance_metrics, self.store, self.registry, self.metrics)
            except Exception as exc:
                log.warning("job store unavailable (heartbeat): %s", exc)
            await asyncio.sleep(self.settings.heartbeat_interval)

    async def _report(self) -> None:
        """Heartbeat now (also acknowledges a drain at once); act on cancel requests; finish
        jobs the store says run here but no task of this worker runs (never "running" forever)."""
        for job_id, cancel in (await self._call(self.store.heartbeat, self.id, self.accepting)).items():
            if job_id not in self.running and not self._claiming:
                log.error("job %d is recorded as running here but is not; marking it failed", job_id)
                await self._call(
                    self.store.finish,
                    job_id,
                    self.id,
                    "failed",
                    ABEND_RC,
                    f"worker {self.id} lost track of the job",
                )
            elif cancel:
                self.cancel(job_id, "cancel requested")

    def _set_gauges(self) -> None:
        self.metrics.gauge(job_metrics.JOB_RUNNING).set(len(self.running))
        self.metrics.gauge(job_metrics.JOB_DRAINING).set(0 if self.accepting else 1)

    # -- jobs ----------------------------------------------------------------------------------

    async def claim(self, limit: int, job_id: int | None = None) -> list[asyncio.Task[RunResult | None]]:
        """Claim up to `limit` queued jobs (or just `job_id`) and start them."""
        self._claiming += 1  # a heartbeat meanwhile must not take them for orphans
        try:
            return [
                self.launch(record) for record in await self._call(self.store.claim, self.id, limit, job_id)
            ]
        finally:
            self._claiming -= 1

    def launch(self, record: JobRecord) -> asyncio.Task[RunResult | None]:
        """Start running a claimed job; the task's result is None if it could not start."""
        execution: Execution | None = None
        try:
            job = self.registry.get(record.name)
            execution = Execution(
                job,
                record.id,
                job.bind(record.params),
                Recorder(self.store, self.metrics, record),
                attempt=record.attempts,
                traceparent=record.traceparent,
                attester=self.attester,
            )
            task = asyncio.create_task(self._execute(record, execution), name=f"job-{record.id}")
        except (OperationError, UnknownJob, ParamError) as exc:
            log.error("job %d cannot run here: %s", record.id, exc)
            failed = RunResult("failed", ABEND_RC, (), str(exc))
            task = asyncio.create_task(self._record(record, failed), name=f"job-{record.id}")
        self.running[record.id] = (execution, task)
        self._set_gauges()
        if execution is not None and record.cancel_requested:
            execution.cancel("cancel requested")
        return task

    async def _execute(self, record: JobRecord, execution: Execution) -> RunResult | None:
        try:
            result = await execution.run()
        except Exception as exc:  # e.g. the store failed while recording a step
            log.exception("job %d: the worker failed while running it", record.id)
            result = RunResult("failed", ABEND_RC, (), f"worker error: {type(exc).__name__}: {exc}")
        return await self._record(record, result)

    async def _record(self, record: JobRecord, result: RunResult) -> RunResult | None:
        """Store the result, retrying while the store is unavailable; then free the slot."""
        try:
            delay = 0.1
            while True:
                try:
                    owned = await self._call(
                        self.store.finish, record.id, self.id, result.outcome, result.max_rc, result.error
                    )
                    break
                except Exception as exc:
                    log.warning("job %d: cannot record the result yet (%s); retrying", record.id, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            if owned:
                count_run(self.metrics, record.name, result.outcome, result.max_rc)
            else:
                log.warning("job %d was taken over after a stale heartbeat; result not recorded", record.id)
            return result if result.steps else None
        finally:
            self.running.pop(record.id, None)
            self._set_gauges()
            self._wake.set()

    def cancel(self, job_id: int, reason: str) -> bool:
        """Cooperative cancel now, kill after `cancel_grace`; False if the job is not here."""
        entry = self.running.get(job_id)
        if entry is None:
            return False
        execution, _ = entry
        if execution is not None and execution.cancel_reason is None:
            execution.cancel(reason)
            asyncio.get_running_loop().call_later(self.settings.cancel_grace, execution.kill)
        return True
