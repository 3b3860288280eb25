"""Compose and systemd files for a service with a database: wiring and hardening as the model says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pilothouse.config import load_config
from tests.generators.deploy.conftest import generate
from tests.helpers import ROOT, one, rendered, run_cli, write_config

ORDERS = ROOT / "examples/market/orders/pilothouse.toml"


@pytest.fixture(scope="module")
def orders_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("orders") / "deploy", "--config", str(ORDERS))


def test_development_compose_waits_for_healthy_dependencies(orders_bundle: Path) -> None:
    services = yaml.safe_load((orders_bundle / "compose.yaml").read_text())["services"]
    assert set(services) == {"orders", "postgres", "redis", "prometheus"}
    assert services["orders"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert all("healthcheck" in s for s in services.values())
    assert services["orders"]["environment"]["DATABASE_URL"] == "postgresql://orders@postgres:5432/orders"
    # The postgres check's secret is a compose secret mounted where the resolver looks for it.
    assert services["orders"]["secrets"][0]["target"] == "/var/run/secrets/pilothouse/db/url"
    prometheus = (orders_bundle / "compose.prometheus.yml").read_text()
    assert "orders:9090" in prometheus


def test_production_compose_is_hardened(orders_bundle: Path) -> None:
    document = yaml.safe_load((orders_bundle / "compose.prod.yaml").read_text())
    app, db = document["services"]["orders"], document["services"]["postgres"]
    for service in (app, db):
        assert service["read_only"] is True
        assert service["cap_drop"] == ["ALL"]
        assert service["security_opt"] == ["no-new-privileges:true"]
        assert service["restart"] == "unless-stopped"
        assert service["logging"]["options"] == {"max-file": "5", "max-size": "10m"}
    assert app["deploy"]["resources"]["limits"] == {"cpus": "0.25", "memory": str(256 * 2**20)}
    # reservations are the Deployment's requests (docs.docker.com/reference/compose-file/deploy/#resources)
    assert app["deploy"]["resources"]["reservations"] == {"cpus": "0.25", "memory": str(256 * 2**20)}
    assert db["deploy"]["resources"]["reservations"]["memory"] == str(512 * 2**20)
    assert app["networks"] == ["front", "back"] and db["networks"] == ["back"]
    assert document["networks"]["back"] == {"internal": True}
    assert db["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/db-password"
    assert app["environment"]["DATABASE_URL"].startswith("${DATABASE_URL:?")
    assert "pgdata" in document["volumes"]


def test_systemd_unit_timings_and_limits_come_from_the_model(orders_bundle: Path) -> None:
    config = load_config(ORDERS, environ={})
    unit = (orders_bundle / "systemd" / "orders.service").read_text()

    def value(key: str) -> str:
        match = re.search(rf"^{key}=(.*)$", unit, re.M)
        assert match, key
        return match.group(1)

    assert value("TimeoutStopSec") == f"{config.lifecycle.stop_timeout_seconds}s"
    assert value("KillSignal") == "SIGTERM"
    assert value("MemoryMax") == str(256 * 2**20)
    assert value("CPUQuota") == "25%"
    assert value("After") == "network-online.target postgresql.service"
    assert value("ExecStart") == "/opt/orders/venv/bin/pilothouse serve --config /etc/orders/pilothouse.toml"
    assert value("DynamicUser") == "yes"
    assert value("CapabilityBoundingSet") == ""


def test_build_context_depends_on_the_config_location_only(tmp_path: Path) -> None:
    """Issue 14 item 10: with the bundle outside the config's directory, `build.context` came out
    as `../../../tmp` (names of the directory `generate` ran in). The compose spec resolves a
    relative context from the project directory (the compose file's folder) and `dockerfile` from
    the context: both must land on the config's directory and the generated Dockerfile, from any
    working directory."""
    project = tmp_path / "projects" / "shop"
    project.mkdir(parents=True)
    config = project / "pilothouse.toml"
    config.write_text((ROOT / "examples/shop/pilothouse.toml").read_text())
    out = tmp_path / "bundles" / "shop"
    deep = tmp_path / "a" / "b" / "c" / "d"
    deep.mkdir(parents=True)
    seen = set()
    for cwd in (deep, tmp_path, project):
        result = run_cli("generate", "deploy", "--config", str(config), "--out", str(out), cwd=cwd)
        assert result.returncode == 0, result.stderr
        for name in ("compose.yaml", "compose.prod.yaml"):
            build = yaml.safe_load((out / name).read_text())["services"]["shop"]["build"]
            seen.add(build["context"])
            context = (out / build["context"]).resolve()
            assert context == project.resolve()
            assert (context / build["dockerfile"]).resolve() == (out / "Dockerfile").resolve()
    assert seen == {"../../projects/shop"}


def _env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


_REQUIRED = re.compile(r"\$\{(\w+):\?[^}]*\}")


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR:?message}`: the value of VAR, an error when it is unset or empty
    (https://docs.docker.com/reference/compose-file/interpolation/)."""

    def one(match: re.Match[str]) -> str:
        assert env.get(match.group(1)), f"compose would refuse: {match.group(1)} is unset or empty"
        return env[match.group(1)]

    return _REQUIRED.sub(one, value)


def _secrets_check(env: dict[str, str]) -> str:
    result = run_cli("secrets", "check", "--config", str(ORDERS), "--format", "json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_compose_dev_resolves_every_secret_with_the_generated_examples(
    orders_bundle: Path, tmp_path: Path
) -> None:
    """The app container's environment (interpolated from compose.dev.env) and its compose
    secrets (the generated secrets.dev files, put where their `target` says) satisfy
    `pilothouse secrets check`; the database URL names the compose `postgres` service."""
    document = yaml.safe_load((orders_bundle / "compose.yaml").read_text())
    app, db = document["services"]["orders"], document["services"]["postgres"]
    dotenv = _env_file(orders_bundle / "compose.dev.env")
    env = {
        k: _interpolate(str(v), dotenv)
        for k, v in app["environment"].items()
        if k not in ("PILOTHOUSE_CONFIG", "PYTHONPATH")
    }
    root = tmp_path / "container"
    mount_dir = load_config(ORDERS, environ={}).secrets.mount_dir
    for use in app["secrets"]:
        source = orders_bundle / document["secrets"][use["source"]]["file"]
        target = root / use["target"].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.read_text())
        url = source.read_text().strip()
        assert url.startswith(f"postgresql://{db['environment']['POSTGRES_USER']}@postgres:5432/")
    report = _secrets_check({**env, "PILOTHOUSE_SECRETS__MOUNT_DIR": str(root) + mount_dir})
    assert '"kubernetes' in report and "not found" not in report
    assert "postgres" in document["services"]
    assert env["DATABASE_URL"].endswith(f"@postgres:5432/{db['environment']['POSTGRES_DB']}")


