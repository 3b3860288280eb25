"""Literal credentials never reach a generated artifact (issue 14 item 5).

The whole config file becomes the Kubernetes ConfigMap, and `[deploy] env` becomes Deployment env,
systemd `Environment=` and compose `environment:`. Before the fix `config show` masked these
values but `generate` wrote them in clear. Every case is refused with one line (value masked),
exit 2, and no artifact of any family is written; the control case proves the same config
without the credential generates.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_cli, write_config

BASE = """
[service]
name = "shop"
app = "shop.app:app"

[[checks]]
name = "db"
kind = "postgres"
url = {db_url}

[jobs]
path = "jobs.sqlite3"

[deploy]
image = "registry.example.com/shop"
otlp_endpoint = {otlp}
env = {{ {env} }}
migrations = {{ command = [{migrate}] }}

[deploy.environments.prod.env]
{prod_env}
"""
CLEAN = {
    "db_url": '{ secret = "db.url" }',
    "otlp": '"http://otel-collector.monitoring.svc:4318"',
    "env": 'LOG_LEVEL = "info"',
    "migrate": '"alembic", "upgrade", "head"',
    "prod_env": 'LOG_LEVEL = "warning"',
}
LITERAL = "hunter2-Xq9"
STRIPE = "sk_live_51HxLiteralStripeKey"
CASES = {
    "password in the URL's query": ("db_url", f'"postgresql://db/shop?password={LITERAL}"', LITERAL),
    "libpq key=value DSN": ("db_url", f'"host=db dbname=shop password={LITERAL}"', LITERAL),
    "URL password in [deploy] env": ("env", f'DATABASE_URL = "postgresql://u:{LITERAL}@db/shop"', LITERAL),
    "vendor key in [deploy] env": ("env", f'STRIPE_API_KEY = "{STRIPE}"', STRIPE),
    "secret-named variable in [deploy] env": ("env", f'SHOP_DB_PASSWORD = "{LITERAL}"', LITERAL),
    "secret-named variable in an environment": ("prod_env", f'API_TOKEN = "{LITERAL}"', LITERAL),
    "credentials in the OTLP endpoint": ("otlp", f'"http://otel:{LITERAL}@collector:4318"', LITERAL),
    "password in the migrations command": ("migrate", f'"migrate", "--dsn", "password={LITERAL}"', LITERAL),
}


def _config(tmp_path: Path, **change: str) -> Path:
    return write_config(tmp_path, BASE.format(**{**CLEAN, **change}))


@pytest.mark.parametrize("field,value,literal", list(CASES.values()), ids=list(CASES))
def test_generation_refuses_a_literal_credential(
    tmp_path: Path, field: str, value: str, literal: str
) -> None:
    config = _config(tmp_path, **{field: value})
    for target in ("deploy", "monitoring"):
        out = tmp_path / f"out-{target}"
        result = run_cli("generate", target, "--config", str(config), "--out", str(out))
        assert result.returncode == 2, (target, result.stdout, result.stderr)
        assert not out.exists()  # no artifact of any family
        assert literal not in result.stdout + result.stderr  # the error masks it too
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "secret" in result.stderr  # says where it belongs


def test_the_same_config_without_the_credential_generates(tmp_path: Path) -> None:
    """The control: every family is written, and no generated file holds a credential."""
    config = _config(tmp_path)
    for target in ("deploy", "monitoring"):
        out = tmp_path / f"out-{target}"
        result = run_cli("generate", target, "--config", str(config), "--out", str(out))
        assert result.returncode == 0, result.stderr
        assert any(p.is_file() for p in out.rglob("*"))
    deploy = tmp_path / "out-deploy"
    assert {"k8s", "compose.yaml", "systemd", "Dockerfile"} <= {p.name for p in deploy.iterdir()}
