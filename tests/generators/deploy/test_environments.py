"""Environments apart, as kustomize renders them: each overlay in its own namespace, behind its own
host, mounting its own Secrets, and with its resources merged over the base's.

The kustomize rule modelled here (and shown by `test_kustomize_leaves_outside_secret_names_alone`):
`namePrefix` "prepends the value to the names of all resources and references"
(https://kubectl.docs.kubernetes.io/references/kustomize/kustomization/nameprefix/), but only
references to objects *inside* the kustomization are rewritten: a Secret applied separately keeps
its base name in every `secretKeyRef` (kubernetes-sigs/kustomize#2193, #1563). Pilothouse never
puts a Secret value in a kustomization, so the overlays patch those references themselves.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import one, rendered, run_cli, write_config

CONFIG = """
[service]
name = "envshop"
app = "shop.app:app"
[[checks]]
name = "db"
kind = "postgres"
url = {{ secret = "db.url" }}
[deploy]
image = "registry.example.com/envshop"
service_monitor = true
resources = {{ memory = "256Mi", cpu = "250m", cpu_limit = "500m" }}
secret_env = {{ DATABASE_URL = {{ secret = "db.url" }} }}
[deploy.database]
database = "envshop"
user = "envshop"
[deploy.environments.staging]
replicas = 1
[deploy.environments.prod]
replicas = 3
resources = {{ memory = "512Mi" }}
{extra}
"""


def _secret_refs(node: Any) -> Iterator[str]:
    """Every Secret name a rendered object references (env, envFrom, volumes)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("secretKeyRef", "secretRef") and isinstance(value, dict):
                yield value["name"]
            elif key == "secret" and isinstance(value, dict) and "secretName" in value:
                yield value["secretName"]
            else:
                yield from _secret_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _secret_refs(item)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("environments")
    config = write_config(tmp, CONFIG.format(extra=""))
    result = run_cli("generate", "deploy", "--config", str(config), "--out", str(tmp / "deploy"), env={})
    assert result.returncode == 0, result.stderr
    return tmp / "deploy"


def test_each_environment_has_its_own_namespace_host_and_secrets(bundle: Path) -> None:
    seen: dict[str, set[tuple[str, str]]] = {}
    for env in ("staging", "prod"):
        docs = rendered(bundle, env)
        namespaces = {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"}
        assert namespaces == {f"envshop-{env}"}, namespaces
        assert one(docs, "Namespace")["metadata"]["name"] == f"envshop-{env}"
        host = one(docs, "Ingress")["spec"]["rules"][0]["host"]
        assert host == f"{env}.envshop.example.com"
        examples = [
            d for d in yaml.safe_load_all((bundle / "k8s" / env / "secrets.example.yaml").read_text()) if d
        ]
        provided = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in examples}
        wanted = {(d["metadata"]["namespace"], name) for d in docs for name in _secret_refs(d)}
        assert wanted, "the workloads reference Secrets"
        assert wanted <= provided, f"{env}: referenced but not in the example: {wanted - provided}"
        assert all(name.startswith(f"{env}-") for _, name in wanted), wanted
        seen[env] = wanted
        # The example database URL points at the StatefulSet kustomize renders for this environment.
        db = one(docs, "StatefulSet")
        url = next(d for d in examples if d["metadata"]["name"] == f"{env}-envshop-db")["stringData"]["url"]
        name = db["metadata"]["name"]
        assert db["spec"]["serviceName"] == name == f"{env}-envshop-db"
        assert f"@{name}-0.{name}.envshop-{env}.svc:5432/" in url
    assert not seen["staging"] & seen["prod"]


def test_environment_resources_merge_over_the_base(bundle: Path) -> None:
    """prod sets only memory: the base's cpu and cpu_limit stay (it used to drop cpu_limit)."""
    container = one(rendered(bundle, "prod"), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {
        "limits": {"cpu": "500m", "memory": "512Mi"},
        "requests": {"cpu": "250m", "memory": "512Mi"},
    }
    staging = one(rendered(bundle, "staging"), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert staging["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}


def test_service_monitor_selects_only_its_environments_metrics_service(bundle: Path) -> None:
    for env in ("staging", "prod"):
        docs = rendered(bundle, env)
        selector = one(docs, "ServiceMonitor")["spec"]["selector"]["matchLabels"]
        matched = [
            d["metadata"]["name"]
            for d in docs
            if d["kind"] == "Service" and selector.items() <= d["metadata"]["labels"].items()
        ]
        assert matched == [f"{env}-envshop-metrics"]
        assert selector["app.kubernetes.io/instance"] == env


def test_kustomize_leaves_outside_secret_names_alone(tmp_path: Path) -> None:
    """The rule the overlays work around, shown with kustomize itself."""
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "pod.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "p"},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": "x",
                            "env": [
                                {
                                    "name": "A",
                                    "valueFrom": {"secretKeyRef": {"name": "shop-db", "key": "url"}},
                                }
                            ],
                        }
                    ]
                },
            }
        )
    )
    (tmp_path / "base" / "kustomization.yaml").write_text("resources: [pod.yaml]\n")
    (tmp_path / "prod").mkdir()
    (tmp_path / "prod" / "kustomization.yaml").write_text("resources: [../base]\nnamePrefix: prod-\n")
    out = subprocess.run(
        ["kubectl", "kustomize", str(tmp_path / "prod")], capture_output=True, text=True, check=True
    ).stdout
    pod = yaml.safe_load(out)
    assert pod["metadata"]["name"] == "prod-p"
    assert list(_secret_refs(pod)) == ["shop-db"]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            'namespace = "envshop-staging"',
            "deploy.environments.prod and deploy.environments.staging both use namespace 'envshop-staging'",
        ),
        (
            'host = "staging.envshop.example.com"',
            "deploy.environments.prod and deploy.environments.staging both use host "
            "'staging.envshop.example.com'",
        ),
    ],
)
def test_two_environments_in_one_place_are_a_config_error(tmp_path: Path, extra: str, expected: str) -> None:
    path = write_config(tmp_path, CONFIG.format(extra="") + extra + "\n")
    result = run_cli("config", "check", "--config", str(path), env={})
    assert result.returncode == 2, result.stdout
    assert expected in result.stderr and str(path) in result.stderr
    assert "Traceback" not in result.stderr
