"""The app's own metrics are on the ops `/metrics`: a service that registers `broker_orders_total`
in prometheus_client's default registry sees it there (it used to be missing), summed over
workers in multiprocess mode, and `[telemetry] app_metrics = false` leaves it out."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.helpers import ROOT, ServeProcess, write_config
from tests.telemetry.conftest import value

CONFIG = """
[service]
name = "broker"
app = "tests.telemetry.broker_app:app"
[lifecycle]
pre_stop_delay = "0s"
drain_timeout = "5s"
flush_timeout = "1s"
[telemetry]
access_log = false
{extra}
"""


def _orders(serve: ServeProcess, sent: int) -> str:
    for _ in range(sent):
        # A new connection per request, so the kernel spreads them over the workers.
        with httpx.Client() as client:
            assert client.post(f"{serve.app_url}/order").status_code == 200
    return httpx.get(f"{serve.ops_url}/metrics", timeout=5).text


@pytest.mark.parametrize("workers", [1, 2])
def test_default_registry_is_served(tmp_path: Path, workers: int) -> None:
    config = write_config(tmp_path, CONFIG.format(extra=""))
    serve = ServeProcess(
        config, cwd=ROOT, env={"PYTHONPATH": str(ROOT)}, args=("--workers", str(workers))
    ).start(timeout=40)
    try:
        body = _orders(serve, 12)
        assert value(body, "broker_orders_total", outcome="accepted") == 12
        # The default registry's own process collectors do not duplicate Pilothouse's families.
        assert body.count("# TYPE process_cpu_seconds_total") <= 1
        assert body.count("# TYPE broker_orders_total") == 1
        serve.signal(signal.SIGTERM)
        assert serve.wait(40) == 0
    finally:
        serve.stop()


def test_app_metrics_can_be_switched_off(tmp_path: Path) -> None:
    config = write_config(tmp_path, CONFIG.format(extra="app_metrics = false"))
    with ServeProcess(config, cwd=ROOT, env={"PYTHONPATH": str(ROOT)}) as serve:
        body = _orders(serve, 2)
        assert "broker_orders_total" not in body
        assert "http_server_request_duration_seconds_count" in body
