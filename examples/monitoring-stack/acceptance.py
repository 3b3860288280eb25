"""Acceptance of the monitoring stack's operations (reference system 004): every criterion of
ACCEPTANCE.md that can run here, against the real parts: Prometheus (its admin API, promtool
backfill), restic, logrotate, systemd-analyze, promtool, apt-get, a package index speaking PyPI's
JSON API, a webhook receiver, and this example's generated bundles.

The example's config names host paths (/var/lib/prometheus/metrics2, /var/backups/monitor...);
`stack` copies the example into a temporary directory with those paths moved under it and
Prometheus's URL pointing at a real Prometheus started there, the package index at a local one
(the distributions installed here, httpx newer with an advisory fixed in it), apt at private
repositories offering a security and a plain upgrade of installed packages (`APT_CONFIG`), and the
report's webhook at a local receiver, and `[deploy].image` at a real OCI registry on loopback
(Debian's docker-registry) holding `monitor:1.0.0`, with `image_apply` a `podman pull` (no compose
engine here).

Run: `make examples`, or `.venv/bin/pytest tests/examples/test_monitoring_stack.py`.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.generators.monitoring.engines import Engine, Webhook
from tests.helpers import run_cli, self_signed_certificate
from tests.jobs.conftest import wait_until
from tests.maintenance.package_index import (
    PLAIN_PACKAGE,
    SECURITY_PACKAGE,
    LocalRegistry,
    PackageIndex,
    apt_config,
    podman,
    tiny_image,
)

EXAMPLE = Path(__file__).resolve().parent
CONFIG = EXAMPLE / "pilothouse.toml"
ENV = {"MONITOR_BACKUP_PASSWORD": "monitor-backup-password-for-tests"}
SCHEDULED = (
    "pilothouse.backup",
    "pilothouse.backup-restore-test",
    "pilothouse.prometheus-cleanup",
    "pilothouse.certificates",
    "pilothouse.updates",
    "pilothouse.report",
    "pilothouse.prune-jobs",
)


@dataclass
class Stack:
    root: Path
    config: Path
    prometheus: Engine
    prom_data: Path
    old: int  # a backfilled sample 40 days old (seconds)
    recent: int  # one 2 hours old
    index: PackageIndex
    webhook: Webhook
    env: dict[str, str]
    registry: LocalRegistry
    image: str  # the reference [deploy].image:tag names in the registry


def _backfill(data: Path, old: int, recent: int) -> None:
    lines = ["# TYPE stack_samples counter"]
    for start in (old, recent):
        lines += [f'stack_samples_total{{part="{start}"}} {i} {start + 15 * i}' for i in range(240)]
    source = data.parent / "backfill.om"
    source.write_text("\n".join(lines) + "\n# EOF\n")
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        check=True,
        capture_output=True,
    )


def _cert(path: Path, days: float) -> None:
    self_signed_certificate(
        path.parent, path.stem, days=days, common_name="grafana.monitor.example", issued_days_ago=80
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("monitoring-stack")
    shutil.copytree(EXAMPLE, root / "example", ignore=shutil.ignore_patterns("__pycache__", "acceptance.py"))
    now = int(time.time())
    old, recent = now - 40 * 86400, now - 2 * 3600
    prom_data = root / "var/lib/prometheus/metrics2"
    prom_data.mkdir(parents=True)
    _backfill(prom_data, old, recent)
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed (make tools)"

    def prometheus(port: int) -> list[str]:
        (root / "prometheus.yml").write_text(
            "global: {scrape_interval: 1s}\n"
            "scrape_configs: [{job_name: prometheus, static_configs: "
            f"[{{targets: ['127.0.0.1:{port}']}}]}}]\n"
        )
        # retention 100d: the 40-day-old samples stay until the cleanup job removes them
        return [
            binary,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={prom_data}",
            "--storage.tsdb.retention.time=100d",
            "--web.enable-admin-api",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]

    engine = Engine(prometheus, "/-/ready", "prometheus", root / "prometheus.log")
    wait_until(lambda: bool(_query(engine.url, "up", time.time())), 30, "Prometheus scraping itself")
    for sub in (
        "var/lib/grafana/dashboards",
        "var/lib/loki/chunks",
        "var/log/monitor",
        "var/lib/monitor",
        "etc/ssl/monitor",
    ):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "var/lib/grafana/dashboards/overview.json").write_text('{"title": "Overview"}\n')
    (root / "var/lib/loki/chunks/0001").write_bytes(bytes(range(256)) * 64)
    (root / "var/log/monitor/monitor.log").write_text("started\n" * 500)
    (root / "var/log/monitor/monitor.log.1").write_text("yesterday\n" * 500)
    _cert(root / "etc/ssl/monitor/grafana.pem", 10)  # inside the 21-day warning
    text = CONFIG.read_text()
    for host_path in (
        "/var/lib/prometheus/metrics2",
        "/var/lib/prometheus",
        "/var/lib/grafana/dashboards",
        "/var/lib/loki",
        "/var/log/monitor",
        "/var/backups/monitor",
        "/var/lib/monitor",
        "/etc/ssl/monitor",
    ):
        text = text.replace(f'"{host_path}', f'"{root}{host_path}')
    text = text.replace("http://127.0.0.1:9091", engine.url)
    index = PackageIndex()
    installed = dict(index.releases)
    index.releases["httpx"] = "99.0.0"
    index.vulnerabilities[("httpx", installed["httpx"])] = [
        {"id": "GHSA-monitor-0001", "aliases": ["CVE-2099-0001"], "fixed_in": ["99.0.0"]}
    ]
    text = text.replace("https://pypi.org/pypi", index.url)
    registry = LocalRegistry(root / "registry")
    image = f"{registry.host}/monitor:1.0.0"
    podman("push", "-q", "--tls-verify=false", tiny_image(root, "monitor-stack-v1", "1\n"), image)
    text = text.replace('image = "registry.example.com/monitor"', f'image = "{registry.host}/monitor"')
    text = text.replace("image = true ", f'registry_url = "{registry.url}"\nimage = true ')
    text = text.replace(
        '["docker", "compose", "-f", "/etc/monitor/compose.prod.yaml", "up", "-d", "--pull", "always"]',
        json.dumps(["podman", "pull", "-q", "--tls-verify=false", image]),
    )
    webhook = Webhook()
    env = {
        **ENV,
        "APT_CONFIG": str(apt_config(root / "apt")),
        "MONITOR_OPS_REPORT_URL": webhook.url + "/report",
    }
    text = text.replace('renew_command = ["certbot", "renew", "--quiet"]\n', "")  # no certbot here
    config = root / "example/pilothouse.toml"
    config.write_text(text)
    try:
        yield Stack(root, config, engine, prom_data, old, recent, index, webhook, env, registry, image)
    finally:
        engine.stop()
        index.stop()
        webhook.stop()
        registry.stop()
        for name in (image, "localhost/monitor-stack-v1:latest", "localhost/monitor-stack-v2:latest"):
            subprocess.run(["podman", "rmi", "-f", name], capture_output=True, check=False)


def _cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "-c", str(stack.config), env=stack.env, cwd=stack.config.parent, timeout=300)


def _query(url: str, query: str, at: float) -> list[Any]:
    body = httpx.get(f"{url}/api/v1/query", params={"query": query, "time": at}, timeout=30).json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("monitoring-stack-bundle")
    result = run_cli("generate", "deploy", "--config", str(CONFIG), "--out", str(out / "deploy"))
    assert result.returncode == 0, result.stderr
    result = run_cli("generate", "monitoring", "--config", str(CONFIG), "--out", str(out / "monitoring"))
    assert result.returncode == 0, result.stderr
    return out


def _verdicts(directory: Path) -> list[dict[str, str]]:
    result = run_cli("validate", str(directory), "--format", "json", timeout=600)
    found: list[dict[str, str]] = json.loads(result.stdout)
    # checkov runs from its own venv (make test installs it); everything else must pass
    failed = [v for v in found if v["status"] != "pass" and v["tool"] != "checkov"]
    assert failed == [], failed
    return found


def test_production_compose_is_hardened_with_reservations_and_limits(bundle: Path) -> None:
    document = yaml.safe_load((bundle / "deploy/compose.prod.yaml").read_text())
    app = document["services"]["monitor"]
    assert app["deploy"]["resources"] == {
        "limits": {"cpus": "1.0", "memory": str(256 * 2**20)},
        "reservations": {"cpus": "0.25", "memory": str(256 * 2**20)},
    }
    assert app["restart"] == "unless-stopped"
    assert app["read_only"] is True and app["cap_drop"] == ["ALL"]
    assert app["security_opt"] == ["no-new-privileges:true"]
    assert app["logging"] == {"driver": "json-file", "options": {"max-file": "5", "max-size": "10m"}}
    assert app["networks"] == ["front", "back"] and document["networks"]["back"] == {"internal": True}
    assert "healthcheck" in app and document["volumes"]
    assert "${" in json.dumps(app["environment"]) or "secrets" in document  # no secret value inline
    tools = {v["tool"] for v in _verdicts(bundle / "deploy")}
    assert {"hadolint", "systemd-analyze verify"} <= tools


def test_systemd_units_ordered_restarting_limited_and_verified(bundle: Path) -> None:
    systemd = bundle / "deploy/systemd"
    main = (systemd / "monitor.service").read_text()
    assert "After=network-online.target prometheus.service" in main
    assert "Wants=network-online.target prometheus.service" in main
    for line in (
        "Restart=on-failure",
        "RestartSec=2s",
        "StartLimitBurst=5",
        "MemoryMax=268435456",
        "CPUQuota=100%",
        "TimeoutStartSec=60s",
        "ProtectSystem=strict",
    ):
        assert line in main, line
    for job in SCHEDULED:
        base = f"monitor-{job.replace('.', '-')}"
        assert "Persistent=" in (systemd / f"{base}.timer").read_text()
        unit = (systemd / f"{base}.service").read_text()
        assert "Type=oneshot" in unit and "After=network-online.target prometheus.service" in unit
    backup = (systemd / "monitor-pilothouse-backup.service").read_text()
    assert "ReadWritePaths=-/var/backups/monitor" in backup
    verdicts = _verdicts(bundle / "deploy")
    verified = {v["target"] for v in verdicts if v["tool"] == "systemd-analyze verify"}
    assert "systemd/monitor.service" in verified and "systemd/monitor-pilothouse-backup.timer" in verified


def test_scheduled_backup_restore_drill_and_measured_rto(stack: Stack) -> None:
    ran = _cli(stack, "jobs", "run", "pilothouse.backup", "--format", "json")  # what the timer runs
    assert ran.returncode == 0, ran.stderr
    steps = {s["name"]: s["outcome"] for s in json.loads(ran.stdout)["steps"]}
    assert steps == {
        "prepare": "ok",
        "target-prometheus": "ok",
        "target-grafana": "ok",
        "target-loki": "ok",
        "target-logs": "ok",
        "target-config": "ok",
        "target-jobs": "ok",
        "manifest": "ok",
        "forget": "ok",
    }
    verify = _cli(stack, "backup", "verify")
    assert verify.returncode == 0, verify.stderr
    drill = _cli(stack, "backup", "restore-test", "--format", "json")
    assert drill.returncode == 0, drill.stderr
    report = json.loads(drill.stdout)
    assert report["rto_seconds"] > 0
    checks = {t["name"]: t["check"] for t in report["targets"]}
    assert set(checks) == {"prometheus", "grafana", "loki", "logs", "config", "jobs"}
    assert "Prometheus opened it" in checks["prometheus"] and "query answered" in checks["prometheus"]
    assert "closed log file(s) equal" in checks["logs"] and "config parses" in checks["config"]
    scheduled = _cli(stack, "jobs", "run", "pilothouse.backup-restore-test")  # the weekly drill job
    assert scheduled.returncode == 0, scheduled.stderr
    assert "RTO" in scheduled.stderr


def test_backup_monitoring_metrics_from_the_store(stack: Stack) -> None:
    from prometheus_client import generate_latest

    from pilothouse.backup.metrics import publish
    from pilothouse.config import load_config
    from pilothouse.jobs.registry import Registry, load_jobs
    from pilothouse.jobs.store import open_store
    from pilothouse.metrics import Metrics

    if _cli(stack, "backup", "verify").returncode != 0:  # run alone: take a backup first
        assert _cli(stack, "backup", "run").returncode == 0
    config = load_config(stack.config)
    metrics = Metrics()
    publish(open_store(config), load_jobs(config, Registry()), metrics)
    text = generate_latest(metrics.registry).decode()
    for target in ("prometheus", "grafana", "loki", "logs", "config", "jobs"):
        series = f'pilothouse_backup_last_success_timestamp_seconds{{target="{target}"}}'
        line = next(ln for ln in text.splitlines() if ln.startswith(series))
        assert float(line.rsplit(" ", 1)[1]) > 0, line


def test_metric_cleanup_older_than_30_days(stack: Stack) -> None:
    url = stack.prometheus.url
    assert _query(url, "stack_samples_total", stack.old + 1800)  # 40 days old, kept by retention
    ran = _cli(stack, "jobs", "run", "pilothouse.prometheus-cleanup", "--param", "older_than=30d")
    assert ran.returncode == 0, ran.stderr
    assert _query(url, "stack_samples_total", stack.old + 1800) == []
    assert _query(url, "stack_samples_total", stack.recent + 1800)  # 2 hours old: kept


def test_certificate_check_health_report_and_performance(stack: Stack) -> None:
    certs = _cli(stack, "jobs", "run", "pilothouse.certificates", "--format", "json")
    assert certs.returncode == 0, certs.stderr  # a warning (RC 4) is not a failure
    assert {s["name"]: s["rc"] for s in json.loads(certs.stdout)["steps"]} == {"cert-grafana": 4}
    report = _cli(stack, "jobs", "run", "pilothouse.report", "--format", "json")
    assert report.returncode == 0, report.stderr
    (written,) = (stack.root / "var/lib/monitor/reports").glob("report-*.json")
    facts = json.loads(written.read_text())
    assert "certificate grafana: warning" in facts["attention"]
    assert "alerts_firing" in facts and facts["disk"]
    assert any(name == "pilothouse.certificates" for name in facts["jobs"])
    text = written.with_suffix(".md").read_text()
    assert text.startswith("# Operations report: monitor") and "## Disk" in text


def test_update_check_notification_and_security_patch_runbook(stack: Stack, bundle: Path) -> None:
    """5.4 and 4.2d: the scheduled check finds the pending updates (a Python distribution with a
    fixed advisory; Debian packages, one from a security suite), the metric and the promtool-tested
    alert follow, the daily report's webhook carries them, and the alert's runbook is the patch
    procedure with the project's real commands."""
    from prometheus_client import generate_latest

    from pilothouse.config import load_config
    from pilothouse.jobs.registry import Registry, load_jobs
    from pilothouse.jobs.store import open_store
    from pilothouse.maintenance.metrics import publish
    from pilothouse.metrics import Metrics

    ran = _cli(stack, "jobs", "run", "pilothouse.updates", "--format", "json")  # what its timer runs
    assert ran.returncode == 0, ran.stderr  # updates pending: a warning (RC 4), not a failure
    steps = {s["name"]: s["rc"] for s in json.loads(ran.stdout)["steps"]}
    assert steps == {"python": 4, "python-security": 4, "apt": 4, "apt-security": 4, "image": 0}
    assert "-> 99.0.0 (security: GHSA-monitor-0001)" in ran.stderr
    assert f"apt update: {SECURITY_PACKAGE} " in ran.stderr and f"apt update: {PLAIN_PACKAGE} " in ran.stderr

    config = load_config(stack.config)
    metrics = Metrics()
    publish(open_store(config), load_jobs(config, Registry()), metrics)
    text = generate_latest(metrics.registry).decode()
    for kind in ("python", "apt"):
        assert f'pilothouse_updates_pending{{kind="{kind}",scope="security"}} 1.0' in text

    before = len(stack.webhook.payloads)
    report = _cli(stack, "jobs", "run", "pilothouse.report", "--format", "json")
    assert report.returncode == 0, report.stderr
    posted = stack.webhook.payloads[before]  # the notification
    assert posted["path"] == "/report" and posted["service"] == "monitor"
    python = posted["updates"]["python"]["updates"]
    assert [(u["name"], u["available"], u["advisories"]) for u in python] == [
        ("httpx", "99.0.0", ["GHSA-monitor-0001"])
    ]
    assert {u["name"]: u["security"] for u in posted["updates"]["apt"]["updates"]} == {
        SECURITY_PACKAGE: True,
        PLAIN_PACKAGE: False,
    }
    assert "security updates pending (python): httpx" in posted["attention"]
    assert f"security updates pending (apt): {SECURITY_PACKAGE}" in posted["attention"]
    (written,) = (stack.root / "var/lib/monitor/reports").glob("report-*.md")
    assert "## Updates available" in written.read_text()

    runbook = (bundle / "monitoring/runbooks/SecurityUpdatesAvailable.md").read_text()
    for step in (
        "pilothouse jobs run pilothouse.updates",
        "pilothouse build --no-cache --tag registry.example.com/monitor:1.0.0-1",
        "pilothouse smoke --image registry.example.com/monitor:1.0.0-1",
        "pilothouse install systemd --upgrade --version 1.0.0-1",
        "pilothouse install systemd --rollback",
        "apt-get update && apt-get upgrade",
        "systemctl restart monitor.service",
        "pilothouse status",
    ):
        assert step in runbook, step


