"""Options the examples do not use, through the real validators: NodePort, ServiceMonitor, OTLP,
env-only secrets, a single blue-green service with overlays, a forced PDB."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.helpers import one, rendered, run_cli, write_config

VARIANT = """
[service]
name = "api"
app = "api:app"
version = "2.1.0"

[ops]
admin_token_env = "API_ADMIN_TOKEN"

[[checks]]
name = "cache"
kind = "redis"
url = { secret = "cache.url" }

[telemetry]
traces = "otlp"

[secrets]
sources = ["env"]

[deploy]
image = "registry.example.com/api"
replicas = 2
pdb = true
expose = "nodeport"
service_monitor = true
strategy = "blue-green"
otlp_endpoint = "http://collector.observability.svc:4318"
env = { PILOTHOUSE_TELEMETRY__SAMPLE_RATIO = "0.25" }

[deploy.environments.staging]
replicas = 2
tag = "2.1.0-rc1"
env = { PILOTHOUSE_TELEMETRY__SAMPLE_RATIO = "1.0", FEATURE_X = "on" }
resources = { memory = "1Gi", cpu = "1", cpu_limit = "2" }
"""


def test_variant_bundle_passes_validators_and_wires_options(tmp_path: Path) -> None:
    config = write_config(tmp_path, VARIANT)
    out = tmp_path / "deploy"
    result = run_cli("generate", "deploy", "--config", str(config), "--out", str(out))
    assert result.returncode == 0, result.stderr
    validate = run_cli("validate", str(out), "--format", "json", "--strict", timeout=300)
    verdicts = json.loads(validate.stdout)
    assert [v for v in verdicts if v["status"] != "pass"] == [] and validate.returncode == 0
    custom = next(v for v in verdicts if v["tool"] == "kubernetes-validate")["detail"]
    assert "Rollout" in custom and "ServiceMonitor" in custom

    base, staging = rendered(out, "base"), rendered(out, "staging")
    assert one(base, "Service", "api")["spec"]["type"] == "NodePort"
    assert not [d for d in base if d["kind"] == "Ingress"]
    assert one(base, "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "ops"
    env = {e["name"]: e for e in one(base, "Rollout")["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://collector.observability.svc:4318"
    # env-only secrets: the redis URL comes as the variable the resolver reads, from Secret api-cache.
    assert env["API_CACHE_URL"]["valueFrom"]["secretKeyRef"] == {"key": "url", "name": "api-cache"}
    assert env["PILOTHOUSE_TELEMETRY__SAMPLE_RATIO"]["value"] == "0.25"

    rollout = one(staging, "Rollout", "api")  # a blue-green service keeps its name in overlays
    container = rollout["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/api:2.1.0-rc1"
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "1Gi"}
    staged = {e["name"]: e.get("value") for e in container["env"]}
    assert staged["PILOTHOUSE_TELEMETRY__SAMPLE_RATIO"] == "1.0" and staged["FEATURE_X"] == "on"
    assert len([e for e in container["env"] if e["name"] == "PILOTHOUSE_TELEMETRY__SAMPLE_RATIO"]) == 1
    selector = rollout["spec"]["selector"]["matchLabels"]
    assert selector["app.kubernetes.io/instance"] == "staging"
    assert rollout["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"] == "staging"
    assert one(staging, "Service", "api-preview")["spec"]["selector"] == selector
    assert one(staging, "PodDisruptionBudget", "api")["spec"]["selector"]["matchLabels"] == selector

    compose = yaml.safe_load((out / "compose.prod.yaml").read_text())["services"]["api"]["environment"]
    assert compose["API_CACHE_URL"].startswith("${API_CACHE_URL:?")
    assert "API_CACHE_URL=" in (out / "systemd" / "api.env.example").read_text()
