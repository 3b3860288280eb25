"""Schedules as generated runners: CronJobs and systemd timers from the same `[[jobs.schedules]]`
the worker fires, through the real validators (kubernetes-validate --strict, checkov,
systemd-analyze verify/security), and agreeing with the model: a timer's elapse times computed
by `systemd-analyze calendar` equal croniter's, a CronJob's pod equals the Deployment's pod."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from pilothouse.config import load_config
from pilothouse.jobs import cron
from tests.helpers import SHOP_DIR, run_cli

SCHEDULES = """
[[jobs.schedules]]
job = "restock-report"
cron = "0 3 * * 1-5"
timezone = "Europe/Berlin"
params = {{ threshold = 3 }}

[[jobs.schedules]]
job = "reindex"
cron = "*/15 2 1,15 * 0"
timezone = "America/New_York"
misfire = "skip"
concurrency = "{concurrency}"
"""


def shop_with_schedules(tmp_path: Path, scheduler: str) -> Path:
    """The shop example plus two schedules for `scheduler` (the example itself stays unscheduled)."""
    directory = tmp_path / "shop"
    shutil.copytree(SHOP_DIR, directory, ignore=shutil.ignore_patterns("*.sqlite3*", ".demo-*"))
    config = directory / "pilothouse.toml"
    text = config.read_text()
    concurrency = "replace" if scheduler == "kubernetes" else "forbid"
    text = text.replace(
        "concurrency = 2\n",
        f'concurrency = 2\nscheduler = "{scheduler}"\n' + SCHEDULES.format(concurrency=concurrency),
        1,
    )
    config.write_text(text)
    return config


def generate(config: Path) -> Path:
    out = config.parent / "deploy"
    result = run_cli("generate", "deploy", "--config", str(config), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def validate(out: Path) -> list[dict[str, str]]:
    result = run_cli("validate", str(out), "--format", "json", "--strict", timeout=300)
    verdicts: list[dict[str, str]] = json.loads(result.stdout)
    assert [v for v in verdicts if v["status"] != "pass"] == [] and result.returncode == 0
    return verdicts


def test_cronjobs_pass_validators_and_share_the_deployment_pod(tmp_path: Path) -> None:
    config_path = shop_with_schedules(tmp_path, "kubernetes")
    out = generate(config_path)
    verdicts = validate(out)
    assert {"kubernetes-validate", "checkov"} <= {v["tool"] for v in verdicts}
    assert not list((out / "systemd").glob("*.timer"))  # one runner only
    config = load_config(config_path)
    assert config.jobs is not None
    jobs = list(yaml.safe_load_all((out / "k8s/base/cronjobs.yaml").read_text()))
    deployment = yaml.safe_load((out / "k8s/base/deployment.yaml").read_text())
    app_pod = deployment["spec"]["template"]["spec"]
    app = app_pod["containers"][0]
    assert [j["metadata"]["name"] for j in jobs] == ["shop-restock-report", "shop-reindex"]
    for job, schedule in zip(jobs, config.jobs.schedules, strict=True):
        spec = job["spec"]
        assert (spec["schedule"], spec["timeZone"]) == (schedule.cron, schedule.timezone)
        assert spec["concurrencyPolicy"] == schedule.concurrency.capitalize()
        assert spec["startingDeadlineSeconds"] == int(schedule.deadline)
        pod = spec["jobTemplate"]["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        for key in ("image", "env", "securityContext", "resources", "volumeMounts"):
            assert container[key] == app[key], key
        for key in ("securityContext", "volumes", "serviceAccountName", "automountServiceAccountToken"):
            assert pod["spec"][key] == app_pod[key], key
        assert container["command"][:4] == ["pilothouse", "jobs", "run", schedule.job]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert not selector.items() <= pod["metadata"]["labels"].items()  # the Service never routes here
    assert (
        "--param=threshold=3"
        in jobs[0]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"]
    )


def _systemd_elapses(spec: str, count: int) -> list[float]:
    """Elapse times as systemd itself computes them (`systemd-analyze calendar`, in UTC)."""
    result = subprocess.run(
        ["systemd-analyze", "calendar", f"--iterations={count}", spec],
        capture_output=True,
        text=True,
        check=True,
        env={"TZ": "UTC", "PATH": "/usr/bin:/bin"},
    )
    stamps = re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC", result.stdout)
    return [datetime.fromisoformat(f"{s}+00:00").timestamp() for s in stamps]


def test_timers_pass_validators_and_fire_when_croniter_says(tmp_path: Path) -> None:
    config_path = shop_with_schedules(tmp_path, "systemd")
    out = generate(config_path)
    verdicts = validate(out)
    checked = {(v["tool"], v["target"]) for v in verdicts}
    for base in ("shop-restock-report", "shop-reindex"):
        assert ("systemd-analyze verify", f"systemd/{base}.timer") in checked
        assert ("systemd-analyze security", f"systemd/{base}.service") in checked  # sandboxed too
    assert not (out / "k8s/base/cronjobs.yaml").exists()
    config = load_config(config_path)
    assert config.jobs is not None
    now = datetime.now().timestamp()
    main = (out / "systemd/shop.service").read_text()
    # what the main unit sets for its process (StateDirectory=, environment, limits, sandbox), less
    # what only a long-running `serve` has
    own = ("Type=", "ExecStart=", "Restart", "TimeoutStartSec=", "#")
    shared = [
        line
        for line in main.split("[Service]")[1].split("[Install]")[0].splitlines()
        if line and not line.startswith(own)
    ]
    assert "StateDirectoryMode=0700" in shared
    for schedule in config.jobs.schedules:
        timer = (out / f"systemd/shop-{schedule.key}.timer").read_text()
        specs = re.findall(r"^OnCalendar=(.+)$", timer, re.M)
        union = sorted({t for spec in specs for t in _systemd_elapses(spec, 40) if t > now})[:20]
        assert union == cron.next_fires(schedule.cron, schedule.timezone, now, 20), schedule.cron
        assert ("Persistent=false" in timer) == (schedule.misfire == "skip")
        assert "RandomizedDelaySec=" in timer
        service = (out / f"systemd/shop-{schedule.key}.service").read_text()
        assert "Type=oneshot" in service and f"jobs run {schedule.job}" in service
        assert [line for line in shared if line not in service.splitlines()] == []


def test_a_broken_timer_fails_verify(tmp_path: Path) -> None:
    """The timer check can fail: an impossible calendar (hour 25) leaves the timer without a trigger."""
    out = generate(shop_with_schedules(tmp_path, "systemd"))
    timer = out / "systemd/shop-reindex.timer"
    timer.write_text(re.sub(r"(?m)^OnCalendar=.*$", "OnCalendar=Sun *-*-* 25:00:00", timer.read_text()))
    result = run_cli("validate", str(out), "--format", "json", timeout=300)
    failed = {(v["tool"], v["target"]) for v in json.loads(result.stdout) if v["status"] == "fail"}
    assert ("systemd-analyze verify", "systemd/shop-reindex.timer") in failed and result.returncode == 1


@pytest.mark.parametrize(
    ("scheduler", "schedule", "fragment"),
    [
        ("systemd", 'job = "reindex"\ncron = "0 3 * * *"\nconcurrency = "allow"', "concurrency 'allow'"),
        ("kubernetes", 'job = "reindex"\ncron = "0 3 * * *"\nmisfire = "run_all"', "misfire 'run_all'"),
        ("systemd", 'job = "reindex"\ncron = "0 3 L * *"', "invalid for scheduler 'systemd'"),
    ],
)
def test_what_a_runner_cannot_do_is_one_line(
    tmp_path: Path, scheduler: str, schedule: str, fragment: str
) -> None:
    directory = tmp_path / "shop"
    shutil.copytree(SHOP_DIR, directory, ignore=shutil.ignore_patterns("*.sqlite3*", ".demo-*"))
    config = directory / "pilothouse.toml"
    config.write_text(
        config.read_text().replace(
            "concurrency = 2\n",
            f'concurrency = 2\nscheduler = "{scheduler}"\n\n[[jobs.schedules]]\n{schedule}\n',
            1,
        )
    )
    result = run_cli("generate", "deploy", "--config", str(config), "--out", str(directory / "deploy"))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and fragment in lines[0], result.stderr
    assert not (directory / "deploy").exists()  # no half-written bundle
