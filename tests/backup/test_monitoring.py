"""Backup metrics come from the job store, whichever process ran the backup; the BackupTooOld and
RestoreTestFailing alerts are promtool-tested and have runbooks."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from prometheus_client import generate_latest

from pilothouse.backup.metrics import publish
from pilothouse.config import load_config
from pilothouse.jobs.registry import Registry, load_jobs
from pilothouse.jobs.store import open_store
from pilothouse.metrics import Metrics
from tests.backup.conftest import ENV, Service
from tests.generators.monitoring.test_bundle import generated, rules_of
from tests.helpers import run_cli


def _values(service: Service) -> dict[str, float]:
    config = load_config(service.config)
    metrics = Metrics()
    publish(open_store(config), load_jobs(config, Registry()), metrics)
    found = {}
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith("pilothouse_backup_"):
            name, value = line.rsplit(" ", 1)
            found[name] = float(value)
    return found


def _drill(service: Service) -> subprocess.CompletedProcess[str]:
    """The restore drill as a recorded job (what a schedule runs)."""
    args = ("jobs", "run", "pilothouse.backup-restore-test", "-c", str(service.config))
    return run_cli(*args, env=ENV, cwd=service.config.parent)


def test_metrics_follow_runs_recorded_in_the_store(service: Service) -> None:
    never = _values(service)
    assert never['pilothouse_backup_last_success_timestamp_seconds{target="db"}'] == 0
    assert (
        run_cli("backup", "run", "-c", str(service.config), env=ENV, cwd=service.config.parent).returncode
        == 0
    )
    drill = _drill(service)
    assert drill.returncode == 0, drill.stderr
    ok = _values(service)
    for target in ("db", "files", "jobs", "conf"):
        assert ok[f'pilothouse_backup_last_success_timestamp_seconds{{target="{target}"}}'] > 0
    assert ok["pilothouse_backup_restore_test_failing"] == 0
    assert ok["pilothouse_backup_restore_test_last_success_timestamp_seconds"] > 0
    shutil.rmtree(service.repo / "snapshots")  # the repository lost its snapshots
    failed = _drill(service)
    assert failed.returncode == 1
    assert _values(service)["pilothouse_backup_restore_test_failing"] == 1


def test_backup_alerts_are_tested_and_documented(service: Service, tmp_path: Path) -> None:
    out = generated(tmp_path, service.config)
    result = run_cli("validate", str(out), "--format", "json", "--strict")
    assert result.returncode == 0, result.stdout + result.stderr
    assert {v["status"] for v in json.loads(result.stdout)} == {"pass"}
    alerts = {r.get("alert") for r in rules_of(out)}
    assert {"BackupTooOld", "RestoreTestFailing"} <= alerts
    assert (out / "runbooks/BackupTooOld.md").is_file() and (out / "runbooks/RestoreTestFailing.md").is_file()
