"""Opt-in egress rules (issue 14 item 12): the NetworkPolicy had default-deny ingress but let the
pod reach anything. With `[deploy.egress] enabled = true` it may reach DNS and exactly the
destinations the config names; the bundle still passes kubernetes-validate --strict and checkov."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from pilothouse.config import load_config
from pilothouse.generators.deploy import egress
from tests.helpers import one, rendered, run_cli, write_config

CONFIG = """
[service]
name = "pay"
app = "pay.app:app"

[[checks]]
name = "ledger"
kind = "postgres"
url = "postgresql://ledger-db.data.svc.cluster.local:5433/ledger"

[[checks]]
name = "cache"
kind = "redis"
url = {{ secret = "cache.url" }}

[[checks]]
name = "stripe"
kind = "http"
url = "https://api.stripe.com/healthcheck"

[[checks]]
name = "hsm"
kind = "tcp"
host = "10.20.30.40"
port = 9000

[[checks]]
name = "sidecar"
kind = "tcp"
host = "127.0.0.1"
port = 15000

[secrets]
sources = ["vault", "env"]
[secrets.vault]
address = "https://vault.vault.svc:8200"

[telemetry]
traces = "otlp"

[deploy]
image = "registry.example.com/pay"
database = {{}}
egress = {{ enabled = {enabled}, allow = ["203.0.113.0/24:8443"] }}
"""


def _policy(tmp_path: Path, enabled: bool) -> dict[str, Any]:
    config = write_config(tmp_path, CONFIG.format(enabled=str(enabled).lower()))
    out = tmp_path / "deploy"
    result = run_cli("generate", "deploy", "--config", str(config), "--out", str(out))
    assert result.returncode == 0, result.stderr
    return one(rendered(out, "base"), "NetworkPolicy", "pay")


def _rules(policy: dict[str, Any]) -> dict[str, set[object]]:
    """{peer as JSON: {(protocol, port)}} of the egress rules."""
    out: dict[str, set[object]] = {}
    for rule in policy["spec"]["egress"]:
        assert len(rule["to"]) == 1
        key = json.dumps(rule["to"][0], sort_keys=True)
        out.setdefault(key, set()).update((p["protocol"], p["port"]) for p in rule["ports"])
    return out


def _ns(name: str) -> str:
    selector = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}
    return json.dumps(selector, sort_keys=True)


def _cidr(cidr: str) -> str:
    return json.dumps({"ipBlock": {"cidr": cidr}}, sort_keys=True)


def test_egress_is_off_unless_asked_for(tmp_path: Path) -> None:
    policy = _policy(tmp_path, enabled=False)
    assert policy["spec"]["policyTypes"] == ["Ingress"] and "egress" not in policy["spec"]


def test_egress_rules_follow_the_config(tmp_path: Path) -> None:
    policy = _policy(tmp_path, enabled=True)
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    dns = json.dumps(
        {
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        },
        sort_keys=True,
    )
    db_labels = {"app.kubernetes.io/name": "pay-db", "app.kubernetes.io/part-of": "pay"}
    database = json.dumps({"podSelector": {"matchLabels": db_labels}}, sort_keys=True)
    assert _rules(policy) == {
        dns: {("UDP", 53), ("TCP", 53)},
        _ns("data"): {("TCP", 5433)},  # ledger check, in-cluster name in another namespace
        _ns("vault"): {("TCP", 8200)},  # Vault address
        _ns("monitoring"): {("TCP", 4318)},  # OTLP endpoint (the default collector)
        database: {("TCP", 5432)},  # [deploy.database]
        _cidr("10.20.30.40/32"): {("TCP", 9000)},  # tcp check on an address
        _cidr("203.0.113.0/24"): {("TCP", 8443)},  # allow
        # external host (stripe) and a URL in a secret (cache): only the port can be pinned
        _cidr("0.0.0.0/0"): {("TCP", 443), ("TCP", 6379)},
    }  # the loopback sidecar is not there: NetworkPolicy never filters loopback


def test_every_check_destination_is_allowed(tmp_path: Path) -> None:
    """One model: each check's port appears in the rules generated from the same config."""
    config = load_config(write_config(tmp_path, CONFIG.format(enabled="true")), environ={})
    allowed = {p["port"] for rule in egress.rules(config) for p in rule["ports"]}
    for dest in egress.destinations(config):
        if dest.host not in ("127.0.0.1", "localhost"):
            assert dest.port in allowed, dest


def test_bundle_with_egress_passes_the_validators(tmp_path: Path) -> None:
    config = write_config(tmp_path, CONFIG.format(enabled="true"))
    out = tmp_path / "deploy"
    assert run_cli("generate", "deploy", "--config", str(config), "--out", str(out)).returncode == 0
    result = run_cli("validate", str(out), "--format", "json", "--strict", timeout=300)
    verdicts = json.loads(result.stdout)
    checked = {(v["tool"], v["target"]) for v in verdicts}
    assert {("kubernetes-validate", "k8s/base"), ("checkov", "kubernetes")} <= checked, verdicts
    assert [v for v in verdicts if v["status"] != "pass"] == []
    assert result.returncode == 0
    assert yaml.safe_load((out / "k8s" / "base" / "networkpolicy.yaml").read_text())["spec"]["egress"]
