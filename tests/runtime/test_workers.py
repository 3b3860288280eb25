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
from tests.runtime.test_serve import config, ready_status, wait_for


def test_two_workers_serve_drain_and_exit_zero(tmp_path: Path) -> None:
    marker = tmp_path / "shutdown.marker"
    server = ServeProcess(
        config(tmp_path, pre_stop="500ms", drain="5s"),
        cwd=ROOT,
        env={"SHUTDOWN_MARKER": str(marker)},
        args=("--workers", "2"),
    ).start()
    wait_for(lambda: ready_status(server) == 200, timeout=15)
    body = httpx.get(f"{server.ops_url}/ready").json()
    assert set(body["checks"]) == {"worker-0", "worker-1"}
    workers = httpx.get(f"{server.ops_url}/status").json()["workers"]
    assert len({w["pid"] for w in workers}) == 2 and all(w["started"] for w in workers)

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
    assert marker.exists()  # the app's lifespan shutdown ran in the workers


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
