"""Acceptance of the broker integration (reference system 001): every criterion of ACCEPTANCE.md
that can run here, against a real `pilothouse serve` of this example reading its broker API key
from a real OpenBao server (`bao server -dev`, tests/secrets/conftest.py) through an AppRole
holding only the policy Pilothouse generated, and against the real validators.

Run: `make examples`, or `.venv/bin/pytest tests/examples/test_broker.py`.
"""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.helpers import PILOTHOUSE, ServeProcess, eventually, run_cli
from tests.secrets.conftest import Bao, approle, bao, login_with_approle  # noqa: F401  (fixtures)
from tests.telemetry.conftest import value

from pilothouse.config import load_config

EXAMPLE = Path(__file__).resolve().parent
CONFIG = EXAMPLE / "pilothouse.toml"
PROD_AUTH = 'auth = { method = "kubernetes", role = "broker" }'


@dataclass
class Run:
    orders: list[httpx.Response]
    metrics: str
    drill: subprocess.CompletedProcess[str] | None = None
    rotations: float = 0
    key_before: str = ""
    key_after: str = ""
    pid_before: int = 0
    pid_after: int = 0
    exit_code: int | None = None
    output: str = ""


def _put_key(server: Bao, key: str) -> None:
    server.client().secrets.kv.v2.create_or_update_secret(
        path="broker/oanda", secret={"api-key": key}, mount_point="secret"
    )


def _order(server: ServeProcess, **body: Any) -> httpx.Response:
    return httpx.post(f"{server.app_url}/orders", json={"broker": "oanda", "instrument": "EUR_USD", **body})


