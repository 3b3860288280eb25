"""What the artifacts say equals what the running service serves: one model, checked end to end.

The demo shop is started with `pilothouse serve`; the probe paths found in the rendered
Deployment, the Dockerfile HEALTHCHECK and the compose healthcheck are requested on its ops port.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from pilothouse.config import load_config
from pilothouse.generators.deploy import facts, generate
from pilothouse.runtime.checks.factory import build_checks
from tests.generators.deploy.conftest import SHOP
from tests.helpers import ROOT, SHOP_DIR, ServeProcess, one, rendered, run_cli


def _healthcheck_url(command: list[str]) -> str:
    """The URL inside `python -c "...urlopen('URL'...)"`."""
    match = re.search(r"urlopen\('([^']+)'", command[-1])
    assert match, command
    return match.group(1)


@pytest.fixture(scope="module")
def shop() -> Any:
    with ServeProcess(SHOP, ops_port=None, cwd=SHOP_DIR) as proc:
        yield proc


def test_probe_paths_and_ports_are_what_the_service_serves(shop_bundle: Path, shop: ServeProcess) -> None:
    config = load_config(SHOP, environ={})
    deployment = one(rendered(shop_bundle, "base"), "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": config.service.port, "ops": config.ops.port}
    urls: list[str] = []
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["port"] == "ops"
        urls.append(get["path"])
    dockerfile = (shop_bundle / "Dockerfile").read_text()
    cmd = ast.literal_eval(re.search(r"CMD (\[.*\])\n", dockerfile.split("HEALTHCHECK", 1)[1]).group(1))  # type: ignore[union-attr]
    compose = yaml.safe_load((shop_bundle / "compose.yaml").read_text())
    compose_cmd = compose["services"]["shop"]["healthcheck"]["test"][1:]
    assert compose_cmd == cmd
    health = _healthcheck_url(cmd)
    assert health.startswith(f"http://127.0.0.1:{config.ops.port}/")
    urls.append(health.split(str(config.ops.port), 1)[1])
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(config.ops.port)
    urls.append(annotations["prometheus.io/path"])
    for path in urls:
        response = httpx.get(f"{shop.ops_url}{path}", timeout=5)
        assert response.status_code == 200, f"{path} answered {response.status_code}"


def test_grace_period_covers_prestop_drain_and_flush(shop_bundle: Path) -> None:
    config = load_config(SHOP, environ={})
    pod = one(rendered(shop_bundle, "base"), "Deployment")["spec"]["template"]["spec"]
    sleep = int(pod["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"])
    assert sleep >= config.lifecycle.pre_stop_delay
    # preStop runs first, then SIGTERM starts the runtime's own pre-stop wait, drain and flush.
    assert pod["terminationGracePeriodSeconds"] > sleep + config.lifecycle.shutdown_budget
    compose = yaml.safe_load((shop_bundle / "compose.prod.yaml").read_text())
    assert (
        int(compose["services"]["shop"]["stop_grace_period"].rstrip("s")) > config.lifecycle.shutdown_budget
    )
    unit = (shop_bundle / "systemd" / "shop.service").read_text()
    stop = int(re.search(r"^TimeoutStopSec=(\d+)s$", unit, re.M).group(1))  # type: ignore[union-attr]
    assert stop > config.lifecycle.shutdown_budget


def test_every_variable_the_runtime_reads_is_provided(market_bundle: Path) -> None:
    docs = rendered(market_bundle, "base")
    orders = one(docs, "Deployment", "orders")["spec"]["template"]["spec"]
    env = {e["name"]: e for e in orders["containers"][0]["env"]}
    assert env["PILOTHOUSE_CONFIG"]["value"] == "/etc/pilothouse/pilothouse.toml"
    assert env["ORDERS_ADMIN_TOKEN"]["valueFrom"]["secretKeyRef"] == {"key": "token", "name": "orders-admin"}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"key": "url", "name": "orders-db"}
    mounts = {m["mountPath"]: m["name"] for m in orders["containers"][0]["volumeMounts"]}
    # The postgres check's { secret = "db.url" } is read by the resolver from <mount_dir>/db/url.
    assert "/var/run/secrets/pilothouse/db" in mounts
    volumes = {v["name"]: v for v in orders["volumes"]}
    assert volumes[mounts["/var/run/secrets/pilothouse/db"]]["secret"]["secretName"] == "orders-db"
    assert volumes[mounts["/etc/pilothouse"]]["configMap"]["name"].startswith("orders-config-")
    init = orders["initContainers"][0]
    assert init["command"] == ["python", "-m", "orders.migrate"]
    assert init["image"] == orders["containers"][0]["image"]
    config_map = one(docs, "ConfigMap", volumes[mounts["/etc/pilothouse"]]["configMap"]["name"])
    assert 'url = { secret = "db.url" }' in config_map["data"]["pilothouse.toml"]


def test_compose_and_systemd_provide_the_runtime_variables(shop_bundle: Path) -> None:
    for file in ("compose.yaml", "compose.prod.yaml"):
        env = yaml.safe_load((shop_bundle / file).read_text())["services"]["shop"]["environment"]
        assert env["PILOTHOUSE_CONFIG"] == "/etc/pilothouse/pilothouse.toml"
        assert env["SHOP_ADMIN_TOKEN"].startswith("${SHOP_ADMIN_TOKEN:?")  # from the operator, never a value
    unit = (shop_bundle / "systemd" / "shop.service").read_text()
    assert "Environment=PILOTHOUSE_CONFIG=/etc/shop/pilothouse.toml\n" in unit
    assert "EnvironmentFile=-/etc/shop/shop.env\n" in unit
    assert "SHOP_ADMIN_TOKEN=CHANGE-ME\n" in (shop_bundle / "systemd" / "shop.env.example").read_text()


def test_no_secret_value_reaches_any_file_or_output(tmp_path: Path) -> None:
    values = {
        "ORDERS_ADMIN_TOKEN": "tok-9f8e7d6c5b4a",
        "DATABASE_URL": "postgresql://orders:pw-1a2b3c4d@db/orders",
        "ORDERS_DB_URL": "postgresql://orders:pw-5e6f7a8b@db/orders",
    }
    out = tmp_path / "deploy"
    result = run_cli(
        "generate",
        "deploy",
        "--config",
        str(ROOT / "examples/market/orders/pilothouse.toml"),
        "--out",
        str(out),
        env=values,
    )
    assert result.returncode == 0, result.stderr
    texts = [result.stdout, result.stderr] + [p.read_text() for p in out.rglob("*") if p.is_file()]
    for secret in values.values():
        assert not any(secret in t for t in texts)
    secrets_file = (out / "k8s" / "secrets.example.yaml").read_text()
    assert "CHANGE-ME" in secrets_file
    base = (out / "k8s" / "base" / "kustomization.yaml").read_text()
    assert "secrets.example.yaml" not in base


HANGING_CHECK = """
import asyncio


