"""The secrets feature inside `pilothouse serve`: startup refuses a missing secret with one line,
a running service picks a Kubernetes-style rotation up without restart, and a bad rotation
warns through readiness and metrics while the old value stays in use."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx

from tests.helpers import ROOT, ServeProcess, eventually, free_port, run_cli, write_config
from tests.secrets.kube import SecretVolume

CONFIG = """
[service]
name = "shop"
app = "tests.secrets.rotation_app:app"

[secrets]
mount_dir = "{mount}"
watch_interval = "100ms"
declare = [{{ secret = "db.password" }}]

[lifecycle]
pre_stop_delay = "0s"
drain_timeout = "2s"
"""


def metric(text: str, name: str, secret: str) -> float | None:
    match = re.search(rf'^{name}{{secret="{re.escape(secret)}"}} (\S+)$', text, re.M)
    return float(match.group(1)) if match else None


def test_missing_required_secret_stops_startup_with_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, CONFIG.format(mount=tmp_path / "mnt"))
    ops_port = free_port()
    result = run_cli(
        "serve",
        "--config",
        str(config),
        env={
            "PYTHONPATH": str(ROOT),
            "PILOTHOUSE_SERVICE__HOST": "127.0.0.1",
            "PILOTHOUSE_SERVICE__PORT": str(free_port()),
            "PILOTHOUSE_OPS__HOST": "127.0.0.1",
            "PILOTHOUSE_OPS__PORT": str(ops_port),
        },
        cwd=tmp_path,
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("pilothouse: error:")]
    assert errors == [
        f"pilothouse: error: required secret 'db.password' not found; looked in: "
        f"kubernetes {tmp_path}/mnt/db/password, env SHOP_DB_PASSWORD"
    ]
    assert "Traceback" not in result.stderr + result.stdout
    assert "serving" not in result.stderr + result.stdout  # nothing started
    with httpx.Client() as client:
        try:
            client.get(f"http://127.0.0.1:{ops_port}/health", timeout=0.5)
            raise AssertionError("the ops port answers although startup failed")
        except httpx.ConnectError:
            pass


def test_rotation_is_picked_up_without_restart(tmp_path: Path) -> None:
    volume = SecretVolume(tmp_path / "mnt", "db", {"password": "first-password-1"})
    config = write_config(tmp_path, CONFIG.format(mount=tmp_path / "mnt"))
    with ServeProcess(config, env={"PYTHONPATH": str(ROOT)}) as serve, httpx.Client() as client:
        assert client.get(serve.app_url).json() == {"reconnects": 0, "length": 16}
        ready = client.get(f"{serve.ops_url}/ready").json()
        assert ready["checks"]["secrets"]["status"] == "pass"
        assert ready["checks"]["secrets"]["critical"] is False
        scrape = client.get(f"{serve.ops_url}/metrics").text
        loaded_at = metric(scrape, "pilothouse_secret_last_load_timestamp_seconds", "db.password")
        assert loaded_at is not None and abs(loaded_at - time.time()) < 60
        assert metric(scrape, "pilothouse_secret_reload_failures_total", "db.password") == 0

        volume.update({"password": "second-password-22"})
        eventually(lambda: client.get(serve.app_url).json()["length"] == 18)
        time.sleep(0.5)  # several more watcher ticks
        assert client.get(serve.app_url).json() == {"reconnects": 1, "length": 18}

        # A rotation to an empty value: old value kept, readiness warns, the counter counts.
        volume.update({"password": ""})

        def warned() -> bool:
            body = client.get(f"{serve.ops_url}/ready").json()
            return bool(body["checks"]["secrets"]["status"] == "warn")

        eventually(warned)
        ready_response = client.get(f"{serve.ops_url}/ready")
        assert ready_response.status_code == 200  # non-critical: still serving
        assert ready_response.json()["checks"]["secrets"]["error"] == (
            "reload failed for db.password; serving with the previous value"
        )
        scrape = client.get(f"{serve.ops_url}/metrics").text
        failures = metric(scrape, "pilothouse_secret_reload_failures_total", "db.password")
        assert failures is not None and failures >= 1
        assert client.get(serve.app_url).json() == {"reconnects": 1, "length": 18}

        volume.update({"password": "third-password-333"})
        eventually(lambda: client.get(serve.app_url).json() == {"reconnects": 2, "length": 18})
        eventually(
            lambda: client.get(f"{serve.ops_url}/ready").json()["checks"]["secrets"]["status"] == "pass"
        )
        serve.signal()
        assert serve.wait() == 0
    for value in ("first-password-1", "second-password-22", "third-password-333"):
        assert value not in serve.output
    assert "secret rotated: name=db.password source=kubernetes" in serve.output
