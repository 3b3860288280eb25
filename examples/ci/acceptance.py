"""Acceptance of the CI system's operations (reference system 003): every criterion of
ACCEPTANCE.md that can run here, against a real `pilothouse serve` of this example, the shared
PostgreSQL (pipelines and the job queue), two small HTTP servers standing in for the identity
provider (Dex's /healthz) and the registry (/v2/), one standing in for the Kubernetes API (the
runner pods of namespace `ci`), and an OTLP receiver. The example's own gRPC
API (the runners' status API, `ci/runner_api.py`) is called by a build and by this test.

Run: `make examples`, or `.venv/bin/pytest tests/examples/test_ci.py`. One run of the service
(the `run` fixture) goes through readiness, a config sync, a signed build, a drain with force and
a graceful stop; each test checks one criterion of what that run recorded.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import signal
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import httpx
import psycopg
import pytest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from tests.examples.acceptance import otlp_receiver
from tests.helpers import ServeProcess, eventually, run_cli
from tests.telemetry.conftest import value

EXAMPLE = Path(__file__).resolve().parent
CONFIG = EXAMPLE / "pilothouse.toml"
BUILDER = "https://ci.example/runners/ci"


class _Dependency(BaseHTTPRequestHandler):
    """Answers 200 on its path while `healthy`, else 503 (an identity provider or a registry)."""

    def do_GET(self) -> None:
        status = 200 if self.server.healthy else 503  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class Dependency:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Dependency)
        self.server.healthy = True  # type: ignore[attr-defined]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def healthy(self, yes: bool) -> None:
        self.server.healthy = yes  # type: ignore[attr-defined]


class _KubernetesApi(BaseHTTPRequestHandler):
    """GET /api/v1/namespaces/ci/pods: a PodList of two runners; 404 elsewhere. Records each
    request's path and `traceparent`."""

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("traceparent")))  # type: ignore[attr-defined]
        found = self.path.split("?", 1)[0] == "/api/v1/namespaces/ci/pods"
        pods = [{"metadata": {"name": name, "namespace": "ci"}} for name in ("runner-a", "runner-b")]
        body = json.dumps({"kind": "PodList", "apiVersion": "v1", "items": pods} if found else {}).encode()
        self.send_response(200 if found else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class KubernetesApi(Dependency):
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _KubernetesApi)
        self.server.requests = []  # type: ignore[attr-defined]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def requests(self) -> list[tuple[str, str | None]]:
        return list(self.server.requests)  # type: ignore[attr-defined]


@dataclass
class Run:
    """What one run of the example recorded, from start to exit."""

    state: Path
    config: Path
    public_key: Path
    env: dict[str, str]
    ready_before_sync: httpx.Response
    ready: httpx.Response
    ready_identity_down: httpx.Response
    health: httpx.Response
    pipelines: httpx.Response
    runners: httpx.Response
    kubernetes: KubernetesApi
    build: Any  # `jobs submit build --wait` (CompletedProcess)
    runner_api: str = ""  # the gRPC API's target, from `GET /api/runner-api`
    grpc_calls: dict[str, Any] = field(default_factory=dict)  # call -> (status code, response)
    drain_timed_out: Any = None
    status_draining: dict[str, Any] = field(default_factory=dict)
    submit_refused: Any = None
    admin_submit_refused: httpx.Response | None = None
    drain_forced: Any = None
    long_build: dict[str, Any] = field(default_factory=dict)
    undrain: Any = None
    status_after: dict[str, Any] = field(default_factory=dict)
    metrics: str = ""
    exit_code: int | None = None
    spans: list[Any] = field(default_factory=list)
    output: str = ""


@pytest.fixture(scope="module")
def dependencies() -> Iterator[tuple[Dependency, Dependency, KubernetesApi]]:
    identity, registry, kubernetes = Dependency(), Dependency(), KubernetesApi()
    yield identity, registry, kubernetes
    for dependency in (identity, registry, kubernetes):
        dependency.server.shutdown()


def _config(tmp: Path, identity: Dependency, registry: Dependency) -> Path:
    """The example's config with the stand-ins' ports and the test's state directory."""
    text = (
        CONFIG.read_text()
        .replace("127.0.0.1:5556", f"127.0.0.1:{identity.port}")
        .replace("127.0.0.1:5000", f"127.0.0.1:{registry.port}")
        .replace('"/var/lib/ci', f'"{tmp}/state')
    )
    config = tmp / "pilothouse.toml"
    config.write_text(text)
    return config


