"""The built-in maintenance jobs against real parts: Prometheus cleanup through the admin API of a
real Prometheus (samples older than the cut gone, newer ones kept), certificate expiry of a PEM
file and of a real TLS endpoint with the renewal hook, the metric every worker publishes from the
store and the promtool-tested CertificateExpiring alert, and the operations report written to a
directory and posted to a webhook."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from pilothouse.config import load_config
from pilothouse.jobs.registry import Registry, load_jobs
from pilothouse.jobs.store import open_store
from pilothouse.maintenance.metrics import publish
from pilothouse.metrics import Metrics
from tests.backup.test_prometheus_logs import start_prometheus, value
from tests.generators.monitoring.engines import Webhook
from tests.generators.monitoring.test_bundle import generated, rules_of
from tests.helpers import run_cli, self_signed_certificate, write_config
from tests.jobs.conftest import pg_schema, pg_store  # noqa: F401 - pg_schema is a fixture

BASE = """
[service]
name = "mt"
[telemetry]
log_format = "text"
[jobs]
path = "jobs.sqlite3"
{jobs}
[maintenance]
{maintenance}
"""


def base(maintenance: str, jobs: str = "") -> str:
    return BASE.format(maintenance=maintenance, jobs=jobs)


def jobs_run(
    config: Path, name: str, *params: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    args = [f"--param={p}" for p in params]
    return run_cli(
        "jobs",
        "run",
        name,
        *args,
        "-c",
        str(config),
        "--format",
        "json",
        env=env or {},
        cwd=config.parent,
        timeout=120,
    )


# -- Prometheus cleanup ---------------------------------------------------------------------------


def test_prometheus_cleanup_deletes_only_what_is_older(tmp_path: Path) -> None:
    now = int(time.time())
    old, recent = now - 10 * 86400, now - 3 * 3600
    lines = ["# TYPE kept counter"]
    for start in (old, recent):
        lines += [f'kept_total{{part="{start}"}} {i} {start + 15 * i}' for i in range(200)]
    source = tmp_path / "data.om"
    source.write_text("\n".join(lines) + "\n# EOF\n")
    data = tmp_path / "tsdb"
    subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(source), str(data)],
        check=True,
        capture_output=True,
    )
    engine = start_prometheus(tmp_path, data)
    try:
        assert value(engine.url, "kept_total", old + 1500) and value(engine.url, "kept_total", recent + 1500)
        config = write_config(tmp_path, base(f'prometheus = "{engine.url}"'))
        ran = jobs_run(config, "pilothouse.prometheus-cleanup", "older_than=2d")
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)["outcome"] == "ok"
        assert value(engine.url, "kept_total", old + 1500) == []  # older than 2 days: gone
        assert value(engine.url, "kept_total", recent + 1500)  # 3 hours old: kept
    finally:
        engine.stop()


def test_prometheus_cleanup_without_the_admin_api_fails_clearly(tmp_path: Path) -> None:
    from tests.generators.monitoring.engines import prometheus_with

    engine = prometheus_with(tmp_path, [], [])
    try:
        config = write_config(tmp_path, base(f'prometheus = "{engine.url}"'))
        ran = jobs_run(config, "pilothouse.prometheus-cleanup")
        assert ran.returncode == 1
        assert "--web.enable-admin-api" in ran.stderr
    finally:
        engine.stop()


# -- certificates ---------------------------------------------------------------------------------


def make_cert(directory: Path, name: str, days: float) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 valid for `days` more days (negative: expired)."""
    return self_signed_certificate(directory, name, days=days, issued_days_ago=400)


@pytest.fixture
def tls_endpoint(tmp_path: Path) -> Iterator[str]:
    """A real TLS server presenting a certificate that expires in 5 days."""
    cert, key = make_cert(tmp_path, "endpoint", 5)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def expiring(config: Path) -> dict[str, float]:
    loaded = load_config(config)
    metrics = Metrics()
    publish(open_store(loaded), load_jobs(loaded, Registry()), metrics)
    found = {}
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith("pilothouse_certificate_expiring{"):
            name, number = line.rsplit(" ", 1)
            found[name.split('"')[1]] = float(number)
    return found


@pytest.fixture(params=["sqlite", "postgres"])
def jobs_store(request: pytest.FixtureRequest) -> str:
    """The [jobs] keys of the store the checks are recorded in (the metric reads it back)."""
    if request.param == "sqlite":
        return ""
    postgres_url: str = request.getfixturevalue("postgres_url")
    schema: str = request.getfixturevalue("pg_schema")
    return pg_store(postgres_url, schema)