async def forever() -> None:
    await asyncio.sleep(3600)
"""


def test_readiness_probe_timeout_covers_the_slowest_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14 item 11: a check with `timeout = "3s"` got a readiness probe `timeoutSeconds: 2`,
    so the kubelet gave up on /ready before the runtime had its answer. Here the check hangs until
    its own timeout; a client with the generated probe's timeout (what the kubelet enforces) must
    receive the answer, and the runtime's check timeouts come from the same model."""
    (tmp_path / "hang_checks.py").write_text(HANGING_CHECK)
    config_path = tmp_path / "pilothouse.toml"
    config_path.write_text(
        '[service]\nname = "slowdeps"\napp = "tests.apps.slow:app"\n'
        '[[checks]]\nname = "quick"\nkind = "disk"\n'
        '[[checks]]\nname = "upstream"\nkind = "python"\ntarget = "hang_checks:forever"\ntimeout = "3s"\n'
        "critical = false\n"
    )
    out = tmp_path / "deploy"
    generated = run_cli("generate", "deploy", "--config", str(config_path), "--out", str(out))
    assert generated.returncode == 0, generated.stderr
    container = one(rendered(out, "base"), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    probe = container["readinessProbe"]
    config = load_config(config_path, environ={})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert max(c.timeout for c in build_checks(config)) < probe["timeoutSeconds"]  # the runtime's own
    with ServeProcess(config_path, cwd=ROOT, env={"PYTHONPATH": str(tmp_path)}) as server:
        answer = httpx.get(f"{server.ops_url}{probe['httpGet']['path']}", timeout=probe["timeoutSeconds"])
    upstream = answer.json()["checks"]["upstream"]
    assert upstream["status"] == "warn" and "timed out after 3s" in upstream["error"], upstream


@pytest.mark.parametrize("startup", ["500ms", "7.5s", "60s", "5m"])
def test_every_artifact_allows_the_same_startup_window(startup: str) -> None:
    """The runtime's startup_timeout, the startup probe's window (failureThreshold x period), the
    Dockerfile and compose start periods and systemd's TimeoutStartSec come from one number
    (with "500ms" the probe allowed 2 s while the others allowed 5 s). A SIGTERM during that
    window cancels the startup, so the grace period need not cover it: the forced exit comes
    before the kubelet's and systemd's kills."""
    config = load_config(SHOP, environ={"PILOTHOUSE_LIFECYCLE__STARTUP_TIMEOUT": startup})
    files = generate(config, SHOP.read_text())
    window = facts.startup_window_seconds(config)
    assert window >= config.lifecycle.startup_timeout
    deployment = yaml.safe_load(files["k8s/base/deployment.yaml"])
    probe = deployment["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    assert window <= probe["failureThreshold"] * probe["periodSeconds"] < window + probe["periodSeconds"]
    compose = yaml.safe_load(files["compose.yaml"])
    assert compose["services"]["shop"]["healthcheck"]["start_period"] == f"{window}s"
    assert f"--start-period={window}s" in files["Dockerfile"]
    assert f"TimeoutStartSec={window}s" in files["systemd/shop.service"]
    hard_exit = config.lifecycle.hard_exit_after
    assert hard_exit < facts.stop_timeout_seconds(config) <= facts.grace_period_seconds(config)


def test_config_check_prints_the_numbers_the_artifacts_use(shop_bundle: Path) -> None:
    """`config check` names each number: its pod grace period is the Deployment's, its stop
    timeout is compose's `stop_grace_period` (it once printed the stop timeout as "grace period")."""
    out = run_cli("config", "check", str(SHOP), "--format", "json", env={})
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    pod = one(rendered(shop_bundle, "base"), "Deployment")["spec"]["template"]["spec"]
    assert summary["pod_grace_period_seconds"] == pod["terminationGracePeriodSeconds"]
    compose = yaml.safe_load((shop_bundle / "compose.yaml").read_text())["services"]["shop"]
    assert f"{summary['stop_timeout_seconds']}s" == compose["stop_grace_period"]
    text = run_cli("config", "check", str(SHOP), env={}).stdout
    assert f"pod grace period {pod['terminationGracePeriodSeconds']}s" in text