def _cli(run_env: dict[str, str], config: Path, *args: str) -> Any:
    return run_cli(*args, "-c", str(config), env=run_env, cwd=EXAMPLE, timeout=120)


def _json(done: Any) -> Any:
    return json.loads(done.stdout)


GRPC_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"  # the trace the test's own gRPC calls continue


def _call_the_runner_api(target: str) -> dict[str, Any]:
    """As a runner would (no Pilothouse here: W3C trace context by hand): the build's status, an
    unknown build's (NOT_FOUND) and a malformed report (the handler raises: UNKNOWN)."""
    metadata = (("traceparent", f"00-{GRPC_TRACE}-00f067aa0ba902b7-01"),)
    calls: dict[str, Any] = {}
    with grpc.insecure_channel(target) as channel:
        for name, method, body in (
            ("get", "Get", b"shop-1"),
            ("get_unknown", "Get", b"shop-404"),
            ("malformed", "Report", b"{not json"),
        ):
            stub = channel.unary_unary(f"/ci.runner.v1.RunnerStatus/{method}")
            try:
                calls[name] = (grpc.StatusCode.OK, stub(body, metadata=metadata, timeout=10))
            except grpc.RpcError as exc:
                calls[name] = (exc.code(), None)
    return calls


@pytest.fixture(scope="module")
def run(
    postgres_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    dependencies: tuple[Dependency, Dependency, KubernetesApi],
) -> Iterator[Run]:
    identity, registry, kubernetes = dependencies
    tmp = tmp_path_factory.mktemp("ci")
    (tmp / "state").mkdir()
    config = _config(tmp, identity, registry)
    key = tmp / "provenance.key"
    assert run_cli("provenance", "keygen", "--key", str(key)).returncode == 0
    schema = f"ci_jobs_{uuid.uuid4().hex[:8]}"
    with otlp_receiver() as receiver:
        env = {
            "CI_DB_URL": postgres_url,
            "CI_PROVENANCE_KEY": key.read_text(),
            "CI_ADMIN_TOKEN": secrets.token_hex(32),
            "PILOTHOUSE_SERVICE__STATE_DIR": str(tmp / "state"),
            "PILOTHOUSE_JOBS__PG_SCHEMA": schema,
            "PILOTHOUSE_JOBS__POLL_INTERVAL": "100ms",
            "PILOTHOUSE_JOBS__HEARTBEAT_INTERVAL": "200ms",
            "PILOTHOUSE_JOBS__CANCEL_GRACE": "1s",
            "PILOTHOUSE_LIFECYCLE__PRE_STOP_DELAY": "0s",
            "PILOTHOUSE_PROBES__CACHE_TTL": "0s",
            "CI_RUNNER_API_PORT": "0",  # the runners' gRPC API on a port the system picks
            "CI_KUBERNETES_API": f"http://127.0.0.1:{kubernetes.port}",  # the stand-in's
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{receiver.port}",
        }
        server = ServeProcess(config, env=env, cwd=EXAMPLE).start()
        ops = server.ops_url
        try:
            ready_before_sync = httpx.get(f"{ops}/ready")
            assert _cli(env, config, "jobs", "submit", "config-sync", "--wait").returncode == 0
            eventually(lambda: httpx.get(f"{ops}/ready").status_code == 200)
            ready = httpx.get(f"{ops}/ready")
            identity.healthy(False)
            eventually(lambda: httpx.get(f"{ops}/ready").status_code == 503)
            ready_identity_down = httpx.get(f"{ops}/ready")
            identity.healthy(True)
            eventually(lambda: httpx.get(f"{ops}/ready").status_code == 200)
            record = Run(
                state=tmp / "state",
                config=config,
                public_key=Path(f"{key}.pub"),
                env=env,
                ready_before_sync=ready_before_sync,
                ready=ready,
                ready_identity_down=ready_identity_down,
                health=httpx.get(f"{ops}/health"),
                pipelines=httpx.get(f"{server.app_url}/api/pipelines"),
                runners=httpx.get(f"{server.app_url}/api/runners"),
                kubernetes=kubernetes,
                build=_cli(
                    env,
                    config,
                    "jobs",
                    "submit",
                    "build",
                    "-p",
                    "pipeline=shop",
                    "-p",
                    "run=1",
                    "--wait",
                    "--format",
                    "json",
                ),
            )

            record.runner_api = httpx.get(f"{server.app_url}/api/runner-api").json()["target"]
            record.grpc_calls = _call_the_runner_api(record.runner_api)

            # The drain flow of an upgrade: a long build running, drain waits, times out, is forced.
            long = _json(
                _cli(
                    env,
                    config,
                    "jobs",
                    "submit",
                    "build",
                    "-p",
                    "pipeline=shop",
                    "-p",
                    "run=2",
                    "-p",
                    "seconds=120",
                    "--format",
                    "json",
                )
            )
            eventually(
                lambda: (
                    _json(_cli(env, config, "jobs", "show", str(long["id"]), "--format", "json"))["state"]
                    == "running"
                ),
                timeout=60,
            )
            record.drain_timed_out = _cli(env, config, "jobs", "drain", "--timeout", "1s")
            record.status_draining = _json(_cli(env, config, "jobs", "status", "--format", "json"))
            record.submit_refused = _cli(
                env, config, "jobs", "submit", "build", "-p", "pipeline=shop", "-p", "run=3"
            )
            record.admin_submit_refused = httpx.post(
                f"{ops}/admin/jobs",
                headers={"Authorization": f"Bearer {env['CI_ADMIN_TOKEN']}"},
                json={"job": "build", "params": {"pipeline": "shop", "run": "4"}},
            )
            record.drain_forced = _cli(
                env, config, "jobs", "drain", "--timeout", "1s", "--force", "--format", "json"
            )
            record.long_build = _json(_cli(env, config, "jobs", "show", str(long["id"]), "--format", "json"))
            record.undrain = _cli(env, config, "jobs", "undrain")
            record.status_after = _json(_cli(env, config, "jobs", "status", "--format", "json"))
            # The worker records the cancelled build in the store, then counts it: on a loaded
            # machine the CLI can read the first before the second happened.
            eventually(
                lambda: (
                    value(
                        httpx.get(f"{ops}/metrics").text,
                        "pilothouse_job_runs_total",
                        job="build",
                        outcome="cancelled",
                    )
                    > 0
                )
            )
            record.metrics = httpx.get(f"{ops}/metrics").text
            server.signal(signal.SIGTERM)
            record.exit_code = server.wait(60)
        finally:
            server.stop()
            with psycopg.connect(postgres_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            shutil.rmtree(EXAMPLE / "ci" / "__pycache__", ignore_errors=True)
        record.output = server.output
        record.spans = list(receiver.spans)
        yield record


# -- DANUBE-027: health checks and readiness -----------------------------------------------------


def test_liveness_and_readiness_with_json_check_details(run: Run) -> None:
    assert run.health.status_code == 200 and run.health.json()["status"] == "pass"
    assert run.ready.status_code == 200
    checks = run.ready.json()["checks"]
    assert {name: checks[name]["status"] for name in ("database", "identity", "registry", "config-sync")} == {
        "database": "pass",
        "identity": "pass",
        "registry": "pass",
        "config-sync": "pass",
    }, checks


def test_readiness_names_a_failed_identity_provider(run: Run) -> None:
    assert run.ready_identity_down.status_code == 503
    checks = run.ready_identity_down.json()["checks"]
    assert checks["identity"]["status"] == "fail" and "unexpected status 503" in checks["identity"]["error"]
    assert checks["registry"]["status"] == "pass"


def test_config_sync_freshness_gates_readiness(run: Run) -> None:
    """Before the first sync the stamp does not exist: not ready; the sync job makes it ready."""
    assert run.ready_before_sync.status_code == 503
    check = run.ready_before_sync.json()["checks"]["config-sync"]
    assert check["status"] == "fail" and "cannot stat" in check["error"], check
    assert (run.state / "config-sync.stamp").is_file()


def test_the_database_answers_through_the_app(run: Run) -> None:
    assert run.pipelines.status_code == 200 and run.pipelines.json()["database_sessions"] >= 1


# -- DANUBE-028: job draining for upgrades -----------------------------------------------------


def test_drain_waits_times_out_and_status_shows_draining(run: Run) -> None:
    assert run.drain_timed_out.returncode == 1
    assert "drain timed out after 1s: 1 job(s) still running" in run.drain_timed_out.stderr
    assert run.status_draining["state"] == "draining" and run.status_draining["running"] == 1
    assert run.status_draining["draining_since"] is not None  # the flag is in the database


def test_new_builds_are_refused_while_draining(run: Run) -> None:
    assert run.submit_refused.returncode == 1 and "draining" in run.submit_refused.stderr
    assert run.admin_submit_refused is not None and run.admin_submit_refused.status_code == 503
    assert run.admin_submit_refused.headers["retry-after"]


def test_force_cancels_the_build_past_the_timeout_then_undrain(run: Run) -> None:
    assert run.drain_forced.returncode == 0, run.drain_forced.stderr
    assert (run.long_build["state"], run.long_build["outcome"]) == ("finished", "cancelled")
    assert [s["outcome"] for s in run.long_build["steps"]][:2] == ["ok", "cancelled"]
    assert run.undrain.returncode == 0
    assert run.status_after["state"] == "serving"


# -- DANUBE-029: OpenTelemetry metrics and traces ------------------------------------------------


def test_job_and_http_metrics_on_the_metrics_endpoint(run: Run) -> None:
    assert value(run.metrics, "pilothouse_job_runs_total", job="build", outcome="ok") == 1
    assert value(run.metrics, "pilothouse_job_runs_total", job="build", outcome="cancelled") == 1
    # Submitted once by the test; its */5 schedule adds a run when the test spans a 5-minute mark.
    assert value(run.metrics, "pilothouse_job_runs_total", job="config-sync", outcome="ok") >= 1
    assert value(run.metrics, "pilothouse_job_step_duration_seconds_count", job="build", step="package") == 1
    assert "http_server_request_duration_seconds_count" in run.metrics


def test_db_query_and_kubernetes_call_metrics_and_spans(run: Run) -> None:
    """`GET /api/pipelines` queries PostgreSQL through the traced cursor, `GET /api/runners` lists
    the runner pods from the (stand-in) Kubernetes API through the traced httpx client: each is a
    CLIENT span under the request's server span, the Kubernetes API receives that span's
    `traceparent`, and both are on /metrics by operation / server, never by statement or path."""
    assert run.runners.status_code == 200 and run.runners.json() == {"runners": ["runner-a", "runner-b"]}
    db = {"db_system_name": "postgresql", "db_operation_name": "SELECT", "error_type": ""}
    assert value(run.metrics, "db_client_operation_duration_seconds_count", **db) == 1
    k8s = {
        "http_request_method": "GET",
        "server_address": "127.0.0.1",
        "server_port": str(run.kubernetes.port),
        "http_response_status_code": "200",
        "error_type": "",
    }
    assert value(run.metrics, "http_client_request_duration_seconds_count", **k8s) == 1
    assert "pg_stat_activity" not in run.metrics and "namespaces" not in run.metrics

    spans = {(s.name, s.kind): s for s in run.spans}
    served = spans[("GET /api/runners", Span.SPAN_KIND_SERVER)]
    call = spans[("GET", Span.SPAN_KIND_CLIENT)]
    assert (call.trace_id, call.parent_span_id) == (served.trace_id, served.span_id)
    assert _attributes(call)["http.response.status_code"] == 200
    assert (
        _attributes(call)["url.full"] == f"http://127.0.0.1:{run.kubernetes.port}/api/v1/namespaces/ci/pods"
    )
    ((path, traceparent),) = run.kubernetes.requests
    assert path == "/api/v1/namespaces/ci/pods?labelSelector=app%3Dci-runner"
    assert traceparent is not None and traceparent.split("-")[1:3] == [
        call.trace_id.hex(),
        call.span_id.hex(),
    ]
    pipelines = spans[("GET /api/pipelines", Span.SPAN_KIND_SERVER)]
    queries = [
        s for s in run.spans if s.parent_span_id == pipelines.span_id and s.kind == Span.SPAN_KIND_CLIENT
    ]
    assert [(q.name, _attributes(q)["db.operation.name"]) for q in queries] == [("SELECT", "SELECT")]


def test_traces_for_requests_and_job_steps_reach_the_collector(run: Run) -> None:
    names = {s.name for s in run.spans}
    assert {"job build", "step checkout", "step compile", "step package", "step provenance"} <= names, names
    assert "GET /api/pipelines" in names, names


def test_trace_spans_for_grpc_calls(run: Run) -> None:
    """The build's `report` step calls the runners' status API over gRPC: a CLIENT span under the
    step, the SERVER span under it (context carried in the call's metadata); the test's own calls
    continue its traceparent; status codes and errors as the gRPC conventions say."""
    name = "ci.runner.v1.RunnerStatus/Report"
    spans = {(s.name, s.kind): s for s in run.spans if s.name != name or s.trace_id.hex() != GRPC_TRACE}
    step = spans[("step report", Span.SPAN_KIND_INTERNAL)]
    client = spans[(name, Span.SPAN_KIND_CLIENT)]
    server = spans[(name, Span.SPAN_KIND_SERVER)]
    assert (client.trace_id, client.parent_span_id) == (step.trace_id, step.span_id)
    assert (server.trace_id, server.parent_span_id) == (client.trace_id, client.span_id)
    for span in (client, server):
        attributes = _attributes(span)
        assert attributes["rpc.system"] == "grpc" and attributes["rpc.service"] == "ci.runner.v1.RunnerStatus"
        assert attributes["rpc.method"] == "Report" and attributes["rpc.grpc.status_code"] == 0
        assert attributes["server.address"] == "127.0.0.1"
        assert attributes["server.port"] == int(run.runner_api.rsplit(":", 1)[1])

    assert run.grpc_calls["get"][0] == grpc.StatusCode.OK and b"packaged" in run.grpc_calls["get"][1]
    assert run.grpc_calls["get_unknown"][0] == grpc.StatusCode.NOT_FOUND
    assert run.grpc_calls["malformed"][0] == grpc.StatusCode.UNKNOWN
    served = sorted(
        (s for s in run.spans if s.trace_id.hex() == GRPC_TRACE and s.kind == Span.SPAN_KIND_SERVER),
        key=lambda s: s.start_time_unix_nano,
    )
    assert [(s.name.rsplit("/", 1)[1], _attributes(s)["rpc.grpc.status_code"]) for s in served] == [
        ("Get", 0),
        ("Get", 5),
        ("Report", 2),
    ]
    assert {s.parent_span_id.hex() for s in served} == {"00f067aa0ba902b7"}
    ok, not_found, failed = served
    assert ok.status.code == not_found.status.code == Status.STATUS_CODE_UNSET  # NOT_FOUND: the caller's
    assert (failed.status.code, failed.status.message) == (Status.STATUS_CODE_ERROR, "JSONDecodeError")
    assert [e.name for e in failed.events] == ["exception"]
    assert _attributes(failed)["error.type"] == "json.decoder.JSONDecodeError"
    served_count = "rpc_server_call_duration_seconds_count"
    labels = {"rpc_service": "ci.runner.v1.RunnerStatus"}
    assert value(run.metrics, served_count, **labels, rpc_method="Report", rpc_grpc_status_code="0") == 1
    assert value(run.metrics, served_count, **labels, rpc_method="Get", rpc_grpc_status_code="5") == 1


def _attributes(span: Any) -> dict[str, Any]:
    return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in span.attributes}


