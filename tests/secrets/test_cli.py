"""`pilothouse secrets check|rotate-test|policy` as an operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pilothouse.config import load_config
from pilothouse.secrets import vault_policy
from tests.helpers import PILOTHOUSE, run_cli, write_config
from tests.secrets.conftest import ROOT_TOKEN, Bao
from tests.secrets.kube import SecretVolume

CONFIG = """
[service]
name = "shop"

[[checks]]
name = "db"
kind = "postgres"
url = {{ secret = "db.url" }}

[secrets]
mount_dir = "{mount}"
sources = ["kubernetes", "env"]
declare = [{{ secret = "db.password" }}, {{ secret = "feature.flag-key", required = false }}]
"""


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory other users may enter (pytest's tmp dirs are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="pilothouse-secrets-"))
    path.chmod(0o755)
    yield path
    subprocess.run(["rm", "-rf", str(path)], check=True)


def test_check_prints_source_and_age_never_the_value(workdir: Path) -> None:
    SecretVolume(workdir / "mnt", "db", {"url": "postgresql://app:cli-pass-1@db/shop"})
    # Written an hour ago (the age is whole hours from then on): "0s" or "1s" would depend on
    # how fast this machine runs the command.
    hour_ago = time.time() - 3660
    os.utime(workdir / "mnt" / "db" / "url", (hour_ago, hour_ago))
    config = write_config(workdir, CONFIG.format(mount=workdir / "mnt"))
    result = run_cli("secrets", "check", "--config", str(config), env={"SHOP_DB_PASSWORD": "env-pass-2"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"ok       db.url: kubernetes {workdir}/mnt/db/url (age 1h)",
        "ok       db.password: env $SHOP_DB_PASSWORD (age unknown)",
        f"unset    feature.flag-key (optional): looked in kubernetes {workdir}/mnt/feature/flag-key, "
        "env SHOP_FEATURE_FLAG_KEY",
        "3/3 secret(s) ok",
    ]
    as_json = run_cli(
        "secrets",
        "check",
        "--config",
        str(config),
        "--format",
        "json",
        env={"SHOP_DB_PASSWORD": "env-pass-2"},
    )
    report = json.loads(as_json.stdout)
    assert report["ok"] is True
    assert [(r["secret"], r["status"]) for r in report["secrets"]] == [
        ("db.url", "ok"),
        ("db.password", "ok"),
        ("feature.flag-key", "unset"),
    ]
    for value in ("cli-pass-1", "env-pass-2"):
        assert value not in result.stdout + result.stderr + as_json.stdout + as_json.stderr


def test_check_exits_1_when_a_required_secret_is_missing(workdir: Path) -> None:
    config = write_config(workdir, CONFIG.format(mount=workdir / "mnt"))
    env = {k: v for k, v in os.environ.items() if k != "SHOP_DB_PASSWORD"}
    result = subprocess.run(
        [*PILOTHOUSE, "secrets", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"MISSING  db.url: looked in kubernetes {workdir}/mnt/db/url, env SHOP_DB_URL" in result.stdout
    assert "1/3 secret(s) ok" in result.stdout


def test_unreadable_secret_file_is_an_error(workdir: Path) -> None:
    """Run as an unprivileged user (root reads anything) so the mode really denies the read."""
    SecretVolume(workdir / "mnt", "db", {"url": "postgresql://app:unreadable-3@db/shop"})
    (workdir / "mnt" / "db").chmod(0o755)
    for entry in (workdir / "mnt" / "db").iterdir():
        if entry.is_dir() and not entry.is_symlink():
            entry.chmod(0o755)
            (entry / "url").chmod(0o600)
    (workdir / "mnt").chmod(0o755)
    config = write_config(workdir, CONFIG.format(mount=workdir / "mnt"))
    config.chmod(0o644)
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    result = subprocess.run(
        [*prefix, *PILOTHOUSE, "secrets", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=workdir,
        env={**os.environ, "SHOP_DB_PASSWORD": "p-123", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert result.returncode == 1, result.stderr
    assert (
        f"ERROR    db.url: secret 'db.url': cannot read secret file {workdir}/mnt/db/url: Permission denied"
        in result.stdout
    )
    assert "unreadable-3" not in result.stdout + result.stderr


def test_rotate_test_reports_a_kubernetes_rotation(workdir: Path) -> None:
    volume = SecretVolume(workdir / "mnt", "db", {"url": "u-1111", "password": "rot-pass-1"})
    config = write_config(workdir, CONFIG.format(mount=workdir / "mnt"))
    proc = subprocess.Popen(
        [
            *PILOTHOUSE,
            "secrets",
            "rotate-test",
            "--config",
            str(config),
            "--expect",
            "db.password",
            "--timeout",
            "20s",
            "--interval",
            "100ms",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.startswith("watching db.password, db.url, feature.flag-key every 0.1s for 20s")
    time.sleep(0.3)
    volume.update({"url": "u-1111", "password": "rot-pass-2"})
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"rotated  db.password: kubernetes {workdir}/mnt/db/password version ")
    assert lines[-1] == "ok: rotation picked up for db.password without a restart"
    assert "rot-pass" not in first + out + err


def test_rotate_test_times_out_with_exit_1(workdir: Path) -> None:
    SecretVolume(workdir / "mnt", "db", {"url": "u-2222", "password": "p-2222"})
    config = write_config(workdir, CONFIG.format(mount=workdir / "mnt"))
    result = run_cli(
        "secrets", "rotate-test", "--config", str(config), "--timeout", "300ms", "--interval", "100ms"
    )
    assert result.returncode == 1
    assert "no rotation seen for db.password, db.url, feature.flag-key within 0.3s" in result.stderr
    bad = run_cli("secrets", "rotate-test", "--config", str(config), "--expect", "nope.x")
    assert bad.returncode == 2 and "--expect: nope.x not referenced in" in bad.stderr


def test_policy_and_check_against_openbao(bao: Bao, workdir: Path) -> None:
    prefix = f"cli{int(time.time() * 1000)}"
    bao.client().secrets.kv.v2.create_or_update_secret(
        path=f"{prefix}/db", secret={"url": "u", "password": "kv-9"}
    )
    config = write_config(
        workdir,
        f"""
        [service]
        name = "shop"
        [secrets]
        sources = ["vault"]
        declare = [{{ secret = "db.password" }}]
        [secrets.vault]
        address = "{bao.address}"
        path = "{prefix}"
        """,
    )
    policy = run_cli("secrets", "policy", "--config", str(config))
    assert policy.returncode == 0
    assert policy.stdout == vault_policy(load_config(config))
    assert f'path "secret/data/{prefix}/db" {{\n  capabilities = ["read"]\n}}' in policy.stdout
    bao.cli("policy", "write", f"shop-{prefix}", "-", stdin=policy.stdout)  # the server parses it
    check = run_cli("secrets", "check", "--config", str(config), env={"VAULT_TOKEN": ROOT_TOKEN})
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.startswith(f"ok       db.password: vault secret/{prefix}/db [password] (age ")
    assert "kv-9" not in check.stdout