def test_certificate_expiry_of_files_and_endpoints_with_renewal(
    tmp_path: Path, tls_endpoint: str, jobs_store: str
) -> None:
    certs = tmp_path / "certs"
    certs.mkdir()
    good, _ = make_cert(certs, "good", 200)
    soon, _ = make_cert(certs, "soon", 3)
    fresh, _ = make_cert(certs, "fresh", 90)
    config = write_config(
        tmp_path,
        base(
            f"""
certificate_warning = "21d"
[[maintenance.certificates]]
name = "api"
file = "{good}"
[[maintenance.certificates]]
name = "web"
url = "{tls_endpoint}"
""",
            jobs_store,
        ),
    )
    assert expiring(config) == {"api": 0.0, "web": 0.0}  # never checked: nothing known to be wrong
    ran = jobs_run(config, "pilothouse.certificates")
    assert ran.returncode == 0, ran.stderr  # a warning is not a failure
    result = json.loads(ran.stdout)
    steps = {s["name"]: s["rc"] for s in result["steps"]}
    assert steps == {"cert-api": 0, "cert-web": 4}
    assert "valid until" in ran.stderr and "days left" in ran.stderr
    assert expiring(config) == {"api": 0.0, "web": 1.0}

    # The renewal hook: the file expiring soon is replaced by the command, then checked again.
    renew = tmp_path / "renew.py"
    renew.write_text(f"import shutil\nshutil.copyfile({str(fresh)!r}, {str(soon)!r})\n")
    config.write_text(
        base(
            f"""
renew_command = ["{sys.executable}", "{renew}"]
[[maintenance.certificates]]
name = "api"
file = "{soon}"
""",
            jobs_store,
        )
    )
    ran = jobs_run(config, "pilothouse.certificates")
    assert ran.returncode == 0, ran.stderr
    assert {s["name"]: s["rc"] for s in json.loads(ran.stdout)["steps"]} == {"cert-api": 0}
    assert "after the renew command ran" in ran.stderr
    assert expiring(config) == {"api": 0.0}

    expired, _ = make_cert(certs, "expired", -1)
    config.write_text(
        base(
            f"""
[[maintenance.certificates]]
name = "api"
file = "{expired}"
[[maintenance.certificates]]
name = "gone"
file = "{certs / "missing.pem"}"
""",
            jobs_store,
        )
    )
    ran = jobs_run(config, "pilothouse.certificates")
    assert ran.returncode == 1
    assert {s["name"]: s["rc"] for s in json.loads(ran.stdout)["steps"]} == {"cert-api": 8, "cert-gone": 8}
    assert "expired at" in ran.stderr and "unreadable" in ran.stderr
    assert expiring(config) == {"api": 1.0, "gone": 1.0}


def test_certificate_alert_is_tested_and_documented(tmp_path: Path) -> None:
    cert, _ = make_cert(tmp_path, "c", 100)
    config = write_config(
        tmp_path,
        base(f"""
[[maintenance.certificates]]
name = "api"
file = "{cert}"
"""),
    )
    out = generated(tmp_path, config)
    result = run_cli("validate", str(out), "--format", "json", "--strict")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CertificateExpiring" in {r.get("alert") for r in rules_of(out)}
    assert (out / "runbooks/CertificateExpiring.md").is_file()


@pytest.mark.parametrize(
    ("maintenance", "fragment"),
    [
        ('[[maintenance.certificates]]\nname = "a"\nfile = "rel.pem"', "expected an absolute path"),
        ('[[maintenance.certificates]]\nname = "a"\nurl = "http://x.example"', "expected an https:// URL"),
        ('[[maintenance.certificates]]\nname = "a"', "set exactly one of `file` and `url`"),
        ('prometheus = "localhost:9090"', "maintenance.prometheus"),
    ],
)
def test_bad_maintenance_config_is_one_line(tmp_path: Path, maintenance: str, fragment: str) -> None:
    from tests.jobs.test_cli import one_error

    config = write_config(tmp_path, base(maintenance))
    one_error(run_cli("jobs", "run", "pilothouse.report", "-c", str(config)), 2, str(config), fragment)


# -- the report -----------------------------------------------------------------------------------


def test_report_from_the_store_to_a_directory_and_a_webhook(tmp_path: Path) -> None:
    hook = Webhook()
    reports = tmp_path / "reports"
    config = write_config(
        tmp_path,
        base(f"""
report_dir = "{reports}"
report_webhook = {{ secret = "ops.report_url", env = "MT_REPORT_URL" }}
""")
        + f"""
[backup]
repository = "{tmp_path / "repo"}"
password = {{ secret = "backup.password", env = "MT_BACKUP_PASSWORD" }}
[[backup.targets]]
name = "files"
kind = "directory"
path = "{tmp_path}"
""",
    )
    env = {"MT_REPORT_URL": hook.url + "/report", "MT_BACKUP_PASSWORD": "pw-pw-pw-pw-pw"}
    try:
        assert jobs_run(config, "pilothouse.prune-jobs", env=env).returncode == 0
        bad = jobs_run(config, "pilothouse.prune-jobs", "max_age=soon", env=env)
        assert bad.returncode != 0
        ran = jobs_run(config, "pilothouse.report", env=env)
        assert ran.returncode == 0, ran.stderr
        assert json.loads(ran.stdout)["max_rc"] == 4  # needs attention: a failed run, no backup
        (posted,) = hook.payloads
    finally:
        hook.stop()
    (written,) = reports.glob("report-*.json")
    report = json.loads(written.read_text())
    assert posted["path"] == "/report" and posted["jobs"] == report["jobs"]
    assert report["jobs"]["pilothouse.prune-jobs"]["runs"] == 2
    assert report["jobs"]["pilothouse.prune-jobs"]["failed"] == 1
    assert [f["job"] for f in report["failures"]] == ["pilothouse.prune-jobs"]
    assert "backup of files: never" in report["attention"]
    assert {d["what"] for d in report["disk"]} >= {"job store", "backup repository", "reports"}
    text = written.with_suffix(".md").read_text()
    assert "## Needs attention" in text and "| pilothouse.prune-jobs | 2 | 1 |" in text
    assert shutil.which("restic")  # the backup section only needs to load; nothing ran restic
