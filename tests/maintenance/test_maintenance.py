"""The built-in maintenance jobs against real parts: Prometheus cleanup through the admin API of a
real Prometheus (samples older than the cut gone, newer ones kept), certificate expiry of a PEM
file and of a real TLS endpoint with the renewal hook, the metric every worker publishes from the
store and the promtool-tested CertificateExpiring alert, and the operations report written to a
directory and posted to a webhook, with the readiness and the SLO error budget left of a real
`pilothouse serve` as a real Prometheus scraped it (and as its ops port answers it)."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
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
from tests.helpers import ROOT, ServeProcess, eventually, run_cli, self_signed_certificate, write_config
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


def published(config: Path, metric: str) -> dict[tuple[str, ...], float]:
    """The series of `metric` a worker publishes from the store, by their label values."""
    loaded = load_config(config)
    metrics = Metrics()
    publish(open_store(loaded), load_jobs(loaded, Registry()), metrics)
    found = {}
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line.startswith(metric + "{"):
            labels, number = line.rsplit(" ", 1)
            found[tuple(labels.split('"')[1::2])] = float(number)
    return found


def expiring(config: Path) -> dict[str, float]:
    return {
        labels[0]: value for labels, value in published(config, "pilothouse_certificate_expiring").items()
    }


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


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port bound but not listening while the test runs: connecting to it is refused
    (nothing else can take it meanwhile)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def reporting(reports: Path) -> str:
    """[maintenance] keys: the report written to `reports` and posted to $MT_REPORT_URL."""
    return (
        f'report_dir = "{reports}"\nreport_webhook = {{ secret = "ops.report_url", env = "MT_REPORT_URL" }}\n'
    )


def test_report_from_the_store_to_a_directory_and_a_webhook(tmp_path: Path, refused_port: int) -> None:
    hook = Webhook()
    reports = tmp_path / "reports"
    config = write_config(
        tmp_path,
        base(reporting(reports))
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
    env = {
        "MT_REPORT_URL": hook.url + "/report",
        "MT_BACKUP_PASSWORD": "pw-pw-pw-pw-pw",
        "PILOTHOUSE_OPS__PORT": str(refused_port),  # no service, no Prometheus: readiness unknown
    }
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
    assert report["readiness"]["status"] == "unknown"
    (reason,) = report["readiness"]["reasons"]
    assert f"127.0.0.1:{refused_port}/ready" in reason and "ConnectError" in reason
    assert report["slo"] == {}  # no [slo]
    text = written.with_suffix(".md").read_text()
    assert "## Needs attention" in text and "| pilothouse.prune-jobs | 2 | 1 |" in text
    assert "## Readiness\n\nStatus: unknown (ops endpoint http://127.0.0.1:" in text
    assert shutil.which("restic")  # the backup section only needs to load; nothing ran restic


SERVED = """
[service]
name = "mt"
app = "tests.apps.slow:app"
[telemetry]
log_format = "text"
[jobs]
path = "jobs.sqlite3"
[slo]
availability = 0.9
latency = {{ threshold = "500ms", target = 0.8 }}
[[checks]]
name = "cache"
kind = "tcp"
host = "127.0.0.1"
port = {refused}
critical = {critical}
[maintenance]
report_dir = "{reports}"
{prometheus}
"""


SAMPLES = 80
APP_IMPORTABLE = {"PYTHONPATH": str(ROOT)}
"""The job runner imports the service's app (tests.apps.slow) like serve does."""


def served_config(tmp_path: Path, refused: int, critical: bool, prometheus: str = "") -> Path:
    return write_config(
        tmp_path,
        SERVED.format(
            refused=refused,
            reports=tmp_path / "reports",
            critical=str(critical).lower(),
            prometheus=f'prometheus = "{prometheus}"' if prometheus else "",
        ),
    )


def written_report(tmp_path: Path) -> tuple[dict[str, object], str]:
    (written,) = (tmp_path / "reports").glob("report-*.json")
    return json.loads(written.read_text()), written.with_suffix(".md").read_text()


def instant(url: str, expr: str) -> list[dict[str, object]]:
    return value(url, expr, time.time())


def count_of(url: str, route: str) -> float:
    """The request count Prometheus scraped last for `route` (-1 while it has none)."""
    found = instant(url, f'sum(http_server_request_duration_seconds_count{{job="mt",http_route="{route}"}})')
    return float(found[0]["value"][1]) if found else -1.0  # type: ignore[index]


