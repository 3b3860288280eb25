"""The deploy bundle mounts exactly the secrets the config names, where the resolver reads them:
one model (`SecretResolver.mount_path`) for both sides."""

from __future__ import annotations

from pathlib import Path

import yaml

from pilothouse.config import SecretRef, load_config
from pilothouse.secrets import SecretResolver
from tests.helpers import SHOP_DIR, one, rendered, run_cli

EXTRA = """

[[checks]]
name = "orders-db"
kind = "postgres"
url = { secret = "db.url" }

[secrets]
declare = [{ secret = "db.password" }, { secret = "payments.api-key" }]
"""


def test_generated_mounts_are_where_the_resolver_reads(tmp_path: Path) -> None:
    """As the kubelet lays them out: each Secret the example file names, mounted where the
    rendered Deployment says, one file per key (a `secret` volume without `items`; Kubernetes docs,
    "Using Secrets as files from a Pod"), under a root standing in for the container's filesystem.
    The resolver, reading from the config's mount_dir under that root, finds every declared
    secret with the value written into its Secret's key."""
    text = (SHOP_DIR / "pilothouse.toml").read_text() + EXTRA
    (tmp_path / "pilothouse.toml").write_text(text)
    config = load_config(tmp_path / "pilothouse.toml", environ={})
    bundle = tmp_path / "deploy"
    generated = run_cli("generate", "deploy", "-c", str(tmp_path / "pilothouse.toml"), "--out", str(bundle))
    assert generated.returncode == 0, generated.stderr
    pod = one(rendered(bundle, "base"), "Deployment")["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "shop")
    secret_volumes = {v["name"]: v["secret"] for v in pod["volumes"] if "secret" in v}
    examples = {
        d["metadata"]["name"]: d["stringData"]
        for d in yaml.safe_load_all((bundle / "k8s" / "secrets.example.yaml").read_text())
        if d
    }
    root = tmp_path / "container"
    written: dict[tuple[str, str], str] = {}
    for mount in container["volumeMounts"]:
        volume = secret_volumes.get(mount["name"])
        if volume is None:
            continue
        assert "items" not in volume  # every key is a file named after it
        directory = root / mount["mountPath"].lstrip("/")
        directory.mkdir(parents=True)
        for key in examples[volume["secretName"]]:
            value = f"value-of-{volume['secretName']}-{key}"
            (directory / key).write_text(value)
            written[(volume["secretName"], key)] = value
    assert {name for name, _ in written} == {"shop-db", "shop-payments"}

    rerooted = load_config(
        tmp_path / "pilothouse.toml",
        environ={"PILOTHOUSE_SECRETS__MOUNT_DIR": str(root) + config.secrets.mount_dir},
    )
    resolver = SecretResolver(rerooted)
    for name, secret_name, key in (
        ("db.url", "shop-db", "url"),
        ("db.password", "shop-db", "password"),
        ("payments.api-key", "shop-payments", "api-key"),
    ):
        found = resolver.resolve(SecretRef(secret=name))
        assert found is not None and found.source == "kubernetes", name
        assert found.value.reveal() == written[(secret_name, key)], name