def test_systemd_environment_satisfies_secrets_check(orders_bundle: Path, tmp_path: Path) -> None:
    """The unit's Environment= lines and the EnvironmentFile example (the unit used to exit with
    "required secret 'db.url' not found"): no Secret volume exists on the host."""
    unit = (orders_bundle / "systemd" / "orders.service").read_text()
    env = dict(re.findall(r"^Environment=([^=]+)=(.*)$", unit, re.M))
    env.update(_env_file(orders_bundle / "systemd" / "orders.env.example"))
    assert "DATABASE_URL" in env and env["ORDERS_ADMIN_TOKEN"]
    report = _secrets_check({**env, "PILOTHOUSE_SECRETS__MOUNT_DIR": str(tmp_path / "no-mounts")})
    assert "$ORDERS_DB_URL" in report


OTLP = """
[service]
name = "traced"
[telemetry]
traces = "otlp"
{extra}
"""


@pytest.mark.parametrize(
    ("extra", "compose", "systemd"),
    [
        ("", None, None),
        (
            '[deploy.compose]\notlp_endpoint = "http://otel-collector:4318"\n'
            '[deploy.systemd]\notlp_endpoint = "http://127.0.0.1:4318"',
            "http://otel-collector:4318",
            "http://127.0.0.1:4318",
        ),
    ],
)
def test_each_target_gets_its_own_otlp_endpoint(
    tmp_path: Path, extra: str, compose: str | None, systemd: str | None
) -> None:
    """The pod's collector is a Kubernetes DNS name; compose and systemd used to get it too."""
    config = write_config(tmp_path, OTLP.format(extra=extra))
    out = generate(tmp_path / "deploy", "--config", str(config))
    pod = one(rendered(out, "base"), "Deployment")["spec"]["template"]["spec"]["containers"][0]["env"]
    pod_otlp = {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector.monitoring.svc:4318"}
    assert pod_otlp in pod
    app = yaml.safe_load((out / "compose.yaml").read_text())["services"]["traced"]["environment"]
    assert app.get("OTEL_EXPORTER_OTLP_ENDPOINT") == compose
    unit = dict(re.findall(r"^Environment=([^=]+)=(.*)$", (out / "systemd/traced.service").read_text(), re.M))
    assert unit.get("OTEL_EXPORTER_OTLP_ENDPOINT") == systemd
