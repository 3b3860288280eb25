"""Values that cannot make valid manifests fail at `pilothouse config check`, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import run_cli, write_config

BASE = """
[service]
name = "{name}"
"""


@pytest.mark.parametrize(
    ("name", "extra", "expected"),
    [
        ("shop", '[deploy]\nresources = { memory = "512MB" }', "deploy.resources.memory: '512MB' is invalid"),
        ("shop", '[deploy]\nresources = { cpu = "half" }', "deploy.resources.cpu: 'half' is invalid"),
        ("Shop_1", "", "service.name: 'Shop_1' is invalid: expected a DNS-1123 label"),
        ("shop", "[deploy]\nreplicas = 0\npdb = true", "deploy.replicas is 0 but deploy.pdb = true"),
        (
            "shop",
            "[deploy]\npdb = true\n[deploy.environments.dev]\nreplicas = 1",
            "deploy.environments.dev.replicas is 1 but deploy.pdb = true",
        ),
        ("shop", "[deploy]\nreplicas = 3\nmax_replicas = 2", "deploy.max_replicas (2) is below replicas (3)"),
        ("shop", '[deploy]\nkubernetes_version = "latest"', "deploy.kubernetes_version: 'latest' is invalid"),
        ("shop", '[deploy]\nnamespace = "My_NS"', "deploy.namespace: 'My_NS' is invalid"),
        (
            "shop",
            "[deploy.environments.Prod]\nreplicas = 1",
            "environment name 'Prod' is not a DNS-1123 label",
        ),
        ("shop", '[deploy]\nenv = { PILOTHOUSE_CONFIG = "/x" }', "deploy.env sets PILOTHOUSE_CONFIG"),
        ("shop", '[deploy.database]\nstorage = "10GB"', "deploy.database.storage: '10GB' is invalid"),
        ("a" * 51, "", "at most 50 are allowed"),
        # Rendered as `mountPath: mnt/db` while the resolver read it from the config's directory.
        (
            "shop",
            '[secrets]\nmount_dir = "mnt"',
            "secrets.mount_dir: 'mnt' is invalid: expected an absolute path",
        ),
    ],
)
def test_bad_deploy_values_fail_config_check(tmp_path: Path, name: str, extra: str, expected: str) -> None:
    path = write_config(tmp_path, BASE.format(name=name) + extra + "\n")
    result = run_cli("config", "check", "--config", str(path))
    assert result.returncode == 2, result.stdout
    assert expected in result.stderr
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr


def test_generate_refuses_unknown_environment_and_hand_edits(tmp_path: Path) -> None:
    path = write_config(tmp_path, BASE.format(name="shop") + "[deploy.environments.dev]\nreplicas = 1\n")
    out = tmp_path / "deploy"
    result = run_cli("generate", "deploy", "--config", str(path), "--out", str(out), "--env", "prod")
    assert result.returncode == 2
    assert "--env prod: no [deploy.environments.prod] (defined: dev)" in result.stderr
    assert not out.exists()
    assert run_cli("generate", "deploy", "--config", str(path), "--out", str(out)).returncode == 0
    unit = out / "systemd" / "shop.service"
    unit.write_text(unit.read_text().replace("Restart=on-failure", "Restart=always"))
    result = run_cli("generate", "deploy", "--config", str(path), "--out", str(out))
    assert result.returncode == 1
    assert "systemd/shop.service" in result.stderr and "--force" in result.stderr
    assert "Restart=always" in unit.read_text()
    assert run_cli("generate", "deploy", "--config", str(path), "--out", str(out), "--force").returncode == 0
    assert "Restart=on-failure" in unit.read_text()


def test_stack_with_an_unknown_callee_fails(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    write_config(tmp_path / "a", BASE.format(name="a") + '[deploy]\ncalls = ["b"]\n')
    stack = write_config(tmp_path, '[stack]\nname = "s"\ngateway = "a"\nservices = ["a"]\n', "stack.toml")
    result = run_cli("generate", "deploy", "--stack", str(stack), "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "deploy.calls: b is not a service of the stack" in result.stderr


def test_env_option_writes_only_that_overlay(tmp_path: Path) -> None:
    body = BASE.format(name="shop") + "[deploy.environments.dev]\nreplicas = 1\n[deploy.environments.prod]\n"
    path = write_config(tmp_path, body)
    out = tmp_path / "deploy"
    assert (
        run_cli("generate", "deploy", "--config", str(path), "--out", str(out), "--env", "prod").returncode
        == 0
    )
    assert sorted(p.name for p in (out / "k8s").iterdir() if p.is_dir()) == ["base", "prod"]