def test_container_updates_pulled_from_the_registry(stack: Stack) -> None:
    """5.1d: a new image pushed under the deployed tag is found (the registry's digest is not this
    host's), `image_apply` pulls it (here `podman pull`; the example's compose `up -d --pull
    always` recreates the containers), and the check ends ok with the new digest here."""
    podman("pull", "-q", "--tls-verify=false", stack.image)  # this host runs what is published now
    podman("push", "-q", "--tls-verify=false", tiny_image(stack.root, "monitor-stack-v2", "2\n"), stack.image)
    published = httpx.head(
        f"{stack.registry.url}/v2/monitor/manifests/1.0.0",
        headers={"accept": "application/vnd.oci.image.manifest.v1+json"},
    ).headers["docker-content-digest"]
    here = json.loads(podman("image", "inspect", "--format", "{{json .RepoDigests}}", stack.image))
    assert not any(d.endswith(f"@{published}") for d in here)
    ran = _cli(stack, "jobs", "run", "pilothouse.updates", "--format", "json")
    assert ran.returncode == 0, ran.stderr
    assert {s["name"]: s["rc"] for s in json.loads(ran.stdout)["steps"]}["image"] == 0
    assert f"image: found {stack.image} sha256:" in ran.stderr and f"-> {published}" in ran.stderr
    assert "image: image_apply ran" in ran.stderr
    here = json.loads(podman("image", "inspect", "--format", "{{json .RepoDigests}}", stack.image))
    assert any(d.endswith(f"@{published}") for d in here)