# -- DANUBE-031: signed SLSA provenance for a build's output ---------------------------------


def test_a_builds_artifact_is_signed_and_verifies(run: Run) -> None:
    assert run.build.returncode == 0, run.build.stdout + run.build.stderr
    steps = [(s["name"], s["outcome"]) for s in _json(run.build)["steps"]]
    assert steps == [
        ("checkout", "ok"),
        ("compile", "ok"),
        ("package", "ok"),
        ("report", "ok"),
        ("provenance", "ok"),
    ]
    artifact = run.state / "artifacts" / "shop-1.tar.gz"
    verified = run_cli(
        "provenance", "verify", str(artifact), "--key", str(run.public_key), "--builder-id", BUILDER
    )
    assert verified.returncode == 0, verified.stderr
    envelope = json.loads(Path(f"{artifact}.intoto.jsonl").read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    definition = statement["predicate"]["buildDefinition"]
    assert definition["externalParameters"]["parameters"] == {"pipeline": "shop", "run": 1, "seconds": 0.0}
    assert [s["name"] for s in definition["internalParameters"]["steps"]] == [
        "checkout",
        "compile",
        "package",
        "report",
    ]


def test_a_tampered_artifact_is_refused(run: Run, tmp_path: Path) -> None:
    artifact = run.state / "artifacts" / "shop-1.tar.gz"
    forged = tmp_path / artifact.name
    forged.write_bytes(artifact.read_bytes() + b"\0")
    shutil.copy(f"{artifact}.intoto.jsonl", f"{forged}.intoto.jsonl")
    refused = run_cli("provenance", "verify", str(forged), "--key", str(run.public_key))
    assert refused.returncode == 1
    assert "which no attested subject has" in refused.stderr


def test_the_service_stops_cleanly(run: Run) -> None:
    assert run.exit_code == 0, run.output[-3000:]
