"""Rotation without restart: a `..data` symlink swap is picked up by the watcher, subscribers are
called once, and a bad rotation keeps the old value and is reported."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from pilothouse.config import SecretRef, config_from_dict
from pilothouse.errors import SecretError
from pilothouse.secrets import SecretResolver, SecretStore, SecretValue
from pilothouse.secrets.watch import Watcher
from tests.secrets.kube import SecretVolume


def store_for(
    tmp_path: Path, *refs: SecretRef, environ: dict[str, str] | None = None, **hooks: Any
) -> SecretStore:
    config = config_from_dict({"service": {"name": "shop"}, "secrets": {"mount_dir": str(tmp_path / "mnt")}})
    return SecretStore(SecretResolver(config, environ=environ or {}), refs, **hooks)


DB_PASSWORD = SecretRef(secret="db.password")


def test_symlink_swap_is_a_rotation_seen_once(tmp_path: Path) -> None:
    volume = SecretVolume(tmp_path / "mnt", "db", {"password": "old-pass-1", "username": "app"})
    loads: list[str] = []
    store = store_for(tmp_path, DB_PASSWORD, on_loaded=lambda name, _: loads.append(name))
    store.load_all()
    assert store.get("db.password").reveal() == "old-pass-1"
    assert store.refresh() == []  # nothing changed
    volume.update({"password": "new-pass-2", "username": "app"})
    changed = store.refresh()
    assert [s.name for s in changed] == ["db.password"]
    assert store.get("db.password").reveal() == "new-pass-2"
    assert store.refresh() == []
    assert loads == ["db.password"] * 4  # every successful read refreshes the last-load time


def test_bad_rotation_keeps_the_old_value_and_is_reported(tmp_path: Path) -> None:
    volume = SecretVolume(tmp_path / "mnt", "db", {"password": "good-pass-1"})
    failures: list[str] = []
    store = store_for(tmp_path, DB_PASSWORD, on_failure=failures.append)
    store.load_all()
    volume.update({"password": ""})  # a rotation that produced an empty value
    assert store.refresh() == []
    assert store.get("db.password").reveal() == "good-pass-1"
    assert failures == ["db.password"]
    assert store.failures == {
        "db.password": "secret 'db.password' is missing or empty in every source; keeping the previous value"
    }
    volume.update({"password": "good-pass-2"})
    assert [s.name for s in store.refresh()] == ["db.password"]
    assert store.failures == {}


def test_missing_required_secrets_fail_load_in_one_line(tmp_path: Path) -> None:
    store = store_for(
        tmp_path,
        SecretRef(secret="db.url"),
        SecretRef(secret="api.token"),
        DB_PASSWORD,
        environ={"SHOP_DB_PASSWORD": "here"},
    )
    with pytest.raises(SecretError) as err:
        store.load_all()
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(
        f"required secret 'db.url' not found; looked in: kubernetes {tmp_path}/mnt/db/url, env SHOP_DB_URL; "
        "required secret 'api.token' not found"
    )
    assert "db.password" not in message


def test_optional_secret_may_appear_later(tmp_path: Path) -> None:
    store = store_for(tmp_path, SecretRef(secret="feature.key", required=False))
    store.load_all()
    with pytest.raises(SecretError, match="optional and not set"):
        _ = store.get("feature.key").value
    assert store.refresh() == [] and store.failures == {}
    SecretVolume(tmp_path / "mnt", "feature", {"key": "late-key-1"})
    assert [s.name for s in store.refresh()] == ["feature.key"]


def test_a_name_required_anywhere_is_required(tmp_path: Path) -> None:
    store = store_for(tmp_path, SecretRef(secret="db.url", required=False), SecretRef(secret="db.url"))
    with pytest.raises(SecretError, match=r"required secret 'db\.url'"):
        store.load_all()


async def test_watcher_picks_up_the_swap_and_calls_subscribers_once(tmp_path: Path) -> None:
    volume = SecretVolume(tmp_path / "mnt", "db", {"password": "pool-pass-1"})
    store = store_for(tmp_path, DB_PASSWORD)
    store.load_all()
    seen: list[str] = []
    reconnected = asyncio.Event()

    async def reconnect(value: SecretValue) -> None:  # what a pool would do
        seen.append(value.reveal())
        reconnected.set()

    def broken(value: SecretValue) -> None:
        raise RuntimeError("a failing subscriber must not stop the others")

    store.get("db.password").subscribe(broken)
    store.get("db.password").subscribe(reconnect)
    watcher = Watcher(store, interval=0.05)
    await watcher.start()
    try:
        await asyncio.sleep(0.2)
        assert seen == []
        volume.update({"password": "pool-pass-2"})
        await asyncio.wait_for(reconnected.wait(), 5)
        await asyncio.sleep(0.3)  # several more ticks: still one callback
        assert seen == ["pool-pass-2"]
    finally:
        await watcher.stop()


def test_local_file_edits_are_rotations_and_a_loosened_mode_is_a_failure(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('[api]\ntoken = "file-tok-1"\n')
    secrets.chmod(0o600)
    config = config_from_dict(
        {"service": {"name": "shop"}, "secrets": {"sources": ["file"], "file": str(secrets)}}
    )
    store = SecretStore(SecretResolver(config, environ={}), [SecretRef(secret="api.token")])
    store.load_all()
    secrets.write_text('[api]\ntoken = "file-tok-22"\n')  # size changes: seen even within one mtime tick
    assert [s.name for s in store.refresh()] == ["api.token"]
    assert store.get("api.token").reveal() == "file-tok-22"
    secrets.chmod(0o644)
    assert store.refresh() == []
    assert "is readable by every user" in store.failures["api.token"]
    assert store.get("api.token").reveal() == "file-tok-22"
