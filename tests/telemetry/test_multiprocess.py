"""`pilothouse serve --workers 2`: the one /metrics adds up both workers' samples."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.helpers import ServeProcess, eventually
from tests.telemetry.conftest import value


def test_two_workers_total_equals_requests_sent(
    config_factory: Callable[..., Path], serve_env: dict[str, str]
) -> None:
    serve = ServeProcess(
        config_factory('traces = "none"\naccess_log = false'), env=serve_env, args=("--workers", "2")
    ).start(timeout=40)
    try:
        sent = 60
        for _ in range(sent):
            # A new connection per request, so the kernel spreads them over both workers.
            with httpx.Client() as client:
                r = client.get(f"{serve.app_url}/items/1")
                assert r.status_code == 200
        body = httpx.get(f"{serve.ops_url}/metrics").text
        status = httpx.get(f"{serve.ops_url}/status").json()
        pids = {str(w["pid"]) for w in status["workers"]}
        labels = {
            "http_request_method": "GET",
            "http_route": "/items/{id}",
            "http_response_status_code": "200",
        }
        assert value(body, "http_server_request_duration_seconds_count", **labels) == sent
        assert value(body, "http_server_request_duration_seconds_bucket", le="+Inf", **labels) == sent
        # One summed series, not one per worker; and the supervisor's own metrics stay single.
        assert body.count('http_server_active_requests{http_request_method="GET"}') == 1
        assert body.count("pilothouse_build_info{") == 1
        assert len(pids) == 2 and str(os.getpid()) not in pids

        # Requests in progress: each worker's count (its gauge child), summed while they run,
        # back to 0 once they have all ended.
        def active() -> float:
            scraped = httpx.get(f"{serve.ops_url}/metrics").text
            return value(scraped, "http_server_active_requests", http_request_method="GET")

        release = threading.Event()

        def slow() -> None:  # one 0.2 s request after another, until released
            with httpx.Client(timeout=60) as client:
                while not release.is_set():
                    client.get(f"{serve.app_url}/items/1", params={"sleep": "0.2"})

        clients = [threading.Thread(target=slow) for _ in range(4)]
        for client in clients:
            client.start()
        try:
            eventually(lambda: active() >= 2)
        finally:
            release.set()
            for client in clients:
                client.join(60)
        eventually(lambda: active() == 0)
        serve.signal(signal.SIGTERM)
        assert serve.wait(40) == 0
    finally:
        serve.stop()