def test_report_readiness_and_slo_budget_from_prometheus_scraping_serve(
    tmp_path: Path, refused_port: int
) -> None:
    """A real serve answers good, failing (5xx) and slow requests; a real Prometheus scrapes it under
    the job label the generated rules select on; the report's budgets are the counts we caused."""
    from tests.generators.monitoring.engines import prometheus_with

    config = served_config(tmp_path, refused_port, critical=False)
    with ServeProcess(config, cwd=ROOT) as serve:
        assert httpx.get(f"{serve.ops_url}/ready", timeout=10).status_code == 200  # a probe runs the checks
        # One request per series before the first scrape: a counter's increase starts at its first
        # scrape, so these are not counted, and every series has its samples at the same scrapes.
        routes = {"/hello": "/hello", "/status": "/status?code=500", "/slow": "/slow?seconds=0.7"}
        for path in routes.values():
            httpx.get(serve.app_url + path, timeout=10)
        scrape = {"job_name": "mt", "static_configs": [{"targets": [f"127.0.0.1:{serve.ops_port}"]}]}
        prom = prometheus_with(tmp_path, [scrape], [], interval="250ms")
        try:
            eventually(lambda: all(count_of(prom.url, r) == 1 for r in routes), 30)
            good, failed, slow = 30, 10, 2
            for path, times in (("/hello", good), ("/status?code=500", failed), ("/slow?seconds=0.7", slow)):
                for _ in range(times):
                    httpx.get(serve.app_url + path, timeout=10)
            eventually(
                lambda: (
                    (count_of(prom.url, "/hello"), count_of(prom.url, "/status"), count_of(prom.url, "/slow"))
                    == (1 + good, 1 + failed, 1 + slow)
                ),
                30,
            )
            eventually(
                lambda: bool(instant(prom.url, 'pilothouse_readiness_check_status{check="cache"} == 0'))
            )
            # rate() extrapolates each series towards the window's start by up to half a scrape
            # interval (less for a counter whose first value is near zero), so the extrapolation
            # differs a little between series; with SAMPLES scrapes it is under 1/(2*SAMPLES).
            eventually(
                lambda: bool(instant(prom.url, f'count_over_time(up{{job="mt"}}[1h]) >= {SAMPLES}')), 60
            )
            config = served_config(tmp_path, refused_port, critical=False, prometheus=prom.url)
            ran = jobs_run(config, "pilothouse.report", env=APP_IMPORTABLE)
        finally:
            prom.stop()
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["max_rc"] == 4  # the availability budget is overspent
    report, text = written_report(tmp_path)
    total = good + failed + slow
    availability = 1 - (failed / total) / (1 - 0.9)  # 10 of 42 bad against a 10 % budget: -1.38
    latency = 1 - (slow / total) / (1 - 0.8)  # 2 of 42 slower than 500ms against 20 %: 0.76
    slo = report["slo"]
    assert isinstance(slo, dict)
    assert slo["availability"]["objective"] == 0.9 and slo["availability"]["window_days"] == 30
    assert slo["availability"]["budget_left"] == pytest.approx(availability, abs=0.03)
    assert slo["latency"]["budget_left"] == pytest.approx(latency, abs=0.01)
    ready = report["readiness"]
    assert isinstance(ready, dict)
    assert (ready["status"], ready["source"], ready["instances"], ready["down"]) == (
        "ready",
        "prometheus",
        1,
        [],
    )
    assert ready["failing"] == [
        {"check": "cache", "critical": False, "instance": f"127.0.0.1:{serve.ops_port}"}
    ]
    attention = report["attention"]
    assert isinstance(attention, list)
    assert [a for a in attention if a.startswith("SLO")] == [
        f"SLO availability: error budget overspent ({slo['availability']['budget_left']:.1%} left)"
    ]
    assert not any("not ready" in a for a in attention)  # a failing non-critical check: still ready
    assert "Status: ready, from 1 instance(s) scraped by Prometheus" in text
    assert "- cache failing on 127.0.0.1:" in text
    assert f"| latency | 80.000% | 30 d | {slo['latency']['budget_left']:.1%} |" in text


def test_report_readiness_from_the_ops_port_without_prometheus(tmp_path: Path, refused_port: int) -> None:
    """No Prometheus: readiness as serve's own /ready answers it (asked on loopback for a wildcard
    host); the budgets are unknown, with the reason; a service not ready needs attention."""
    config = served_config(tmp_path, refused_port, critical=True)
    with ServeProcess(config, cwd=ROOT) as serve:
        env = {
            **APP_IMPORTABLE,
            "PILOTHOUSE_OPS__HOST": "0.0.0.0",
            "PILOTHOUSE_OPS__PORT": str(serve.ops_port),
        }
        ran = jobs_run(config, "pilothouse.report", env=env)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["max_rc"] == 4
    report, text = written_report(tmp_path)
    ready = report["readiness"]
    assert isinstance(ready, dict)
    assert (ready["status"], ready["source"]) == ("not ready", "ops")
    assert ready["url"] == f"http://127.0.0.1:{serve.ops_port}/ready"
    (failing,) = ready["failing"]
    assert failing["check"] == "cache" and failing["critical"] is True and failing["error"]
    assert "service not ready (ops): check cache failing" in report["attention"]  # type: ignore[operator]
    slo = report["slo"]
    assert isinstance(slo, dict)
    assert {name: (e["budget_left"], e["reason"]) for name, e in slo.items()} == {
        "availability": (None, "no [maintenance].prometheus to query"),
        "latency": (None, "no [maintenance].prometheus to query"),
    }
    assert "Status: not ready, from its ops endpoint" in text and "- cache (critical) failing" in text
    assert "| availability | 90.000% | 30 d | unknown: no [maintenance].prometheus to query |" in text
