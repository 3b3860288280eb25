"""Weak admin tokens are refused at startup (issue 14 item 6).

Before the fix a one-character token and `CHANGE-ME` (the value the generated
`secrets.example.yaml` suggested) both unlocked `/admin/drain`.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import yaml

from pilothouse.errors import ConfigError
from pilothouse.runtime.admin_auth import AdminAuth, admin_token
from tests.helpers import ROOT, run_cli, write_config

WEAK = {
    "one character": "x",
    "the old example placeholder": "CHANGE-ME",
    "placeholder padded to length": "change-me-change-me-change-me",
    "short": "tok-123456",
    "long but one character": "a" * 40,
    "long but two characters": "ab" * 20,
}


@pytest.mark.parametrize("token", list(WEAK.values()), ids=list(WEAK))
def test_weak_tokens_are_refused(token: str) -> None:
    with pytest.raises(ConfigError, match=r"admin token in \$T .* generate one with: openssl rand -hex 32"):
        AdminAuth("T", {"T": token})


def test_generated_tokens_and_no_token_are_accepted() -> None:
    for token in (secrets.token_hex(32), secrets.token_urlsafe(24), "tok-5d41402abc4b2a76b9719d911017c592"):
        assert AdminAuth("T", {"T": token}).enabled
    assert admin_token("T", {}) is None  # no token: the admin endpoints do not exist


@pytest.mark.parametrize("token", ["x", "CHANGE-ME"])
@pytest.mark.parametrize("command", [["serve"], ["serve", "--workers", "2"], ["jobs", "worker"]])
def test_serve_refuses_a_weak_token_in_one_line(tmp_path: Path, token: str, command: list[str]) -> None:
    path = write_config(
        tmp_path,
        '[service]\nname = "svc"\napp = "tests.apps.slow:app"\n[ops]\nadmin_token_env = "SVC_ADMIN_TOKEN"\n'
        '[jobs]\npath = "jobs.sqlite3"\n',
    )
    result = run_cli(*command, "--config", str(path), env={"SVC_ADMIN_TOKEN": token}, cwd=ROOT, timeout=30)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "the admin token in $SVC_ADMIN_TOKEN" in lines[0], lines


def test_the_generated_example_token_is_not_usable(tmp_path: Path) -> None:
    """The example Secret says how to make a token, and its placeholder is refused if applied as is."""
    out = tmp_path / "deploy"
    shop = ROOT / "examples" / "shop" / "pilothouse.toml"
    result = run_cli("generate", "deploy", "--config", str(shop), "--out", str(out))
    assert result.returncode == 0, result.stderr
    docs = list(yaml.safe_load_all((out / "k8s" / "secrets.example.yaml").read_text()))
    placeholder = next(d for d in docs if d["metadata"]["name"] == "shop-admin")["stringData"]["token"]
    assert "openssl rand -hex 32" in placeholder
    with pytest.raises(ConfigError, match="placeholder"):
        admin_token("SHOP_ADMIN_TOKEN", {"SHOP_ADMIN_TOKEN": placeholder})