@pytest.fixture(scope="module")
def run(bao: Bao, approle: None, tmp_path_factory: pytest.TempPathFactory) -> Any:  # noqa: F811
    tmp = tmp_path_factory.mktemp("broker")
    _put_key(bao, secrets.token_hex(16))
    # The example's config, with Kubernetes auth (no Kubernetes API here) switched to an AppRole
    # whose only policy is the one `pilothouse secrets policy` prints for this config.
    creds = login_with_approle(bao, load_config(CONFIG), "broker-example")
    text = CONFIG.read_text()
    assert PROD_AUTH in text
    text = text.replace(
        PROD_AUTH,
        f'address = "{bao.address}"\n'
        f'auth = {{ method = "approle", role_id = "{creds["role_id"]}", '
        'secret_id_env = "BROKER_VAULT_SECRET_ID" }',
    )
    config = tmp / "pilothouse.toml"
    config.write_text(text)
    env = {
        "PYTHONPATH": str(EXAMPLE),
        "BROKER_VAULT_SECRET_ID": creds["secret_id"],
        "BROKER_ADMIN_TOKEN": secrets.token_hex(32),
        "PILOTHOUSE_LIFECYCLE__PRE_STOP_DELAY": "0s",
    }
    server = ServeProcess(config, env=env).start()
    try:
        eventually(lambda: httpx.get(f"{server.ops_url}/ready").status_code == 200)
        orders = [
            _order(server, units=100),
            _order(server, units=5),
            _order(server, units=0),
            _order(server, instrument="HALTED", units=1),
        ]
        record = Run(orders, httpx.get(f"{server.ops_url}/metrics").text)
        record.key_before = _order(server, units=1).json()["key_id"]
        record.pid_before = httpx.get(f"{server.ops_url}/status").json()["pid"]

        # The rotation drill, as an operator runs it: rotate-test watches, Vault gets a new version.
        drill = subprocess.Popen(
            [
                *PILOTHOUSE,
                "secrets",
                "rotate-test",
                "-c",
                str(config),
                "--expect",
                "oanda.api-key",
                "--timeout",
                "60s",
            ],
            env={**server.env},
            cwd=tmp,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert drill.stdout is not None
        first = drill.stdout.readline()
        assert first.startswith("watching"), first + (
            drill.stderr.read() if drill.poll() is not None and drill.stderr else ""
        )
        _put_key(bao, secrets.token_hex(16))
        out, err = drill.communicate(timeout=90)
        record.drill = subprocess.CompletedProcess(drill.args, drill.returncode, first + out, err)

        def rotated() -> bool:
            body = httpx.get(f"{server.ops_url}/metrics").text
            record.rotations = value(body, "broker_credential_rotations_total", broker="oanda")
            return record.rotations >= 1

        eventually(rotated)
        record.key_after = _order(server, units=1).json()["key_id"]
        record.pid_after = httpx.get(f"{server.ops_url}/status").json()["pid"]
        server.signal(signal.SIGTERM)
        record.exit_code = server.wait(30)
    finally:
        server.stop()
    record.output = server.output
    return record


# -- AC3: Prometheus metrics for API latency, errors, throughput; the service's own --------------


def test_business_metrics_on_metrics_by_broker_and_status(run: Run) -> None:
    assert [r.status_code for r in run.orders] == [201, 201, 422, 502]
    m = run.metrics
    assert value(m, "broker_orders_total", broker="oanda", status="filled") == 2
    assert value(m, "broker_orders_total", broker="oanda", status="rejected") == 1
    assert value(m, "broker_orders_total", broker="oanda", status="error") == 1
    assert value(m, "broker_api_errors_total", broker="oanda", error_type="connection") == 1
    assert value(m, "broker_order_duration_seconds_count", broker="oanda") == 4
    assert value(m, "broker_connection_status", broker="oanda") == 1


def test_http_latency_errors_and_throughput_on_metrics(run: Run) -> None:
    m = run.metrics
    route = {"http_request_method": "POST", "http_route": "/orders"}
    assert (
        value(m, "http_server_request_duration_seconds_count", **route, http_response_status_code="201") == 2
    )
    assert (
        value(m, "http_server_request_duration_seconds_count", **route, http_response_status_code="502") == 1
    )


# -- AC4: dashboards -------------------------------------------------------------------------------


def _generate(tmp_path: Path, target: str) -> Path:
    out = tmp_path / target
    result = run_cli("generate", target, "-c", str(CONFIG), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def _validate(out: Path) -> None:
    result = run_cli("validate", str(out))
    assert result.returncode == 0 and "FAIL" not in result.stdout, result.stdout + result.stderr


def test_dashboards_show_the_business_metrics_and_the_service_health(tmp_path: Path) -> None:
    out = _generate(tmp_path, "monitoring")
    board = json.loads((out / "grafana/dashboards/broker-application.json").read_text())
    exprs = {p["title"]: " ".join(t.get("expr", "") for t in p.get("targets", [])) for p in board["panels"]}
    assert "sum by (broker, status) (rate(broker_orders_total{" in exprs["broker_orders (per second)"]
    for name in (
        "broker_order_duration_seconds_bucket",
        "broker_api_errors_total",
        "broker_connection_status",
    ):
        assert any(name in e for e in exprs.values()), name
    overview = json.loads((out / "grafana/dashboards/broker-overview.json").read_text())
    titles = {p["title"] for p in overview["panels"]}
    assert {"Request rate by route", "Error ratio (5xx)", "Latency p50 / p90 / p99"} <= titles


# -- AC5: PagerDuty and Slack, escalation, runbooks ---------------------------------------------------


def test_pagerduty_and_slack_routes_with_escalation_and_runbooks(tmp_path: Path) -> None:
    out = _generate(tmp_path, "monitoring")
    am = yaml.safe_load((out / "alertmanager/alertmanager.yaml").read_text())
    receivers = {r["name"]: r for r in am["receivers"]}
    assert receivers["oncall"]["pagerduty_configs"][0]["routing_key_file"].endswith("pagerduty-routing-key")
    assert receivers["trading-ops"]["slack_configs"][0]["channel"] == "#broker-alerts"
    critical = [r for r in am["route"]["routes"] if r["matchers"] == ['severity="critical"']]
    assert [r["receiver"] for r in critical] == ["oncall", "oncall-secondary"]
    assert critical[1]["group_wait"] == "30m"  # the second line hears of a page not silenced in 30m
    (rules,) = (out / "prometheus/rules").glob("*.yaml")
    alerts = [r for g in yaml.safe_load(rules.read_text())["groups"] for r in g["rules"] if "alert" in r]
    assert any(a["alert"] == "BrokerApiErrorsHigh" and a["labels"]["severity"] == "critical" for a in alerts)
    for alert in alerts:
        url = alert["annotations"]["runbook_url"]
        assert url == f"https://runbooks.example.com/broker/{alert['alert']}.md"
        assert (out / "runbooks" / f"{alert['alert']}.md").is_file(), alert["alert"]
    _validate(out)  # amtool routes test per severity, promtool test rules: each alert fires


# -- AC6: log aggregation (ELK) ---------------------------------------------------------------------


CRI_MAX_LINE = 16 * 1024
"""The kubelet splits a container's line into partial (`P`) records of at most 16 KiB."""


def _as_cri(lines: list[str]) -> list[str]:
    """The served lines as the kubelet writes them to /var/log/containers (CRI format:
    `<RFC3339Nano time> <stream> <P|F> <text>`)."""
    records = []
    for line in lines:
        chunks = [line[i : i + CRI_MAX_LINE] for i in range(0, len(line), CRI_MAX_LINE)] or [""]
        for n, chunk in enumerate(chunks):
            records.append(
                f"2026-12-02T06:00:00.000000000Z stderr {'F' if n == len(chunks) - 1 else 'P'} {chunk}"
            )
    return records


def _filebeat_events(records: list[str], parsers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A model of the filestream parsers the generated filebeat.yml names, as Filebeat documents
    them (filebeat-input-filestream, "parsers"): `container` with `format: cri` strips the time,
    stream and tag and joins partial records; `ndjson` with `target: ""` decodes the text into
    top-level fields, `overwrite_keys` letting them replace Filebeat's, `add_error_key` adding
    `error.message` when a line is not JSON."""
    assert [next(iter(p)) for p in parsers] == ["container", "ndjson"], parsers
    assert parsers[0]["container"] == {"format": "cri"}
    ndjson = parsers[1]["ndjson"]
    assert ndjson == {"target": "", "add_error_key": True, "overwrite_keys": True}, ndjson
    events, partial = [], ""
    for record in records:
        _time, stream, tag, text = record.split(" ", 3)
        partial += text
        if tag == "P":
            continue
        event: dict[str, Any] = {"stream": stream, "message": partial}
        try:
            event.update(json.loads(partial))
        except ValueError as exc:
            event["error"] = {"message": str(exc)}
        events.append(event)
        partial = ""
    return events


def test_json_logs_and_the_generated_elasticsearch_shipper(run: Run, tmp_path: Path) -> None:
    out = _generate(tmp_path, "monitoring")
    filebeat = yaml.safe_load((out / "logs/filebeat.yml").read_text())
    assert filebeat["output.elasticsearch"]["hosts"] == ["http://elasticsearch.logging.svc:9200"]
    assert filebeat["output.elasticsearch"]["index"].startswith("broker-logs-")
    (source,) = filebeat["filebeat.inputs"]
    lines = [line for line in run.output.splitlines() if line.strip()]
    big = json.dumps({"service": "broker", "level": "info", "message": "x" * (CRI_MAX_LINE + 10)})
    events = _filebeat_events(_as_cri([*lines, big]), source["parsers"])
    assert len(events) == len(lines) + 1 and events[-1]["message"] == "x" * (CRI_MAX_LINE + 10)
    assert [e for e in events if "error" in e] == []  # every line the service wrote decodes
    assert all(e["service"] == "broker" and e["level"] for e in events)
    filled = [e for e in events if e["message"] == "order filled"]
    assert filled and all(e["broker"] == "oanda" and e["request_id"] for e in filled)  # top-level fields
    assert any(e.get("logger") == "pilothouse.access" and e.get("status") == 502 for e in events)


# -- AC7: Vault, with a rotation drill --------------------------------------------------------------


def test_vault_rotation_drill_rekeys_without_a_restart(run: Run) -> None:
    assert run.drill is not None
    assert run.drill.returncode == 0, run.drill.stdout + run.drill.stderr
    assert "ok: rotation picked up for oanda.api-key without a restart" in run.drill.stdout
    assert run.rotations == 1
    assert run.key_before and run.key_after and run.key_before != run.key_after
    assert run.pid_before == run.pid_after
    assert run.exit_code == 0, run.output[-2000:]


def test_the_generated_vault_policy_reads_only_this_services_secret() -> None:
    policy = run_cli("secrets", "policy", "-c", str(CONFIG))
    assert policy.returncode == 0, policy.stderr
    assert 'path "secret/data/broker/oanda"' in policy.stdout
    assert "secret/data/broker/*" not in policy.stdout and '"secret/*"' not in policy.stdout


# -- AC1, AC2, AC8: image and compose, HPA, blue-green ---------------------------------------------


def test_image_recipe_and_compose_validate(tmp_path: Path) -> None:
    out = _generate(tmp_path, "deploy")
    dockerfile = (out / "Dockerfile").read_text()
    assert "AS builder" in dockerfile and "USER 10001:10001" in dockerfile and "HEALTHCHECK" in dockerfile
    compose = yaml.safe_load((out / "compose.yaml").read_text())
    assert "healthcheck" in compose["services"]["broker"]
    _validate(out)  # hadolint, check-jsonschema (compose), kubectl kustomize, kubernetes-validate


def test_hpa_and_blue_green_rollout(tmp_path: Path) -> None:
    out = _generate(tmp_path, "deploy")
    docs = [
        d for f in sorted((out / "k8s/base").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d
    ]
    kinds = {d["kind"]: d for d in docs if "kind" in d}  # not the kustomize configurations
    hpa = kinds["HorizontalPodAutoscaler"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"], hpa["scaleTargetRef"]["kind"]) == (3, 10, "Rollout")
    blue_green = kinds["Rollout"]["spec"]["strategy"]["blueGreen"]
    assert blue_green["activeService"] == "broker" and blue_green["previewService"] == "broker-preview"
    assert blue_green["prePromotionAnalysis"]["templates"] == [{"templateName": "broker-error-rate"}]
    assert "0.01" in json.dumps(kinds["AnalysisTemplate"]["spec"])
