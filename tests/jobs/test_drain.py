"""`pilothouse jobs drain` against real worker processes: submissions rejected, running jobs finish,
exit 0; with a short --timeout and --force the job is cancelled (its subprocess killed) and
recorded as such; without --force a timeout fails. Also `status` and `undrain`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pilothouse.config import load_config
from pilothouse.jobs.store import JobStore, open_store
from tests.helpers import PILOTHOUSE, alive, run_cli
from tests.jobs.conftest import WorkerProcess, jobs_config, ledger, pg_store, wait_until


def start_job(path: Path, name: str, *params: str) -> int:
    result = run_cli("jobs", "submit", name, *params, "-c", str(path), "--format", "json")
    assert result.returncode == 0, result.stderr
    job_id: int = json.loads(result.stdout)["id"]
    return job_id


def running(store: JobStore, job_id: int) -> bool:
    record = store.get(job_id)
    return record is not None and record.state == "running"


@pytest.fixture
def drained_setup(
    request: pytest.FixtureRequest, tmp_path: Path, workers: Callable[..., WorkerProcess]
) -> tuple[Path, JobStore, WorkerProcess]:
    """A worker on a SQLite file, or on PostgreSQL when the test asks (indirect parameter)."""
    store_keys = ""
    if getattr(request, "param", "sqlite") == "postgres":
        store_keys = pg_store(request.getfixturevalue("postgres_url"), request.getfixturevalue("pg_schema"))
    path = jobs_config(tmp_path, store_keys)
    store = open_store(load_config(path))
    return path, store, workers(path)


@pytest.mark.parametrize("drained_setup", ["sqlite", "postgres"], indirect=True)
def test_drain_waits_for_the_running_job_and_rejects_new_ones(
    drained_setup: tuple[Path, JobStore, WorkerProcess],
) -> None:
    path, store, worker = drained_setup
    gate = path.parent / "gate"
    job_id = start_job(path, "gated", "--param", f"gate={gate}")
    wait_until(lambda: running(store, job_id), what="the job to start")
    drain = subprocess.Popen(
        [*PILOTHOUSE, "jobs", "drain", "--timeout", "30s", "-c", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: store.draining_since() is not None, what="the drain flag")
    status = run_cli("jobs", "status", "-c", str(path), "--format", "json")
    assert json.loads(status.stdout)["state"] == "draining"
    rejected = run_cli("jobs", "submit", "tick", "-c", str(path))
    assert rejected.returncode == 1
    assert rejected.stderr.strip().splitlines() == [
        f"pilothouse: error: job 'tick' rejected: the job store {store.description} is draining "
        "(run `pilothouse jobs undrain` to accept jobs again)"
    ]
    assert drain.poll() is None  # the job still runs, so the drain still waits
    gate.touch()
    out, err = drain.communicate(timeout=30)
    assert drain.returncode == 0, err
    record = store.get(job_id)
    assert record is not None and (record.state, record.outcome) == ("finished", "ok")
    assert "draining: 1 job(s) running" in err and out.startswith("drained in")
    assert worker.proc.poll() is None  # a drained worker keeps running, idle
    status = json.loads(run_cli("jobs", "status", "-c", str(path), "--format", "json").stdout)
    assert (status["state"], status["running"], status["workers"][0]["accepting"]) == ("drained", 0, False)
    assert run_cli("jobs", "undrain", "-c", str(path)).returncode == 0
    after = start_job(path, "tick")
    wait_until(lambda: store.get(after).state == "finished", what="work after undrain")  # type: ignore[union-attr]


def test_drain_timeout_with_force_cancels_and_records(
    drained_setup: tuple[Path, JobStore, WorkerProcess], tmp_path: Path
) -> None:
    path, store, _ = drained_setup
    pidfile = tmp_path / "sleep.pid"
    job_id = start_job(path, "stubborn", "--param", f"pidfile={pidfile}")
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), what="the subprocess")
    pid = int(pidfile.read_text())
    result = run_cli("jobs", "drain", "--timeout", "300ms", "--force", "-c", str(path), "--format", "json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["state"], report["cancelled"]) == ("drained", 1)
    record = store.get(job_id)
    assert record is not None and record.outcome == "cancelled"
    assert [(s.name, s.outcome) for s in store.steps(job_id)] == [("hold", "cancelled")]
    assert [e for _, _, _, e in ledger(tmp_path)] == ["start"]  # never reached "done"
    wait_until(lambda: not alive(pid), 5, "the step's subprocess to be killed")


def test_drain_timeout_without_force_fails_and_leaves_the_job(
    drained_setup: tuple[Path, JobStore, WorkerProcess],
) -> None:
    path, store, _ = drained_setup
    gate = path.parent / "gate"
    job_id = start_job(path, "gated", "--param", f"gate={gate}")
    wait_until(lambda: running(store, job_id), what="the job to start")
    # The job runs until the gate opens: a drain that returns at all has timed out.
    result = run_cli("jobs", "drain", "--timeout", "300ms", "-c", str(path))
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("pilothouse: error: drain timed out after 300ms: 1 job(s) still running")
    )
    assert running(store, job_id)  # untouched: it finishes on its own
    gate.touch()
    wait_until(lambda: store.get(job_id).outcome == "ok", what="the job to finish")  # type: ignore[union-attr]


def test_sigterm_is_a_local_drain(drained_setup: tuple[Path, JobStore, WorkerProcess]) -> None:
    path, store, worker = drained_setup
    job_id = start_job(path, "slow", "--param", "seconds=1")
    wait_until(lambda: running(store, job_id), what="the job to start")
    worker.signal(15)
    assert worker.wait(20) == 0
    record = store.get(job_id)
    assert record is not None and record.outcome == "ok"
    assert store.workers() == []
    assert store.draining_since() is None  # local: other workers keep taking jobs


def test_cancel_a_running_job(drained_setup: tuple[Path, JobStore, WorkerProcess]) -> None:
    path, store, _ = drained_setup
    job_id = start_job(path, "slow", "--param", "seconds=30")
    wait_until(lambda: running(store, job_id), what="the job to start")
    result = run_cli("jobs", "cancel", str(job_id), "-c", str(path))
    assert result.returncode == 0 and "cancel requested" in result.stdout
    wait_until(lambda: store.get(job_id).state == "finished", 10, "the cancel")  # type: ignore[union-attr]
    record = store.get(job_id)
    assert record is not None and (record.outcome, record.error) == ("cancelled", "cancel requested")


def test_submit_wait_follows_the_job(drained_setup: tuple[Path, JobStore, WorkerProcess]) -> None:
    path, _, _ = drained_setup
    result = run_cli("jobs", "submit", "slow", "--param", "seconds=0.5", "--wait", "-c", str(path))
    assert result.returncode == 0, result.stderr
    assert "waiting" in result.stderr and ": running" in result.stderr  # progress while it runs
    assert "slow: finished, ok, RC 0" in result.stdout


def test_interrupting_jobs_run_cancels_the_job(tmp_path: Path) -> None:
    path = jobs_config(tmp_path)
    store = open_store(load_config(path))
    run = subprocess.Popen(
        [*PILOTHOUSE, "jobs", "run", "slow", "--param", "seconds=30", "-c", str(path)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "JOBS_LEDGER": str(tmp_path / "ledger.txt")},
    )
    wait_until(lambda: ledger(tmp_path), what="the step to start")
    run.send_signal(signal.SIGINT)
    out, err = run.communicate(timeout=20)
    assert run.returncode == 1, err
    assert "slow: finished, cancelled" in out
    [record] = store.list_jobs()
    assert (record.outcome, record.error) == ("cancelled", "interrupted")
