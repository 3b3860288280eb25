"""The market's gateway, an Argo Rollouts `Rollout` (blue-green), built and run as its Rollout says.

The smoke reads the Rollout's pod template exactly as a Deployment's: here from the market stack's
bundle (`generate deploy --stack`, four workloads, `--workload gateway`) through the CLI, with the
partner API key a request needs (the `api.keys` Secret mounted as a file), and from the gateway's
compose.prod.yaml.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pilothouse.cli.smoke import compose_for, rendered
from pilothouse.config import load_config
from pilothouse.image.runspec import from_workload
from tests.helpers import ROOT, run_cli
from tests.image.conftest import RUN_ARGS, Built
from tests.image.test_built_images import BUDGET, TOKEN, smoke

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
MARKET = ROOT / "examples" / "market"
PARTNER_KEY = "partner-key-7f3c9e2a41b8d6"
NO_SUCH_SERVICE = "/api/nowhere/x"
"""Past the API-key check the gateway's own route answers 404 for an unknown upstream: the request
went through authentication and the app (the real upstreams are other pods)."""


def secrets_file(example: Path, target: Path) -> Path:
    """The stack's secrets.example.yaml filled in, as an operator would before `kubectl apply`."""
    docs = list(yaml.safe_load_all(example.read_text()))
    for doc in docs:
        if doc["metadata"]["name"] == "gateway-admin":
            doc["stringData"]["token"] = TOKEN
        elif doc["metadata"]["name"] == "gateway-api":
            doc["stringData"]["keys"] = f"acme:{PARTNER_KEY}\n"
    target.write_text(yaml.safe_dump_all(docs))
    return target


def test_the_gateway_runs_as_the_market_rollout_says(gateway_image: Built, tmp_path: Path) -> None:
    assert gateway_image.report["size"] < BUDGET
    stack = tmp_path / "market"
    generated = run_cli("generate", "deploy", "--stack", str(MARKET / "stack.toml"), "--out", str(stack))
    assert generated.returncode == 0, generated.stderr
    docs = rendered(stack, "base")
    assert sorted(d["metadata"]["name"] for d in docs if d["kind"] == "Rollout") == ["gateway"]
    secrets = secrets_file(stack / "k8s" / "secrets.example.yaml", tmp_path / "secrets.yaml")
    args = ["smoke", "--image", gateway_image.ref, "--bundle", str(stack), "--workload", "gateway"]
    args += ["--secrets", str(secrets), "--route", NO_SUCH_SERVICE, *(f"--run-arg={a}" for a in RUN_ARGS)]
    passed = run_cli(*args, f"--header=X-API-Key:{PARTNER_KEY}", "--expect-status=404", timeout=300)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    lines = [line.strip() for line in passed.stdout.splitlines()]
    assert lines[0] == f"smoke: {gateway_image.ref} as Rollout gateway"
    assert "limits: memory 256Mi (no swap), cpu 0.25" in lines and f"GET {NO_SUCH_SERVICE} 404" in lines
    # Without the key the gateway refuses the same request: the smoke says which status came back.
    refused = run_cli(*args, "--expect-status=404", timeout=300)
    assert refused.returncode == 1
    assert (
        refused.stderr.strip()
        .splitlines()[-1]
        .startswith(f"pilothouse: error: Rollout gateway: GET {NO_SUCH_SERVICE} answered 401 (expected 404)")
    )


def test_the_rollout_pod_is_read_as_a_deployment_pod(gateway_image: Built) -> None:
    """The gateway's own bundle: a Rollout whose pod template the smoke reads whole (the Secret
    file mount, the uid, read-only root, the grace period)."""
    docs = rendered(gateway_image.bundle, "base")
    rollout = next(d for d in docs if d["kind"] == "Rollout")
    spec = from_workload(docs, {"gateway-admin": {"token": b"t"}, "gateway-api": {"keys": b"k"}})
    assert spec.source == "Rollout gateway"
    pod = rollout["spec"]["template"]["spec"]
    assert spec.grace_seconds == pod["terminationGracePeriodSeconds"]
    assert [f.target for f in spec.files if f.target.startswith("/var/run/secrets")] == [
        "/var/run/secrets/pilothouse/api/keys"
    ]
    assert spec.read_only and spec.user == "10001:10001" and spec.cap_drop == ["ALL"]


def test_the_gateway_runs_as_compose_prod_says(gateway_image: Built) -> None:
    bundle = gateway_image.bundle
    (bundle / "secrets").mkdir(exist_ok=True)
    (bundle / "secrets" / "api.keys").write_text(f"acme:{PARTNER_KEY}\n")
    spec = compose_for(load_config(gateway_image.config), bundle, {"GATEWAY_ADMIN_TOKEN": TOKEN})
    smoke(spec, gateway_image.ref, NO_SUCH_SERVICE, headers={"X-API-Key": PARTNER_KEY}, expect_status=404)
