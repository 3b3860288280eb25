"""Vault/OpenBao through hvac against a real `bao server -dev` (OpenBao speaks Vault's HTTP API):
KV v2 reads and rotation, AppRole login under the generated least-privilege policy, leased
PostgreSQL credentials from the database engine (renewed, then rotated before the max TTL), and
clear errors for revoked or expired tokens and an unreachable server."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pilothouse.config import SecretRef, config_from_dict
from pilothouse.config.model import Config
from pilothouse.errors import SecretError
from pilothouse.secrets import SecretResolver, SecretStore, vault_policy
from pilothouse.secrets.providers.vault import VaultProvider
from tests.helpers import free_port
from tests.secrets.conftest import ROOT_TOKEN, Bao, login_with_approle


def vault_config(address: str, prefix: str, *, declare: list[str], **vault: Any) -> Config:
    return config_from_dict(
        {
            "service": {"name": "shop"},
            "secrets": {
                "sources": ["vault"],
                "declare": [{"secret": name} for name in declare],
                "vault": {
                    "address": address,
                    "path": prefix,
                    "refresh_interval": "1s",
                    "timeout": "2s",
                    **vault,
                },
            },
        }
    )


@pytest.fixture
def prefix(bao: Bao) -> str:
    """A KV path prefix of its own per test: secret/<prefix>/<group>."""
    return f"t{uuid.uuid4().hex[:10]}"


def test_kv_v2_read_and_rotation_to_a_new_version(bao: Bao, prefix: str) -> None:
    kv = bao.client().secrets.kv.v2
    kv.create_or_update_secret(
        path=f"{prefix}/db", secret={"url": "postgresql://app@db/shop", "password": "v1-pass"}
    )
    config = vault_config(bao.address, prefix, declare=["db.url", "db.password"])
    store = SecretStore(SecretResolver(config, environ={"VAULT_TOKEN": ROOT_TOKEN}), config.secret_refs())
    try:
        store.load_all()
        password = store.get("db.password")
        assert password.reveal() == "v1-pass"
        assert password.resolved is not None
        assert (password.resolved.source, password.resolved.version) == ("vault", "1")
        assert password.resolved.location == f"secret/{prefix}/db [password]"
        assert (
            password.resolved.updated_at is not None and abs(password.resolved.updated_at - time.time()) < 60
        )

        kv.create_or_update_secret(
            path=f"{prefix}/db", secret={"url": "postgresql://app@db/shop", "password": "v2-pass"}
        )
        assert store.refresh() == []  # cached for refresh_interval (1s): no request yet
        time.sleep(1.1)
        assert [s.name for s in store.refresh()] == ["db.password"]
        assert password.reveal() == "v2-pass" and password.resolved.version == "2"
    finally:
        store.close()


def test_approle_login_under_the_generated_policy(bao: Bao, prefix: str, approle: None) -> None:
    bao.client().secrets.kv.v2.create_or_update_secret(path=f"{prefix}/api", secret={"token": "api-tok-1"})
    bao.client().secrets.kv.v2.create_or_update_secret(path=f"{prefix}/other", secret={"key": "not-yours"})
    allowed = vault_config(bao.address, prefix, declare=["api.token"])
    ids = login_with_approle(bao, allowed, f"shop-{prefix}")
    auth = {"method": "approle", "role_id": ids["role_id"], "secret_id_env": "SHOP_SECRET_ID"}
    config = vault_config(bao.address, prefix, declare=["api.token", "other.key"], auth=auth)
    resolver = SecretResolver(config, environ={"SHOP_SECRET_ID": ids["secret_id"]})
    try:
        assert resolver.get(SecretRef(secret="api.token")) == "api-tok-1"
        with pytest.raises(SecretError) as err:  # least privilege: a group the config did not name
            resolver.get(SecretRef(secret="other.key"))
        assert str(err.value) == (
            f"secret 'other.key': Vault at {bao.address} refused reading secret/{prefix}/other: "
            "permission denied (token expired or revoked, or the policy does not allow it)"
        )
    finally:
        resolver.close()


def test_wrong_approle_secret_id_is_one_clear_line(bao: Bao, prefix: str, approle: None) -> None:
    config = vault_config(bao.address, prefix, declare=["api.token"])
    ids = login_with_approle(bao, config, f"shop-{prefix}")
    auth = {"method": "approle", "role_id": ids["role_id"]}
    config = vault_config(bao.address, prefix, declare=["api.token"], auth=auth)
    resolver = SecretResolver(config, environ={"VAULT_SECRET_ID": "wrong-secret-id-123"})
    with pytest.raises(SecretError) as err:
        resolver.get(SecretRef(secret="api.token"))
    message = str(err.value)
    assert message.startswith(
        f"secret 'api.token': Vault at {bao.address} refused logging in with approle auth: "
    )
    assert message.endswith("invalid role or secret ID"), message
    assert "wrong-secret-id-123" not in message and "\n" not in message


def test_leased_database_credentials_are_renewed_then_rotated(
    bao: Bao, prefix: str, approle: None, database: str
) -> None:
    declare = ["db.username", "db.password"]
    plain = vault_config(bao.address, prefix, declare=declare, dynamic={"db": database})
    ids = login_with_approle(bao, plain, f"shop-{prefix}")
    auth = {"method": "approle", "role_id": ids["role_id"]}
    config = vault_config(bao.address, prefix, declare=declare, dynamic={"db": database}, auth=auth)
    resolver = SecretResolver(config, environ={"VAULT_SECRET_ID": ids["secret_id"]})
    store = SecretStore(resolver, config.secret_refs())
    provider = resolver.providers[0]
    assert isinstance(provider, VaultProvider)
    try:
        store.load_all()
        first_user = store.get("db.username").reveal()
        assert store.get("db.password").resolved.location == f"{database} [password]"  # type: ignore[union-attr]

        def connect() -> str:
            url = "postgresql://127.0.0.1:5432/test"
            user, password = store.get("db.username").reveal(), store.get("db.password").reveal()
            with psycopg.connect(url, user=user, password=password, connect_timeout=3) as conn:
                row = conn.execute("SELECT current_user").fetchone()
            assert row is not None
            return str(row[0])

        assert connect() == first_user
        rotated: list[str] = []
        deadline = time.monotonic() + 15
        while not rotated and time.monotonic() < deadline:
            time.sleep(0.2)
            rotated = [s.name for s in store.refresh()]
            assert store.failures == {}
        assert provider.renewals >= 1  # renewed while the max TTL allowed it
        assert sorted(rotated) == ["db.password", "db.username"]  # then fresh credentials
        assert store.get("db.username").reveal() != first_user
        assert connect() == store.get("db.username").reveal()
    finally:
        store.close()


@pytest.mark.parametrize(("max_ttl", "logins"), [("30s", {1}), ("2s", {2, 3, 4})])
def test_login_token_is_renewed_or_the_login_repeated(
    bao: Bao, prefix: str, approle: None, max_ttl: str, logins: set[int]
) -> None:
    """A 2s AppRole token: renewed while its max TTL allows, else a fresh login; reads never fail."""
    bao.client().secrets.kv.v2.create_or_update_secret(path=f"{prefix}/api", secret={"token": "tt-1"})
    config = vault_config(bao.address, prefix, declare=["api.token"])
    ids = login_with_approle(bao, config, f"shop-{prefix}")
    bao.client().auth.approle.create_or_update_approle(
        f"shop-{prefix}", token_policies=[f"shop-{prefix}"], token_ttl="2s", token_max_ttl=max_ttl
    )
    auth = {"method": "approle", "role_id": ids["role_id"]}
    config = vault_config(bao.address, prefix, declare=["api.token"], auth=auth)
    resolver = SecretResolver(config, environ={"VAULT_SECRET_ID": ids["secret_id"]})
    store = SecretStore(resolver, config.secret_refs())
    provider = resolver.providers[0]
    assert isinstance(provider, VaultProvider)
    try:
        store.load_all()
        deadline = time.monotonic() + 4.5  # more than twice the token TTL
        while time.monotonic() < deadline:
            time.sleep(0.25)
            store.refresh()
            assert store.failures == {}
        assert provider.logins in logins
    finally:
        store.close()


@pytest.mark.parametrize("how", ["revoked", "expired"])
def test_revoked_or_expired_token(bao: Bao, prefix: str, how: str) -> None:
    bao.client().secrets.kv.v2.create_or_update_secret(
        path=f"{prefix}/db", secret={"password": "kept-pass-1"}
    )
    token = bao.client().auth.token.create(ttl="1h" if how == "revoked" else "2s", renewable=False)["auth"][
        "client_token"
    ]
    config = vault_config(bao.address, prefix, declare=["db.password"])
    store = SecretStore(SecretResolver(config, environ={"VAULT_TOKEN": token}), config.secret_refs())
    store.load_all()
    if how == "revoked":
        bao.client().auth.token.revoke(token)
    time.sleep(2.2)  # past refresh_interval (and the short TTL)
    store.refresh()
    assert store.get("db.password").reveal() == "kept-pass-1"  # the old value stays in use
    assert "permission denied" in store.failures["db.password"]

    fresh = SecretResolver(config, environ={"VAULT_TOKEN": token})
    with pytest.raises(SecretError) as err:
        fresh.get(SecretRef(secret="db.password"))
    assert str(err.value) == (
        f"secret 'db.password': Vault at {bao.address} refused checking the Vault token: permission denied "
        "(token expired or revoked, or the policy does not allow it)"
    )
    assert token not in str(err.value)


def test_unreachable_vault_and_missing_token(bao: Bao) -> None:
    address = f"http://127.0.0.1:{free_port()}"
    config = vault_config(address, "shop", declare=["db.password"])
    with pytest.raises(SecretError) as err:
        SecretResolver(config, environ={"VAULT_TOKEN": "t-1234"}).get(SecretRef(secret="db.password"))
    assert str(err.value) == (
        f"secret 'db.password': Vault at {address} is unreachable (checking the Vault token): "
        "connection failed"
    )
    config = vault_config(bao.address, "shop", declare=["db.password"])
    with pytest.raises(SecretError, match=r"no Vault token: \$VAULT_TOKEN is empty or not set"):
        SecretResolver(config, environ={}).get(SecretRef(secret="db.password"))


class FakeTokenReview:
    """Stands in for the Kubernetes API's TokenReview endpoint (there is no cluster here): it
    vouches for one service account, so the real OpenBao Kubernetes auth method can run."""

    def __init__(self) -> None:
        self.reviewed: list[str] = []
        reviewed = self.reviewed

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                reviewed.append(body["spec"]["token"])
                user = {"username": "system:serviceaccount:default:shop", "uid": "uid-1", "groups": []}
                data = json.dumps({"kind": "TokenReview", "status": {"authenticated": True, "user": user}})
                self.send_response(201)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def service_account_jwt() -> str:
    def part(data: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {
        "iss": "kubernetes/serviceaccount",
        "sub": "system:serviceaccount:default:shop",
        "kubernetes.io/serviceaccount/namespace": "default",
        "kubernetes.io/serviceaccount/service-account.name": "shop",
        "kubernetes.io/serviceaccount/service-account.uid": "uid-1",
    }
    return f"{part({'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


def test_kubernetes_auth_login(bao: Bao, prefix: str, tmp_path: Path) -> None:
    client = bao.client()
    client.secrets.kv.v2.create_or_update_secret(path=f"{prefix}/db", secret={"password": "k8s-auth-pass"})
    kube = FakeTokenReview()
    try:
        mount = f"k8s-{prefix}"
        client.sys.enable_auth_method("kubernetes", path=mount)
        client.sys.enable_secrets_engine("pki", path=f"pki-{prefix}")
        ca = client.write(f"pki-{prefix}/root/generate/internal", common_name="fake-kube-ca")["data"]
        client.write(
            f"auth/{mount}/config",
            kubernetes_host=kube.url,
            kubernetes_ca_cert=ca["certificate"],
            token_reviewer_jwt="reviewer",
            disable_local_ca_jwt=True,
        )
        plain = vault_config(bao.address, prefix, declare=["db.password"])
        client.sys.create_or_update_policy(name=mount, policy=vault_policy(plain))
        client.write(
            f"auth/{mount}/role/shop",
            bound_service_account_names="shop",
            bound_service_account_namespaces="default",
            token_policies=mount,
            ttl="1h",
        )
        jwt = tmp_path / "token"
        jwt.write_text(service_account_jwt())
        auth = {"method": "kubernetes", "role": "shop", "jwt_file": str(jwt), "mount": mount}
        config = vault_config(bao.address, prefix, declare=["db.password"], auth=auth)
        resolver = SecretResolver(config, environ={})
        try:
            assert resolver.get(SecretRef(secret="db.password")) == "k8s-auth-pass"
        finally:
            resolver.close()
        assert kube.reviewed == [jwt.read_text()]
    finally:
        kube.close()


def test_a_lease_falling_due_during_a_refresh_rotates_all_of_its_keys_at_once(
    bao: Bao, prefix: str, database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store looks up `db.username`, then `db.password`; when the lease falls due between
    the two (here: the leases' clock jumps past it right after the first lookup), both come
    from the same lease — the old pair in this pass, the new pair in the next — never the old
    username with a new password. The test above saw that pair under load: a renewal granting
    exactly a third of the TTL left the lease due again for the second key's lookup."""
    from pilothouse.secrets.providers import vault_leases

    config = vault_config(
        bao.address, prefix, declare=["db.username", "db.password"], dynamic={"db": database}
    )
    resolver = SecretResolver(config, environ={"VAULT_TOKEN": ROOT_TOKEN})
    store = SecretStore(resolver, config.secret_refs())
    provider = resolver.providers[0]
    assert isinstance(provider, VaultProvider)
    skew = [0.0]
    clock = type(
        "Clock", (), {"monotonic": staticmethod(lambda: time.monotonic() + skew[0]), "time": time.time}
    )
    monkeypatch.setattr(vault_leases, "time", clock)
    lookup = provider.lookup

    def lookup_then_the_lease_falls_due(ref: SecretRef) -> Any:
        found = lookup(ref)
        lease = provider.leases.get("db")
        assert lease is not None
        lease.renewable = False  # so falling due means new credentials, not a renewal
        skew[0] = lease.expires_at - time.monotonic() + 1
        return found

    try:
        store.load_all()
        first = (store.get("db.username").reveal(), store.get("db.password").reveal())
        monkeypatch.setattr(provider, "lookup", lookup_then_the_lease_falls_due)
        rotated = [s.name for s in store.refresh()]
        assert rotated == [], "one pass saw the lease as due for one key and not for the other"
        rotated = [s.name for s in store.refresh()]
        assert sorted(rotated) == ["db.password", "db.username"]
        pair = (store.get("db.username").reveal(), store.get("db.password").reveal())
        assert pair[0] != first[0]
        with psycopg.connect("postgresql://127.0.0.1:5432/test", user=pair[0], password=pair[1]) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (pair[0],)
    finally:
        store.close()
