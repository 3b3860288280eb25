"""Compose and systemd files for a service with a database: wiring and hardening as the model says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from pilothouse.config import load_config
from tests.generators.deploy.conftest import generate
from tests.helpers import ROOT

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
