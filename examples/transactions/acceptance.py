"""Acceptance of the mainframe-style transaction runtime (reference system 000): every criterion of
ACCEPTANCE.md that can run here, against a real `pilothouse serve` of this example, the shared
PostgreSQL, an OTLP receiver, and the real validators (promtool, amtool, kubectl kustomize,
kubernetes-validate...).

Run: `make examples`, or `.venv/bin/pytest tests/examples/test_transactions.py`. One run of the
service (the `run` fixture) serves transactions, batch jobs and a graceful shutdown; each test
checks one criterion of what that run recorded.
"""

from __future__ import annotations

import json
import secrets
import signal
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.examples.acceptance import otlp_receiver, pg_schema
from tests.helpers import ServeProcess, eventually, run_cli
from tests.telemetry.conftest import value

EXAMPLE = Path(__file__).resolve().parent
CONFIG = EXAMPLE / "pilothouse.toml"


@dataclass
class Run:
    """What one run of the example recorded, from start to exit."""

    health: httpx.Response
    ready: httpx.Response
    ok: httpx.Response
    notfound: httpx.Response
    metrics: str  # after the transactions
    metrics_after_readq: str
    job_ok: Any  # `jobs submit payroll --wait` (CompletedProcess)
    metrics_after_rc0: str
    job_rc12: Any
    metrics_after_rc12: str
    refused_while_draining: bool = False  # connections refused while a transaction was in flight
    in_flight: httpx.Response | None = None
    exit_code: int | None = None
    spans: list[Any] = field(default_factory=list)
    output: str = ""


def _scrape(server: ServeProcess) -> str:
    return httpx.get(f"{server.ops_url}/metrics").text


