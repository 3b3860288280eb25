"""`pilothouse serve` with Vault/OpenBao as the source: an unreachable server stops startup with
one line; a running service renews and finally revokes its leased database credentials at
shutdown, so they do not outlive the process."""

from __future__ import annotations

from pathlib import Path

from pilothouse.config import load_config
from pilothouse.secrets import vault_policy
from tests.helpers import ROOT, ServeProcess, free_port, run_cli, write_config
from tests.secrets.conftest import Bao, login_with_approle

CONFIG = """
[service]
name = "shop"
app = "tests.secrets.rotation_app:app"

[secrets]
sources = ["vault"]
watch_interval = "200ms"
declare = [{{ secret = "db.password" }}, {{ secret = "db.username" }}]

[secrets.vault]
address = "{address}"
timeout = "2s"
dynamic = {{ db = "{path}" }}
{auth}

[lifecycle]
pre_stop_delay = "0s"
drain_timeout = "2s"
"""


def test_unreachable_vault_stops_startup(tmp_path: Path) -> None:
    address = f"http://127.0.0.1:{free_port()}"
    config = write_config(tmp_path, CONFIG.format(address=address, path="database/creds/shop", auth=""))
    ops_port = free_port()
    result = run_cli(
        "serve",
        "--config",
        str(config),
        cwd=tmp_path,
        env={
            "PYTHONPATH": str(ROOT),
            "VAULT_TOKEN": "t-12345",
            "PILOTHOUSE_OPS__PORT": str(ops_port),
            "PILOTHOUSE_SERVICE__PORT": str(free_port()),
            "PILOTHOUSE_OPS__HOST": "127.0.0.1",
            "PILOTHOUSE_SERVICE__HOST": "127.0.0.1",
        },
    )
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("pilothouse: error:")]
    assert errors == [
        f"pilothouse: error: secret 'db.password': Vault at {address} is unreachable (checking the Vault "
        f"token): connection failed; secret 'db.username': Vault at {address} is unreachable (checking the "
        "Vault token): connection failed"
    ]
    assert "Traceback" not in result.stderr and "serving" not in result.stderr


def test_leases_are_revoked_at_shutdown(bao: Bao, database: str, approle: None, tmp_path: Path) -> None:
    plain = write_config(tmp_path, CONFIG.format(address=bao.address, path=database, auth=""), "plain.toml")
    ids = login_with_approle(bao, load_config(plain), "shop-serve")
    auth = f'auth = {{ method = "approle", role_id = "{ids["role_id"]}" }}'
    config = write_config(tmp_path, CONFIG.format(address=bao.address, path=database, auth=auth))
    assert "sys/leases/revoke" in vault_policy(load_config(config))
    client = bao.client()

    def leases() -> list[str]:
        try:
            return list(client.sys.list_leases(f"{database}/")["data"]["keys"])
        except Exception:  # hvac raises InvalidPath when there are none
            return []

    before = set(leases())
    serve = ServeProcess(config, env={"PYTHONPATH": str(ROOT), "VAULT_SECRET_ID": ids["secret_id"]})
    with serve:
        ours = set(leases()) - before
        assert len(ours) == 1  # one lease for both keys of the group
        serve.signal()
        assert serve.wait() == 0
    assert not (set(leases()) & ours)
    assert ids["secret_id"] not in serve.output
