"""Acceptance of the market (reference system 002): the four services run as the stack says, on
this machine without a cluster. The orders service starts before its migration (readiness 503,
liveness 200: out of service, never restarted), the migration runs as the rendered init container
says, orders becomes ready; then `smoke.py`, the same script an operator runs against the
cluster's gateway URL, passes against the local gateway, and a request id sent to the gateway
shows up in the next service's log lines.

Run: `make examples`, or `.venv/bin/pytest tests/examples/test_market.py`.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.examples.acceptance import pg_schema
from tests.generators.deploy.test_consistency import one, rendered
from tests.helpers import ServeProcess, eventually, run_cli

EXAMPLE = Path(__file__).resolve().parent
SERVICES = ("users", "products", "orders", "gateway")


@dataclass
class Run:
    ready_before_migration: httpx.Response
    health_before_migration: httpx.Response
    migration: subprocess.CompletedProcess[str]
    ready_after_migration: httpx.Response
    smoke: subprocess.CompletedProcess[str]
    request_id: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("market") / "deploy"
    result = run_cli("generate", "deploy", "--stack", str(EXAMPLE / "stack.toml"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def run(postgres_url: str, bundle: Path) -> Any:
    key = secrets.token_hex(16)
    with pg_schema(postgres_url, "ex_market") as url, ExitStack() as stack:
        procs: dict[str, ServeProcess] = {}

        def serve(name: str, **env: str) -> ServeProcess:
            proc = ServeProcess(
                EXAMPLE / name / "pilothouse.toml", env={"PILOTHOUSE_LIFECYCLE__PRE_STOP_DELAY": "0s", **env}
            )
            stack.callback(proc.stop)
            procs[name] = proc.start()
            return proc

        users, products = serve("users"), serve("products")
        orders = serve("orders", ORDERS_DB_URL=url, DATABASE_URL=url, PRODUCTS_URL=products.app_url)
        gateway = serve(
            "gateway",
            USERS_URL=users.app_url,
            PRODUCTS_URL=products.app_url,
            ORDERS_URL=orders.app_url,
            GATEWAY_API_KEYS=f"acme:{key}\n",
        )
        for proc in (users, products, gateway):
            eventually(lambda proc=proc: httpx.get(f"{proc.ops_url}/ready").status_code == 200)

        ready_before = httpx.get(f"{orders.ops_url}/ready")
        health_before = httpx.get(f"{orders.ops_url}/health")
        # The init container, as rendered: its command, with the app's DATABASE_URL.
        pod = one(rendered(bundle, "base"), "Deployment", "orders")["spec"]["template"]["spec"]
        init = pod["initContainers"][0]
        command = [
            sys.executable if init["command"][0] == "python" else init["command"][0],
            *init["command"][1:],
        ]
        migration = subprocess.run(
            command,
            cwd=EXAMPLE / "orders",
            env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        eventually(lambda: httpx.get(f"{orders.ops_url}/ready").status_code == 200)
        ready_after = httpx.get(f"{orders.ops_url}/ready")

        smoke = subprocess.run(
            [sys.executable, str(EXAMPLE / "smoke.py"), gateway.app_url],
            env={"MARKET_API_KEY": key, "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        record = Run(ready_before, health_before, migration, ready_after, smoke)
        # No X-Request-ID from the caller: the gateway makes one, returns it, and passes it on.
        answer = httpx.get(f"{gateway.app_url}/api/users/2", headers={"X-API-Key": key})
        record.request_id = answer.headers["x-request-id"]
        record.metrics = {name: httpx.get(f"{p.ops_url}/metrics").text for name, p in procs.items()}
        # stop() is SIGTERM and the drain, as an orchestrator stops a pod: the last request's
        # access line is in the output (a kill could lose what the log writer still held).
        for proc in procs.values():
            proc.stop()
        record.outputs = {name: p.output for name, p in procs.items()}
        return record


def _access_lines(output: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("logger") == "pilothouse.access"]


# -- P9-02: probes and migrations ----------------------------------------------------------------


def test_ready_only_after_the_migration(run: Run) -> None:
    assert run.ready_before_migration.status_code == 503
    assert run.ready_before_migration.json()["checks"]["schema"]["status"] == "fail"
    assert run.migration.returncode == 0, run.migration.stderr
    assert run.ready_after_migration.json()["checks"]["schema"]["status"] == "pass"


def test_failing_readiness_keeps_the_pod_out_of_service_without_restarts(run: Run, bundle: Path) -> None:
    assert run.health_before_migration.status_code == 200  # liveness passes: the kubelet does not restart it
    pod = one(rendered(bundle, "base"), "Deployment", "orders")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert pod["initContainers"][0]["command"] == ["python", "-m", "orders.migrate"]


# -- P9-03 and P9-05: the gateway, end to end -------------------------------------------------------


def test_the_smoke_script_passes_through_the_gateway(run: Run) -> None:
    assert run.smoke.returncode == 0, run.smoke.stdout + run.smoke.stderr
    assert "8 of 8 checks passed" in run.smoke.stdout


def test_unauthorized_requests_are_refused_at_the_gateway(run: Run) -> None:
    assert "ok    unauthorized request refused (401)" in run.smoke.stdout
    assert "ok    wrong API key refused (401)" in run.smoke.stdout
    refused = [a for a in _access_lines(run.outputs["gateway"]) if a["status"] == 401]
    assert len(refused) == 2
    assert not any(
        a.get("http_route") == "/users/{id}" and a["status"] == 401
        for a in _access_lines(run.outputs["users"])
    )  # never reached the service


# -- P9-04: logs and metrics ---------------------------------------------------------------------------


def test_logs_of_every_service_carry_the_request_id(run: Run) -> None:
    for name in ("gateway", "users"):
        ids = {a.get("request_id") for a in _access_lines(run.outputs[name])}
        assert run.request_id in ids, name
    for name in SERVICES:
        assert all(a.get("request_id") and a["service"] == name for a in _access_lines(run.outputs[name])), (
            name
        )


def test_every_service_serves_metrics(run: Run) -> None:
    for name in SERVICES:
        assert "http_server_request_duration_seconds_count{" in run.metrics[name], name
