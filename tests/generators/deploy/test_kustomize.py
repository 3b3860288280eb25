"""What `kubectl kustomize` renders for the overlays and the stack: the model, per environment."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pilothouse.catalog.http_server import HTTP_SERVER_REQUEST_DURATION
from pilothouse.config import load_config
from pilothouse.generators.deploy import facts
from tests.generators.deploy.conftest import SHOP
from tests.helpers import one, rendered


def kinds(docs: list[dict[str, Any]]) -> set[str]:
    return {d["kind"] for d in docs}


def test_dev_overlay_is_one_replica_without_hpa_or_pdb(shop_bundle: Path) -> None:
    base, dev = rendered(shop_bundle, "base"), rendered(shop_bundle, "dev")
    assert {"HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds(base)
    assert not {"HorizontalPodAutoscaler", "PodDisruptionBudget"} & kinds(dev)
    deployment = one(dev, "Deployment")
    assert deployment["metadata"]["name"] == "dev-shop"
    assert deployment["spec"]["replicas"] == 1
    labels = deployment["spec"]["selector"]["matchLabels"]
    assert labels["app.kubernetes.io/instance"] == "dev"
    assert one(dev, "Service", "dev-shop")["spec"]["selector"] == labels
    hpa = one(base, "HorizontalPodAutoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 6)
    assert one(base, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_stack_prod_overlay_and_dev_resources(market_bundle: Path) -> None:
    prod, dev = rendered(market_bundle, "prod"), rendered(market_bundle, "dev")
    gateway = one(prod, "Rollout", "gateway")
    assert gateway["spec"]["replicas"] == 3
    assert (
        gateway["spec"]["template"]["spec"]["containers"][0]["image"]
        == "registry.example.com/market/gateway:1.0.0"
    )
    hpa = one(prod, "HorizontalPodAutoscaler", "gateway")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"], hpa["scaleTargetRef"]["kind"]) == (3, 10, "Rollout")
    orders = one(dev, "Deployment", "orders")["spec"]["template"]["spec"]["containers"][0]
    assert orders["resources"]["limits"] == {"cpu": "100m", "memory": "192Mi"}
    env = {e["name"]: e for e in orders["env"]}
    assert env["ORDERS_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "orders-admin"


def test_stack_exposes_only_the_gateway_and_allows_only_declared_callers(market_bundle: Path) -> None:
    docs = rendered(market_bundle, "base")
    assert [i["metadata"]["name"] for i in docs if i["kind"] == "Ingress"] == ["gateway"]
    assert {d["metadata"]["namespace"] for d in docs if "namespace" in d["metadata"]} == {"market"}
    assert one(docs, "NetworkPolicy", "default-deny-ingress")["spec"] == {
        "podSelector": {},
        "policyTypes": ["Ingress"],
    }

    def sources(name: str) -> list[str]:
        rule = one(docs, "NetworkPolicy", name)["spec"]["ingress"][0]
        assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
        return [
            f.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
            or "ns:" + f["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            for f in rule["from"]
        ]

    assert sources("gateway") == ["ns:ingress-nginx"]
    assert sources("users") == ["gateway"]
    assert sources("products") == ["gateway", "orders"]
    assert sources("orders") == ["gateway"]
    db_rule = one(docs, "NetworkPolicy", "orders-db")["spec"]["ingress"][0]
    assert db_rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "orders"
    assert db_rule["ports"] == [{"port": "postgres", "protocol": "TCP"}]
    ops_rule = one(docs, "NetworkPolicy", "users")["spec"]["ingress"][-1]
    assert ops_rule["ports"] == [{"port": "ops", "protocol": "TCP"}]


def test_database_statefulset_with_claims_probes_and_secret_password(market_bundle: Path) -> None:
    docs = rendered(market_bundle, "base")
    db = one(docs, "StatefulSet", "orders-db")["spec"]
    assert db["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "2Gi"
    container = db["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["exec"]["command"][0] == "pg_isready"
    env = {e["name"]: e for e in container["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"key": "password", "name": "orders-db"}
    assert one(docs, "Service", "orders-db")["spec"]["clusterIP"] == "None"


def test_blue_green_rollout_analysis_uses_the_catalog_metric(market_bundle: Path) -> None:
    docs = rendered(market_bundle, "base")
    strategy = one(docs, "Rollout", "gateway")["spec"]["strategy"]["blueGreen"]
    assert strategy["activeService"] == "gateway" and strategy["previewService"] == "gateway-preview"
    assert strategy["autoPromotionEnabled"] is False
    one(docs, "Service", "gateway-preview")
    metric = one(docs, "AnalysisTemplate", "gateway-error-rate")["spec"]["metrics"][0]
    assert f"{HTTP_SERVER_REQUEST_DURATION.name}_count" in metric["provider"]["prometheus"]["query"]
    assert metric["successCondition"] == "result[0] <= 0.01"
    assert not [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "gateway"]


def test_secret_example_stays_outside_every_kustomization(market_bundle: Path) -> None:
    example = (market_bundle / "k8s" / "secrets.example.yaml").read_text()
    for name in ("orders-admin", "orders-db", "gateway-admin", "users-admin", "products-admin"):
        assert f"name: {name}\n" in example
    for overlay in ("base", "dev", "prod"):
        assert not [d for d in rendered(market_bundle, overlay) if d["kind"] == "Secret"]
    assert facts.grace_period_seconds(load_config(SHOP, environ={})) == 2 + 2 + 10 + 2 + 5


def test_a_rollout_refers_to_the_config_map_kustomize_generates(tmp_path: Path) -> None:
    """Kustomize suffixes the generated ConfigMap's name with a hash and rewrites the references
    of workloads it knows; a Rollout is a custom resource, so the bundle tells it where a Rollout's
    pod template names ConfigMaps (without that, the market gateway's Rollout mounted a ConfigMap
    that does not exist: found by tests/image/test_market_gateway.py). Single service and stack,
    base and overlays."""
    import subprocess

    market = Path(__file__).resolve().parents[3] / "examples" / "market"
    single, stack = tmp_path / "single", tmp_path / "stack"
    for args in (
        ["--config", str(market / "gateway" / "pilothouse.toml"), "--out", str(single)],
        ["--stack", str(market / "stack.toml"), "--out", str(stack)],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "pilothouse", "generate", "deploy", *args], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
    for bundle, overlay in ((single, "base"), (single, "prod"), (stack, "base"), (stack, "prod")):
        docs = rendered(bundle, overlay)
        maps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
        rollout = one(docs, "Rollout")
        volumes = rollout["spec"]["template"]["spec"]["volumes"]
        named = {v["configMap"]["name"] for v in volumes if "configMap" in v}
        assert named and named <= maps, (bundle.name, overlay, named, maps)
