"""The config model: defaults, overrides, durations and derived values."""

from __future__ import annotations

from pathlib import Path

import pytest

from pilothouse.cli import main
from pilothouse.config import SecretRef, config_from_dict, load_config
from pilothouse.durations import format_duration, parse_duration
from tests.helpers import write_config


def test_safe_defaults() -> None:
    config = config_from_dict({"service": {"name": "shop"}})
    assert (config.service.port, config.ops.port) == (8080, 9090)
    assert config.probes.liveness_path == "/health" and config.probes.readiness_path == "/ready"
    assert config.telemetry.traces == "none"
    assert config.ops.admin_token_env == "PILOTHOUSE_ADMIN_TOKEN"


@pytest.mark.parametrize(
    "text,seconds", [("500ms", 0.5), ("5s", 5), ("2m", 120), ("1h30m", 5400), ("1.5s", 1.5), ("1d", 86400)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


def test_environment_overrides_nested_values() -> None:
    config = config_from_dict(
        {"service": {"name": "shop"}, "lifecycle": {"drain_timeout": "20s"}},
        environ={
            "PILOTHOUSE_SERVICE__PORT": "8081",
            "PILOTHOUSE_LIFECYCLE__DRAIN_TIMEOUT": "45s",
            "PILOTHOUSE_ADMIN_TOKEN": "not-an-override",
            "PILOTHOUSE_DEPLOY__RESOURCES__MEMORY": "1Gi",
        },
    )
    assert config.service.port == 8081
    assert config.lifecycle.drain_timeout == 45
    assert config.deploy.resources.memory == "1Gi"


def test_grace_period_is_derived_from_lifecycle() -> None:
    config = config_from_dict(
        {
            "service": {"name": "shop"},
            "lifecycle": {"pre_stop_delay": "5s", "drain_timeout": "20s", "flush_timeout": "3s"},
        }
    )
    assert config.lifecycle.shutdown_budget == 28
    assert config.lifecycle.stop_timeout_seconds == 33
    assert config.lifecycle.pod_grace_period_seconds == 5 + 33


def test_secret_refs_are_collected() -> None:
    config = config_from_dict(
        {
            "service": {"name": "shop"},
            "checks": [
                {"name": "db", "kind": "postgres", "url": {"secret": "db.url"}},
                {"name": "cache", "kind": "redis", "url": "redis://cache:6379"},
            ],
        }
    )
    assert config.secret_refs() == [SecretRef(secret="db.url")]


def test_show_masks_credentials_and_check_summarises(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        tmp_path,
        """
        [service]
        name = "shop"
        [[checks]]
        name = "db"
        kind = "postgres"
        url = { secret = "db.url" }
    """,
    )
    assert main(["config", "check", str(path)]) == 0
    assert "ok — service 'shop', 1 check(s)" in capsys.readouterr().out
    assert main(["config", "show", str(path), "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert '"secret": "db.url"' in out and '"drain_timeout": "20s"' in out


def test_example_configs_are_valid() -> None:
    root = Path(__file__).resolve().parents[2] / "examples"
    for path in root.glob("*/pilothouse.toml"):
        assert load_config(path).service.name
