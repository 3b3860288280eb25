"""`pilothouse serve --workers 2`: one ops port for the group, coherent readiness, drain across
workers, and a killed worker replaced."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import time
from pathlib import Path

import httpx

from tests.helpers import ROOT, ServeProcess
from tests.runtime.test_serve import assert_second_signal_exits_at_once, config, ready_status, wait_for


def test_two_workers_serve_drain_and_exit_zero(tmp_path: Path) -> None:
    marker = tmp_path / "shutdown.marker"
    scratch = tmp_path / "scratch"  # the server's own TMPDIR: what it leaves there is its own
    scratch.mkdir()
    server = ServeProcess(
        config(tmp_path, pre_stop="500ms", drain="5s"),
        cwd=ROOT,
        env={"SHUTDOWN_MARKER": str(marker), "TMPDIR": str(scratch)},
        args=("--workers", "2"),
    ).start()
    wait_for(lambda: ready_status(server) == 200, timeout=15)
    body = httpx.get(f"{server.ops_url}/ready").json()
    assert set(body["checks"]) == {"worker-0", "worker-1"}
    workers = httpx.get(f"{server.ops_url}/status").json()["workers"]
    assert len({w["pid"] for w in workers}) == 2 and all(w["started"] for w in workers)
    assert [d.name for d in scratch.glob("pilothouse-metrics-*")]  # created here, for the run

    n = 6
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        inflight = [pool.submit(httpx.get, f"{server.app_url}/slow?seconds=2", timeout=30) for _ in range(n)]
        wait_for(lambda: httpx.get(f"{server.ops_url}/status").json()["inflight_requests"] == n)
        sent = time.monotonic()
        server.signal(signal.SIGTERM)
        wait_for(lambda: ready_status(server) == 503, timeout=0.5, interval=0.01)
        assert [f.result().status_code for f in inflight] == [200] * n
        code = server.wait(timeout=20)
    assert code == 0, server.output
    assert time.monotonic() - sent < 0.5 + 5 + 1 + 3
    assert list(scratch.iterdir()) == []  # the temporary metrics directory is removed at exit
    ran_in = sorted(int(line.rsplit(" ", 1)[1]) for line in marker.read_text().splitlines())
    assert ran_in == sorted(w["pid"] for w in workers)  # the app's lifespan shutdown ran in each worker


def test_a_killed_worker_fails_readiness_then_is_replaced(tmp_path: Path) -> None:
    with ServeProcess(config(tmp_path, ttl="200ms"), cwd=ROOT, args=("--workers", "2")) as server:
        wait_for(lambda: ready_status(server) == 200, timeout=15)
        victim = httpx.get(f"{server.ops_url}/status").json()["workers"][1]["pid"]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: ready_status(server) == 503, timeout=5)
        wait_for(lambda: ready_status(server) == 200, timeout=20)
        workers = httpx.get(f"{server.ops_url}/status").json()["workers"]
        assert workers[1]["pid"] != victim and workers[1]["restarts"] == 1
        assert httpx.get(f"{server.app_url}/hello").status_code == 200


def test_jobs_run_once_per_pod_in_the_supervisor(tmp_path: Path) -> None:
    """With --workers, the job worker and POST /admin/jobs live in the supervisor (one per pod),
    not in every HTTP worker."""
    import shutil

    shutil.copy(ROOT / "tests" / "jobs" / "sample_jobs.py", tmp_path / "sample_jobs.py")
    ledger = tmp_path / "ledger.txt"
    extra = '\n[jobs]\nmodule = "sample_jobs"\npath = "jobs.sqlite3"\npoll_interval = "100ms"\n'
    server = ServeProcess(
        config(tmp_path, pre_stop="0s", extra=extra),
        cwd=ROOT,
        args=("--workers", "2"),
        env={"SVC_ADMIN_TOKEN": "tok-5d41402abc4b2a76b9719d911017c592", "JOBS_LEDGER": str(ledger)},
    ).start()
    try:
        wait_for(lambda: ready_status(server) == 200, timeout=15)
        auth = {"authorization": "Bearer tok-5d41402abc4b2a76b9719d911017c592"}
        for _ in range(3):
            answer = httpx.post(f"{server.ops_url}/admin/jobs", json={"job": "tick"}, headers=auth)
            assert answer.status_code == 201, answer.text
        wait_for(lambda: ledger.exists() and len(ledger.read_text().splitlines()) == 3, timeout=10)
        supervisor = server.proc.pid if server.proc else None
        assert {line.split()[2] for line in ledger.read_text().splitlines()} == {str(supervisor)}
    finally:
        server.signal(signal.SIGTERM)
        assert server.wait(timeout=20) == 0, server.output


def test_sigterm_while_workers_start_exits_zero(tmp_path: Path) -> None:
    server = ServeProcess(
        config(tmp_path, pre_stop="0s"), cwd=ROOT, args=("--workers", "2"), env={"STARTUP_DELAY": "3"}
    ).start(wait_ready=False)
    assert ready_status(server) == 503  # still starting
    server.signal(signal.SIGTERM)
    assert server.wait(timeout=20) == 0, server.output
    assert "did not start" not in server.output


def test_a_bad_app_reference_is_one_line_with_workers(tmp_path: Path) -> None:
    from tests.helpers import run_cli

    path = config(tmp_path)
    result = run_cli("serve", "--config", str(path), "--workers", "2", "nosuch.module:app", cwd=ROOT)
    assert result.returncode == 2
    assert (
        result.stderr.strip().splitlines()[-1]
        == "pilothouse: error: app 'nosuch.module:app': module 'nosuch.module' not found"
    )
    assert "Traceback" not in result.stderr


def test_second_signal_exits_at_once_and_leaves_no_worker(tmp_path: Path) -> None:
    settings = config(tmp_path, pre_stop="10s", drain="10s")
    server = ServeProcess(settings, cwd=ROOT, args=("--workers", "2")).start()
    wait_for(lambda: ready_status(server) == 200, timeout=15)
    pids = [w["pid"] for w in httpx.get(f"{server.ops_url}/status").json()["workers"]]
    assert_second_signal_exits_at_once(server)

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return status == "Z"  # killed, not yet reaped by its (exited) parent's reaper

    wait_for(lambda: all(gone(pid) for pid in pids), timeout=2)
