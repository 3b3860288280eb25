"""Real worker processes: two on PostgreSQL never run a job twice; a SIGKILLed worker's jobs are
recovered by another after the heartbeat timeout, by each job's policy."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from pilothouse.config import load_config
from pilothouse.jobs.registry import Registry, load_jobs
from pilothouse.jobs.store import JobStore, open_store
from pilothouse.jobs.submit import submit
from tests.jobs.conftest import WorkerProcess, jobs_config, ledger, pg_store, wait_until

JOBS = 300


def test_two_workers_on_postgres_run_each_job_exactly_once(
    tmp_path: Path, postgres_url: str, pg_schema: str, workers: Callable[..., WorkerProcess]
) -> None:
    path = jobs_config(tmp_path, pg_store(postgres_url, pg_schema))
    config = load_config(path)
    store = open_store(config)
    registry = load_jobs(config, Registry())
    registry.job("tick")  # submit only checks the name; the workers import the real module
    ids = [submit(store, registry, "tick", {}) for _ in range(JOBS)]
    first, second = workers(path, concurrency=4), workers(path, concurrency=4)
    wait_until(lambda: store.counts()["finished"] == JOBS, 60, f"{JOBS} jobs to finish")
    runs = ledger(tmp_path)
    per_job = Counter(job_id for job_id, _, _, _ in runs)
    assert sorted(per_job) == ids and set(per_job.values()) == {1}
    pids = Counter(pid for _, _, pid, _ in runs)
    assert set(pids) == {first.proc.pid, second.proc.pid}  # both took part
    records = store.list_jobs("finished", JOBS)
    assert {(r.outcome, r.attempts) for r in records} == {("ok", 1)}
    first.signal(signal.SIGTERM)
    second.signal(signal.SIGTERM)
    assert first.wait() == 0 and second.wait() == 0
    assert store.workers() == []


def test_sigkilled_worker_jobs_are_recovered_by_policy(
    tmp_path: Path, postgres_url: str, pg_schema: str, workers: Callable[..., WorkerProcess]
) -> None:
    path = jobs_config(tmp_path, pg_store(postgres_url, pg_schema))
    config = load_config(path)
    store = open_store(config)
    registry = load_jobs(config, Registry())
    registry.job("slow")
    registry.job("fragile")
    again = store.submit("slow", {"seconds": 1.0}, on_lost="requeue", max_attempts=3, traceparent=None)
    once = store.submit("fragile", {"seconds": 1.0}, on_lost="fail", max_attempts=3, traceparent=None)
    doomed = workers(path, concurrency=2)
    wait_until(lambda: len(ledger(tmp_path)) == 2, 20, "both jobs to start")
    doomed.signal(signal.SIGKILL)
    doomed.wait()
    rescuer = workers(path, concurrency=2)
    wait_until(lambda: store.counts()["finished"] == 2, 20, "recovery")
    slow, fragile = store.get(again), store.get(once)
    assert slow is not None and fragile is not None
    assert (slow.outcome, slow.attempts, slow.worker_id) == ("ok", 2, rescuer_id(store, rescuer))
    assert (fragile.outcome, fragile.attempts) == ("lost", 1)
    assert "stopped heartbeating" in (fragile.error or "")
    assert [(s.attempt, s.outcome) for s in store.steps(again)] == [(1, "lost"), (2, "ok")]
    assert [(s.attempt, s.outcome) for s in store.steps(once)] == [(1, "lost")]
    events = [(job_id, attempt, event) for job_id, attempt, _, event in ledger(tmp_path)]
    assert sorted(events) == sorted(
        [(again, 1, "start"), (once, 1, "start"), (again, 2, "start"), (again, 2, "done")]
    )
    assert store.counts() == {"queued": 0, "running": 0, "finished": 2}  # nothing lost or duplicated


def rescuer_id(store: JobStore, worker: WorkerProcess) -> str:
    found = [w.id for w in store.workers() if w.pid == worker.proc.pid]
    assert len(found) == 1
    return found[0]
