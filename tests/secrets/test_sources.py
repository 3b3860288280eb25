"""Each source resolves, the order is honoured, and bad input is one clear error naming the
secret and where it looked — never the value."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pilothouse.config import SecretRef, config_from_dict
from pilothouse.errors import SecretError
from pilothouse.secrets import SecretResolver, env_name, mount_path
from tests.secrets.kube import SecretVolume

DB_URL = "postgresql://app:kube-pass-1@db:5432/shop"


def resolver(tmp_path: Path, environ: dict[str, str] | None = None, **secrets: Any) -> SecretResolver:
    config = config_from_dict(
        {"service": {"name": "shop"}, "secrets": {"mount_dir": str(tmp_path / "mnt"), **secrets}},
        source=tmp_path / "pilothouse.toml",
    )
    return SecretResolver(config, environ=environ or {})


def write_private(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_kubernetes_mount_resolves_through_the_data_symlink(tmp_path: Path) -> None:
    SecretVolume(tmp_path / "mnt", "db", {"url": DB_URL})
    r = resolver(tmp_path, sources=["kubernetes"])
    resolved = r.require(SecretRef(secret="db.url"))
    assert resolved.value.reveal() == DB_URL
    assert resolved.source == "kubernetes"
    assert resolved.location == str(tmp_path / "mnt" / "db" / "url")
    assert r.get(SecretRef(secret="db.url")) == DB_URL


def test_mount_path_and_env_name_rules() -> None:
    assert mount_path("/var/run/secrets/shop", SecretRef(secret="db.url")) == Path(
        "/var/run/secrets/shop/db/url"
    )
    assert mount_path("/m", SecretRef(secret="token")) == Path("/m/default/token")
    assert env_name("shop", SecretRef(secret="db.url")) == "SHOP_DB_URL"
    assert env_name("my-shop", SecretRef(secret="payments.api-key")) == "MY_SHOP_PAYMENTS_API_KEY"
    assert env_name("shop", SecretRef(secret="db.url", env="DATABASE_URL")) == "DATABASE_URL"


def test_env_source_with_naming_rule_and_override(tmp_path: Path) -> None:
    r = resolver(
        tmp_path, {"SHOP_DB_URL": "from-rule", "SHOP_DATABASE_URL": "from-override"}, sources=["env"]
    )
    assert r.get(SecretRef(secret="db.url")) == "from-rule"
    assert r.get(SecretRef(secret="db.url", env="SHOP_DATABASE_URL")) == "from-override"


def test_toml_file_source(tmp_path: Path) -> None:
    write_private(tmp_path / "secrets.toml", '[db]\nurl = "toml-url"\n[payments]\napi-key = "pk-123"\n')
    r = resolver(tmp_path, sources=["file"], file="secrets.toml")  # relative to the config file
    assert r.get(SecretRef(secret="db.url")) == "toml-url"
    assert r.get(SecretRef(secret="payments.api-key")) == "pk-123"
    assert r.resolve(SecretRef(secret="db.password")) is None


def test_dotenv_file_source(tmp_path: Path) -> None:
    write_private(
        tmp_path / ".env",
        "# dev secrets\nexport SHOP_DB_URL='dotenv-url'\n"
        'SHOP_API_TOKEN="tok en"\nSHOP_PLAIN=abc # note\n\n',
    )
    r = resolver(tmp_path, sources=["file"], file=".env")
    assert r.get(SecretRef(secret="db.url")) == "dotenv-url"
    assert r.get(SecretRef(secret="api.token")) == "tok en"
    assert r.get(SecretRef(secret="plain")) == "abc"


def test_order_is_honoured_first_hit_wins(tmp_path: Path) -> None:
    SecretVolume(tmp_path / "mnt", "db", {"url": "from-kube"})
    write_private(tmp_path / "s.toml", '[db]\nurl = "from-file"\npassword = "file-only"\n')
    env = {"SHOP_DB_URL": "from-env"}
    ref = SecretRef(secret="db.url")
    assert (
        resolver(tmp_path, env, sources=["kubernetes", "env", "file"], file="s.toml").get(ref) == "from-kube"
    )
    assert (
        resolver(tmp_path, env, sources=["env", "kubernetes", "file"], file="s.toml").get(ref) == "from-env"
    )
    assert (
        resolver(tmp_path, env, sources=["file", "env", "kubernetes"], file="s.toml").get(ref) == "from-file"
    )
    # a source without the secret is skipped, the next one answers
    chained = resolver(tmp_path, env, sources=["kubernetes", "env", "file"], file="s.toml")
    assert chained.require(SecretRef(secret="db.password")).source == "file"


def test_missing_secret_lists_every_place_looked(tmp_path: Path) -> None:
    write_private(tmp_path / "s.toml", "")
    r = resolver(tmp_path, {}, sources=["kubernetes", "env", "file"], file="s.toml")
    with pytest.raises(SecretError) as err:
        r.get(SecretRef(secret="db.url"))
    message = str(err.value)
    assert "\n" not in message
    assert message == (
        f"secret 'db.url' not found; looked in: kubernetes {tmp_path}/mnt/db/url, env SHOP_DB_URL, "
        f"file {tmp_path}/s.toml [db.url]"
    )


def test_a_missing_secrets_file_is_a_source_with_nothing_and_the_error_says_so(tmp_path: Path) -> None:
    """In a pod the development file does not exist: what the mount or env has resolves, an
    optional secret nobody has is simply absent (no startup error), and a required one's error
    names the file as missing. The file appearing later is read (the dev loop)."""
    SecretVolume(tmp_path / "mnt", "db", {"url": DB_URL})
    r = resolver(tmp_path, {}, sources=["kubernetes", "env", "file"], file="absent.toml")
    assert r.require(SecretRef(secret="db.url")).value.reveal() == DB_URL
    assert r.resolve(SecretRef(secret="db.username")) is None
    with pytest.raises(SecretError) as err:
        r.require(SecretRef(secret="db.password"))
    assert str(err.value).endswith(f"file {tmp_path}/absent.toml [db.password] (the file does not exist)")
    write_private(tmp_path / "absent.toml", '[db]\npassword = "from-file"\n')
    assert r.require(SecretRef(secret="db.password")).source == "file"
    assert not r.where(SecretRef(secret="db.password"))[-1].endswith("(the file does not exist)")


def test_empty_values_do_not_count(tmp_path: Path) -> None:
    SecretVolume(tmp_path / "mnt", "db", {"url": "  \n"})
    r = resolver(tmp_path, {"SHOP_DB_URL": "from-env"}, sources=["kubernetes", "env"])
    assert r.require(SecretRef(secret="db.url")).source == "env"


def test_world_readable_secrets_file_is_refused(tmp_path: Path) -> None:
    write_private(tmp_path / "s.toml", '[db]\nurl = "do-not-show-1"\n', mode=0o644)
    r = resolver(tmp_path, sources=["file"], file="s.toml")
    with pytest.raises(SecretError) as err:
        r.get(SecretRef(secret="db.url"))
    assert str(err.value) == (
        f"secret 'db.url': secrets file {tmp_path}/s.toml is readable by every user (mode 0644); "
        f"run: chmod 600 {tmp_path}/s.toml"
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"\xff\xfe-not-utf8", "is not UTF-8 text"),
        (None, "cannot read secret file"),  # a directory where the key file should be
    ],
)
def test_unreadable_mounted_secret_is_an_error_not_a_fallthrough(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    key = tmp_path / "mnt" / "db" / "url"
    key.parent.mkdir(parents=True)
    if content is None:
        key.mkdir()
    else:
        key.write_bytes(content)
    r = resolver(tmp_path, {"SHOP_DB_URL": "env-would-hide-the-problem"}, sources=["kubernetes", "env"])
    with pytest.raises(SecretError, match=expected) as err:
        r.get(SecretRef(secret="db.url"))
    assert str(err.value).startswith("secret 'db.url': ")
    assert str(key) in str(err.value)


def test_bad_toml_and_dotenv_name_the_file_and_line_not_the_value(tmp_path: Path) -> None:
    write_private(tmp_path / "s.toml", 'db = { url = "hidden-value-9" \n')
    with pytest.raises(SecretError) as err:
        resolver(tmp_path, sources=["file"], file="s.toml").get(SecretRef(secret="db.url"))
    assert "invalid TOML" in str(err.value) and "hidden-value-9" not in str(err.value)
    write_private(tmp_path / "bad.env", "SHOP_OK=1\nthis line hidden-value-9\n")
    with pytest.raises(SecretError) as err:
        resolver(tmp_path, sources=["file"], file="bad.env").get(SecretRef(secret="ok"))
    assert f"{tmp_path}/bad.env:2: expected KEY=value" in str(err.value)
    assert "hidden-value-9" not in str(err.value)


def test_config_requires_settings_for_the_sources_it_lists(tmp_path: Path) -> None:
    from pilothouse.errors import ConfigError

    with pytest.raises(ConfigError, match=r"sources lists 'file' but \[secrets\].file is not set"):
        config_from_dict({"service": {"name": "shop"}, "secrets": {"sources": ["file"]}})
    with pytest.raises(ConfigError, match=r"no \[secrets.vault\] table"):
        config_from_dict({"service": {"name": "shop"}, "secrets": {"sources": ["vault"]}})
    with pytest.raises(ConfigError, match="each source may appear once"):
        config_from_dict({"service": {"name": "shop"}, "secrets": {"sources": ["env", "env"]}})
