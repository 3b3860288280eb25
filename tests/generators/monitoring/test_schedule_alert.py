"""The schedule alert: in the bundle only when schedules exist, promtool-tested (firing and quiet),
with a runbook, and every series it reads is really exported by a worker that runs schedules."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx

from pilothouse.catalog import jobs as job_metrics
from tests.generators.monitoring.test_bundle import generated, rules_of
from tests.helpers import PILOTHOUSE, free_port, run_cli, write_config
from tests.jobs.conftest import HERE, wait_until

CONFIG = """
[service]
name = "sched"

[ops]
host = "127.0.0.1"
port = {port}

[jobs]
module = "sample_jobs"
path = "jobs.sqlite3"
poll_interval = "50ms"
{schedules}
"""
SCHEDULE = """
[[jobs.schedules]]
job = "tick"
name = "every-second"
cron = "* * * * * *"
"""


def test_alert_is_generated_tested_and_documented_only_with_schedules(tmp_path: Path) -> None:
    with_schedules = write_config(tmp_path, CONFIG.format(port=9191, schedules=SCHEDULE))
    out = generated(tmp_path, with_schedules)
    result = run_cli("validate", str(out), "--format", "json", "--strict")
    assert result.returncode == 0, result.stdout + result.stderr
    verdicts = {v["tool"]: v for v in json.loads(result.stdout)}
    assert verdicts["promtool test rules"]["status"] == "pass"
    assert "ScheduleNotSucceeding" in {r.get("alert") for r in rules_of(out)}
    assert (out / "runbooks/ScheduleNotSucceeding.md").is_file()
    plain = tmp_path / "plain"
    plain.mkdir()
    out = generated(plain, write_config(plain, CONFIG.format(port=9191, schedules="")))
    assert "ScheduleNotSucceeding" not in {r.get("alert") for r in rules_of(out)}


def _worker_on_a_free_port(tmp_path: Path) -> tuple[subprocess.Popen[bytes], int]:
    """A worker serving its ops port; a port taken between choosing and binding is retried."""
    for _ in range(5):
        port = free_port()
        config = write_config(tmp_path, CONFIG.format(port=port, schedules=SCHEDULE))
        proc = subprocess.Popen(
            [*PILOTHOUSE, "jobs", "worker", "-c", str(config)],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda: proc.poll() is not None or _scrape(port), 30, "the ops port")  # noqa: B023
        if proc.poll() is None:
            return proc, port
    raise AssertionError("no free ops port in five tries")


def _scrape(port: int) -> str:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
    except httpx.HTTPError:
        return ""


def test_worker_exports_every_schedule_series(tmp_path: Path) -> None:
    shutil.copy(HERE / "sample_jobs.py", tmp_path / "sample_jobs.py")
    proc, port = _worker_on_a_free_port(tmp_path)
    try:
        wanted = [spec.name for spec in job_metrics.SCHEDULE_SPECS]
        wait_until(
            lambda: all(f'{name}{{schedule="every-second"}}' in _scrape(port) for name in wanted),
            30,
            "the schedule series",
        )
    finally:
        proc.terminate()
        assert proc.wait(timeout=20) == 0
