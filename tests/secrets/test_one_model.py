"""The deploy bundle mounts exactly the secrets the config names, where the resolver reads them:
one model (`SecretResolver.mount_path`) for both sides."""

from __future__ import annotations

from pathlib import Path

import yaml

from pilothouse.config import SecretRef, load_config
from pilothouse.generators.deploy import generate
from pilothouse.secrets import SecretResolver
from tests.helpers import SHOP_DIR

EXTRA = """

[[checks]]
name = "orders-db"
kind = "postgres"
url = { secret = "db.url" }

[secrets]
declare = [{ secret = "db.password" }, { secret = "payments.api-key" }]
"""


def test_generated_mounts_are_where_the_resolver_reads(tmp_path: Path) -> None:
    text = (SHOP_DIR / "pilothouse.toml").read_text() + EXTRA
    (tmp_path / "pilothouse.toml").write_text(text)
    config = load_config(tmp_path / "pilothouse.toml")
    files = generate(config, text)
    deployment = yaml.safe_load(files["k8s/base/deployment.yaml"])
    pod = deployment["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "shop")
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v.get("secret", {}).get("secretName") for v in pod["volumes"]}
    resolver = SecretResolver(config)
    expected = {
        "db.url": "shop-db",
        "db.password": "shop-db",
        "payments.api-key": "shop-payments",
    }
    for name, secret_name in expected.items():
        path = resolver.mount_path(SecretRef(secret=name))
        assert volumes[mounts[str(path.parent)]] == secret_name, name
    secret_mounts = {p for p, v in mounts.items() if volumes.get(v)}
    assert secret_mounts == {"/var/run/secrets/pilothouse/db", "/var/run/secrets/pilothouse/payments"}