def _refused(server: ServeProcess) -> bool:
    try:
        socket.create_connection(("127.0.0.1", server.app_port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def _transaction(server: ServeProcess, account: str, delay: float = 0) -> httpx.Response:
    return httpx.post(
        f"{server.app_url}/transactions/PAYT", json={"account": account, "delay": delay}, timeout=30
    )


@pytest.fixture(scope="module")
def run(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("transactions")
    with pg_schema(postgres_url, "ex_mainframe") as url, otlp_receiver() as receiver:
        # The Secret open-mainframe-db-credentials as Kubernetes mounts it: one file per key.
        mount = tmp / "secrets"
        (mount / "db-credentials").mkdir(parents=True)
        (mount / "db-credentials" / "url").write_text(url)
        env = {
            "PILOTHOUSE_SECRETS__MOUNT_DIR": str(mount),
            "PILOTHOUSE_SECRETS__FILE": str(tmp / "no-such-file.toml"),  # never reached: the mount wins
            "PILOTHOUSE_JOBS__PATH": str(tmp / "jobs.sqlite3"),
            "PILOTHOUSE_LIFECYCLE__PRE_STOP_DELAY": "0s",
            "OPEN_MAINFRAME_ADMIN_TOKEN": secrets.token_hex(32),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
            "OTEL_BSP_SCHEDULE_DELAY": "600000",  # nothing is exported before the shutdown flush
            "OPEN_MAINFRAME_DB_URL": "",  # an empty value is no value: the mount must be what is read
        }
        server = ServeProcess(CONFIG, env=env).start()
        try:
            eventually(lambda: httpx.get(f"{server.ops_url}/ready").status_code == 200)
            health, ready = httpx.get(f"{server.ops_url}/health"), httpx.get(f"{server.ops_url}/ready")
            ok, notfound = _transaction(server, "1001"), _transaction(server, "0000")
            metrics = _scrape(server)
            httpx.post(f"{server.app_url}/queues/AUDT/read")
            metrics_after_readq = _scrape(server)
            cli_env = {**env, "OPEN_MAINFRAME_DB_URL": url}
            job_ok = run_cli("jobs", "submit", "payroll", "--wait", "-c", str(CONFIG), env=cli_env)
            eventually(
                lambda: value(_scrape(server), "pilothouse_job_runs_total", job="payroll", outcome="ok") == 1
            )
            metrics_after_rc0 = _scrape(server)
            job_rc12 = run_cli(
                "jobs", "submit", "payroll", "-p", "post_rc=12", "--wait", "-c", str(CONFIG), env=cli_env
            )
            eventually(
                lambda: (
                    value(_scrape(server), "pilothouse_job_runs_total", job="payroll", outcome="failed") == 1
                )
            )
            record = Run(
                health,
                ready,
                ok,
                notfound,
                metrics,
                metrics_after_readq,
                job_ok,
                metrics_after_rc0,
                job_rc12,
                _scrape(server),
            )

            # A transaction in flight when SIGTERM arrives completes; a new one is refused.
            slow: dict[str, httpx.Response] = {}
            thread = threading.Thread(target=lambda: slow.update(r=_transaction(server, "1001", delay=3)))
            thread.start()
            eventually(
                lambda: value(_scrape(server), "http_server_active_requests", http_request_method="POST") >= 1
            )
            server.signal(signal.SIGTERM)
            eventually(lambda: _refused(server))  # the listener closed: no new transaction gets in
            record.refused_while_draining = thread.is_alive()  # ... while the old one still runs
            thread.join(30)
            record.in_flight = slow.get("r")
            record.exit_code = server.wait(30)
        finally:
            server.stop()
            record_output = server.output
        record.output = record_output
        record.spans = list(receiver.spans)
        return record


# -- Epic 1100: health, readiness, metrics; graceful shutdown ---------------------------------


def test_health_readiness_and_metrics_endpoints(run: Run) -> None:
    assert run.health.status_code == 200 and run.health.json()["status"] == "pass"
    assert run.ready.status_code == 200
    assert set(run.ready.json()["checks"]) >= {"database", "cics"}
    assert "# TYPE pilothouse_lifecycle_state" in run.metrics


def test_readiness_names_the_failed_components(tmp_path: Path) -> None:
    """Database unreachable and the region's TD queue at capacity: 503, both checks named."""
    env = {
        "OPEN_MAINFRAME_DB_URL": "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1",
        "OPEN_MAINFRAME_TD_MAXDEPTH": "0",
        "PILOTHOUSE_SECRETS__MOUNT_DIR": str(tmp_path / "no-mount"),
        "PILOTHOUSE_JOBS__PATH": str(tmp_path / "jobs.sqlite3"),
        "PILOTHOUSE_TELEMETRY__TRACES": "none",
    }
    with ServeProcess(CONFIG, env=env) as server:
        ready = httpx.get(f"{server.ops_url}/ready")
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["database"]["status"] == "fail" and checks["cics"]["status"] == "fail", checks
    assert "TD queue AUDT full" in checks["cics"]["error"]


def test_sigterm_finishes_transactions_in_flight_and_refuses_new_ones(run: Run) -> None:
    assert run.in_flight is not None and run.in_flight.status_code == 200, run.output[-2000:]
    assert run.refused_while_draining
    assert run.exit_code == 0, run.output[-2000:]


def test_traces_are_exported_at_shutdown(run: Run) -> None:
    """The batch delay is ten minutes: every span the receiver has came from the shutdown flush."""
    names = [s.name for s in run.spans]
    assert names.count("POST /transactions/{tranid}") == 3, names


# -- Epic 1101: runtime instrumentation ----------------------------------------------------------


def test_programs_executed_and_their_duration(run: Run) -> None:
    for program in ("PROG-A", "PROG-B", "PROG-C"):
        assert (
            value(run.metrics, "pilothouse_unit_of_work_executions_total", unit=program, outcome="success")
            >= 1
        )
        assert value(run.metrics, "pilothouse_unit_of_work_duration_seconds_count", unit=program) >= 1
    assert value(run.metrics, "pilothouse_unit_of_work_executions_total", unit="PROG-A", outcome="error") == 1


def test_commands_recorded_with_duration_and_result_code(run: Run) -> None:
    count = "pilothouse_command_duration_seconds_count"
    assert value(run.metrics, count, command="LINK", result="NORMAL") == 2  # A->B, B->C
    assert value(run.metrics, count, command="READ", result="NORMAL") == 1
    assert value(run.metrics, count, command="READ", result="NOTFND") == 1
    assert value(run.metrics, count, command="LINK", result="NOTFND") == 1
    assert value(run.metrics, count, command="SEND-MAP", result="NORMAL") == 1
    assert value(run.metrics_after_readq, count, command="READQ-TD", result="NORMAL") == 1


def test_queue_operations_update_the_queue_depth_gauge(run: Run) -> None:
    assert value(run.metrics, "pilothouse_queue_depth", queue="AUDT") == 1  # WRITEQ TD
    assert value(run.metrics_after_readq, "pilothouse_queue_depth", queue="AUDT") == 0  # READQ TD


# -- Epic 1102: one trace per transaction ----------------------------------------------------------


def test_one_trace_per_transaction_program_spans_sql_and_task_number(run: Run) -> None:
    eibtaskn = run.ok.json()["eibtaskn"]
    roots = [
        s
        for s in run.spans
        if s.name == "POST /transactions/{tranid}"
        and {a.key: a.value.string_value for a in s.attributes}.get("eibtaskn") == eibtaskn
    ]
    assert len(roots) == 1, "the task number is an attribute of exactly one transaction's trace"
    trace = [s for s in run.spans if s.trace_id == roots[0].trace_id]
    by_id = {s.span_id: s for s in trace}

    def ancestors(span: Any) -> list[str]:
        names = []
        while span.parent_span_id in by_id:
            span = by_id[span.parent_span_id]
            names.append(span.name)
        return names

    spans = {s.name: s for s in trace if s.name.startswith("PROG-") or s.name == "SELECT"}
    assert set(spans) == {"PROG-A", "PROG-B", "PROG-C", "SELECT"}, [s.name for s in trace]
    assert ancestors(spans["PROG-C"])[:4] == ["LINK", "PROG-B", "LINK", "PROG-A"]
    assert "PROG-B" in ancestors(spans["SELECT"])[:2]  # SELECT under READ under PROG-B
    sql = {a.key: a.value.string_value for a in spans["SELECT"].attributes}
    assert sql["db.query.text"].startswith("SELECT balance, pg_sleep(%s) FROM accounts")
    assert spans["SELECT"].end_time_unix_nano > spans["SELECT"].start_time_unix_nano  # its duration


# -- Epic 1103: manifests ---------------------------------------------------------------------------


def _generate(tmp_path: Path, target: str) -> Path:
    out = tmp_path / target
    result = run_cli("generate", target, "-c", str(CONFIG), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_manifests_probes_metrics_port_overrides_and_they_validate(tmp_path: Path) -> None:
    out = _generate(tmp_path, "deploy")
    (deployment,) = _docs(out / "k8s/base/deployment.yaml")
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": 8080, "ops": 9090}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health", "port": "ops"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "ops"}
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "9090"
    prod = (out / "k8s/prod/kustomization.yaml").read_text()
    assert "value: 3" in prod and "memory: 512Mi" in prod
    assert "pilothouse.toml" in (out / "k8s/base/kustomization.yaml").read_text()  # the ConfigMap
    result = run_cli("validate", str(out))
    assert result.returncode == 0 and "FAIL" not in result.stdout, result.stdout + result.stderr


# -- Epic 1104: secrets --------------------------------------------------------------------------


def _source(tmp_path: Path, env: dict[str, str]) -> str:
    result = run_cli(
        "secrets",
        "check",
        "--format",
        "json",
        "-c",
        str(CONFIG),
        env={"PILOTHOUSE_SECRETS__MOUNT_DIR": str(tmp_path / "mount"), **env},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "postgresql://" not in result.stdout  # never the value
    (entry,) = [e for e in json.loads(result.stdout)["secrets"] if e["secret"] == "db-credentials.url"]
    return str(entry["source"])


def test_db_credentials_from_the_mounted_secret_then_env_then_file(run: Run, tmp_path: Path) -> None:
    # The served run read the URL from the mounted Secret directory (its env variable was empty).
    assert "name=db-credentials.url source=kubernetes" in run.output
    local = tmp_path / "open-mainframe.secrets.toml"
    local.write_text('[db-credentials]\nurl = "postgresql://file@127.0.0.1/test"\n')
    local.chmod(0o600)
    files = {"PILOTHOUSE_SECRETS__FILE": str(local)}
    clean = {"OPEN_MAINFRAME_DB_URL": ""}
    assert _source(tmp_path, {**files, **clean}) == "file"
    assert _source(tmp_path, {**files, "OPEN_MAINFRAME_DB_URL": "postgresql://env@127.0.0.1/test"}) == "env"
    (tmp_path / "mount" / "db-credentials").mkdir(parents=True)
    (tmp_path / "mount" / "db-credentials" / "url").write_text("postgresql://mount@127.0.0.1/test")
    assert (
        _source(tmp_path, {**files, "OPEN_MAINFRAME_DB_URL": "postgresql://env@127.0.0.1/test"})
        == "kubernetes"
    )


def test_the_deployment_mounts_the_db_credentials_secret(tmp_path: Path) -> None:
    out = _generate(tmp_path, "deploy")
    (deployment,) = _docs(out / "k8s/base/deployment.yaml")
    spec = deployment["spec"]["template"]["spec"]
    volume = next(
        v for v in spec["volumes"] if v.get("secret", {}).get("secretName") == "open-mainframe-db-credentials"
    )
    mounts = {m["name"]: m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert mounts[volume["name"]] == "/var/run/secrets/pilothouse/db-credentials"
    assert "open-mainframe-db-credentials" in (out / "k8s/secrets.example.yaml").read_text()


# -- Epic 1105: batch job metrics ------------------------------------------------------------------


def test_a_three_step_job_records_steps_durations_and_rc_0(run: Run) -> None:
    assert run.job_ok.returncode == 0, run.job_ok.stdout + run.job_ok.stderr
    m = run.metrics_after_rc0
    steps = ("step010-extract", "step020-post", "step030-report")
    assert (
        sum(value(m, "pilothouse_job_steps_total", job="payroll", step=s, outcome="ok") for s in steps) == 3
    )
    for step in steps:
        assert value(m, "pilothouse_job_step_duration_seconds_count", job="payroll", step=step) == 1
    assert value(m, "pilothouse_job_return_code", job="payroll") == 0


def test_a_step_ending_rc_12_sets_the_job_rc_and_counts_an_error(run: Run) -> None:
    assert run.job_rc12.returncode == 1
    m = run.metrics_after_rc12
    assert value(m, "pilothouse_job_return_code", job="payroll") == 12
    assert value(m, "pilothouse_job_errors_total", job="payroll") == 1
    assert (
        value(m, "pilothouse_job_steps_total", job="payroll", step="step030-report", outcome="skipped") == 1
    )


# -- Epic 1106: dashboard and alerts ------------------------------------------------------------------


def test_the_dashboard_has_the_five_panels(tmp_path: Path) -> None:
    out = _generate(tmp_path, "monitoring")
    panels = {
        panel["title"]: " ".join(t.get("expr", "") for t in panel.get("targets", []))
        for board in (out / "grafana/dashboards").glob("*.json")
        for panel in json.loads(board.read_text())["panels"]
    }
    wanted = {
        "Request rate by route": "http_server_request_duration_seconds_count",  # transaction rate
        "Latency p50 / p90 / p99": "histogram_quantile(0.99",  # latency percentiles
        "Error ratio (5xx)": 'http_response_status_code!~"5.."',  # error rate
        "pilothouse_pool_connections_in_use (max)": "pilothouse_pool_connections_in_use",  # connections
        "Queue depth": "pilothouse_queue_depth",  # queue depth
    }
    for title, series in wanted.items():
        assert series in panels[title], (title, panels[title])


def test_the_three_alerts_load_in_prometheus_and_fire(tmp_path: Path) -> None:
    out = _generate(tmp_path, "monitoring")
    (rules,) = (out / "prometheus/rules").glob("*.yaml")
    alerts = {
        r["alert"]: r for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"] if "alert" in r
    }
    assert alerts["HighLatencyP99"]["for"] == "5m" and "> 1" in alerts["HighLatencyP99"]["expr"]
    assert alerts["PoolSaturated"]["for"] == "5m" and "> 0.9" in alerts["PoolSaturated"]["expr"]
    assert alerts["ReadinessFailing"]["for"] == "1m"
    # promtool check rules + promtool test rules (each alert fires on its case and stays quiet).
    result = run_cli("validate", str(out))
    assert result.returncode == 0 and "FAIL" not in result.stdout, result.stdout + result.stderr
