"""A real Prometheus scrapes the demo service; PromQL over its HTTP API sees the traffic."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.generators.monitoring import engines
from tests.helpers import ServeProcess


def _query(prometheus: str, promql: str, at: float | None = None) -> list[dict[str, object]]:
    params = {"query": promql} if at is None else {"query": promql, "time": f"{at:.3f}"}
    r = httpx.get(f"{prometheus}/api/v1/query", params=params, timeout=5)
    r.raise_for_status()
    result: list[dict[str, object]] = r.json()["data"]["result"]
    return result


def _scalar(prometheus: str, promql: str, at: float | None = None) -> float | None:
    result = _query(prometheus, promql, at)
    return float(result[0]["value"][1]) if result else None  # type: ignore[index]


def test_prometheus_scrapes_and_computes_the_request_rate(
    config_factory: Callable[..., Path], serve_env: dict[str, str], tmp_path: Path
) -> None:
    with ServeProcess(config_factory('traces = "none"\naccess_log = false'), env=serve_env) as serve:
        # On a port the kernel picked, started again on a new one if another process took it.
        prom = engines.prometheus(tmp_path, "demo", f"127.0.0.1:{serve.ops_port}", [])
        url = prom.url
        sent = 0
        stop = threading.Event()

        def load() -> None:  # about 20 requests per second
            nonlocal sent
            with httpx.Client(base_url=serve.app_url) as client:
                while not stop.is_set():
                    client.get("/items/1").raise_for_status()
                    sent += 1
                    time.sleep(0.05)

        try:
            deadline = time.monotonic() + 30
            while _up(url) is not True:
                assert time.monotonic() < deadline, "prometheus never scraped the service"
                time.sleep(0.5)
            worker = threading.Thread(target=load)
            worker.start()
            time.sleep(8)  # the load's length: what the rate below is taken over
            stop.set()
            worker.join()
            stopped = time.time()
            selector = 'http_server_request_duration_seconds_count{job="demo",http_route="/items/{id}"}'
            deadline = time.monotonic() + 30
            while _scalar(url, f"sum({selector})") != sent:  # a scrape after the last request
                assert time.monotonic() < deadline, (sent, _scalar(url, f"sum({selector})"))
                time.sleep(0.2)
            # Evaluated at a fixed time inside the load, not at "now", so a slow wait above
            # cannot slide the window into the idle time after it.
            rate = _scalar(url, f"sum(rate({selector}[5s]))", at=stopped - 1)
            assert rate is not None and 5 < rate < 40, rate  # ~20/s, generous for a loaded machine
            assert _scalar(url, 'pilothouse_lifecycle_state{job="demo",state="ready"}') == 1
        finally:
            prom.stop()


def _up(url: str) -> bool | None:
    try:
        return _scalar(url, 'up{job="demo"}') == 1
    except httpx.HTTPError:
        return None
