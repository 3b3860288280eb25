"""State a service writes (the SQLite job store, caches) has one declared place, writable in every
target: an emptyDir in the pod, a named volume in compose, `StateDirectory=` in systemd, and the
image creates it owned by the app's uid. The runtime is pointed there by its own override."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from pilothouse.config import load_config
from pilothouse.generators.deploy import facts
from pilothouse.jobs.store import open_store
from tests.generators.deploy.conftest import SHOP
from tests.helpers import one, rendered, write_config


def test_every_target_writes_state_to_the_same_writable_place(shop_bundle: Path) -> None:
    state = facts.state_dir(load_config(SHOP, environ={}))
    pod = one(rendered(shop_bundle, "base"), "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[facts.STATE_ENV] == state
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == state)
    assert not mount.get("readOnly")
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert "emptyDir" in volume
    for name in ("compose.yaml", "compose.prod.yaml"):
        service = yaml.safe_load((shop_bundle / name).read_text())["services"]["shop"]
        assert service["environment"][facts.STATE_ENV] == state
        assert [v for v in service["volumes"] if v.endswith(f":{state}")] == [f"state:{state}"]
    unit = (shop_bundle / "systemd" / "shop.service").read_text()
    assert f"/var/lib/{re.search(r'^StateDirectory=(.+)$', unit, re.M)[1]}" == state  # type: ignore[index]
    assert f"Environment={facts.STATE_ENV}={state}" in unit
    dockerfile = (shop_bundle / "Dockerfile").read_text()
    assert f"{facts.STATE_ENV}={state}" in dockerfile
    assert f"COPY --from=builder --chown=10001:10001 /state {state}" in dockerfile


def test_the_job_store_resolves_under_the_state_dir(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        """
        [service]
        name = "svc"
        state_dir = "state"

        [jobs]
        path = "jobs.sqlite3"
        """,
    )
    (tmp_path / "state").mkdir()
    assert open_store(load_config(path, environ={})).path == tmp_path / "state" / "jobs.sqlite3"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = load_config(path, environ={facts.STATE_ENV: str(elsewhere)})
    assert open_store(moved).path == elsewhere / "jobs.sqlite3"


def test_without_a_state_dir_the_job_store_stays_next_to_the_config(tmp_path: Path) -> None:
    path = write_config(tmp_path, '[service]\nname = "svc"\n\n[jobs]\npath = "jobs.sqlite3"\n')
    assert open_store(load_config(path, environ={})).path == tmp_path / "jobs.sqlite3"