def test_log_rotation_of_the_log_directory(bundle: Path, tmp_path: Path) -> None:
    conf = (bundle / "deploy/systemd/logrotate/monitor.conf").read_text()
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "monitor.log").write_text("day one\n")
    local = tmp_path / "monitor.conf"
    local.write_text(conf.replace("/var/log/monitor/", f"{logs}/"))
    binary = shutil.which("logrotate") or "/usr/sbin/logrotate"
    for day in ("two", "three"):
        subprocess.run([binary, "--force", "--state", str(tmp_path / "state"), str(local)], check=True)
        (logs / "monitor.log").write_text(f"day {day}\n")
    assert (logs / "monitor.log.1").read_text() == "day two\n"
    assert gzip.decompress((logs / "monitor.log.2.gz").read_bytes()) == b"day one\n"


def test_alerts_runbooks_and_dashboards_validate(bundle: Path) -> None:
    monitoring = bundle / "monitoring"
    verdicts = _verdicts(monitoring)
    assert {"promtool check rules", "promtool test rules"} <= {v["tool"] for v in verdicts}
    for alert in (
        "BackupTooOld",
        "RestoreTestFailing",
        "ScheduleNotSucceeding",
        "CertificateExpiring",
        "SecurityUpdatesAvailable",
        "ReadinessFailing",
        "TargetDown",
    ):
        runbook = monitoring / "runbooks" / f"{alert}.md"
        assert runbook.is_file(), alert


def test_the_context_files_are_current() -> None:
    done = run_cli("generate", "context", "--check", "--config", str(CONFIG))
    assert done.returncode == 0, done.stderr + "\n(run: pilothouse generate context -c " + str(CONFIG) + ")"
    assert "@AGENTS.md" in (EXAMPLE / "CLAUDE.md").read_text()  # Claude Code's import of the context
    text = (EXAMPLE / "AGENTS.md").read_text()
    for needed in (
        "pilothouse_backup_last_success_timestamp_seconds",
        "pilothouse_certificate_expiring",
        "pilothouse_updates_pending",
        "pilothouse.updates",
        "pilothouse.backup",
        "## Ports and endpoints",
    ):
        assert needed in text, needed
