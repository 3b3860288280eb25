"""State a service writes (the SQLite job store, caches) has one declared place, writable in every
target: an emptyDir in the pod, a named volume in compose, `StateDirectory=` in systemd, and the
image creates it owned by the app's uid. The runtime is pointed there by its own override."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from pilothouse.config import load_config
from pilothouse.generators.deploy import facts
from pilothouse.jobs.store import open_store
from tests.generators.deploy.conftest import SHOP
from tests.helpers import one, rendered, run_cli, write_config


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


PERSISTENT = """
[service]
name = "ledger"
app = "ledger.app:app"

[jobs]
path = "jobs.sqlite3"

[deploy]
image = "registry.example.com/ledger"
replicas = 1
state = {{ persistent = true, size = "2Gi"{storage_class} }}

[deploy.environments.prod]
tag = "1.0.0"
"""


def test_persistent_state_is_a_claim_mounted_at_the_state_dir(tmp_path: Path) -> None:
    """`[deploy.state] persistent`: a ReadWriteOnce PersistentVolumeClaim in place of the emptyDir,
    the Deployment recreated (never two pods on the claim), and an overlay's namePrefix reaches
    the claim and its reference alike."""
    path = write_config(tmp_path, PERSISTENT.format(storage_class=', storage_class = "fast-ssd"'))
    out = tmp_path / "deploy"
    assert run_cli("generate", "deploy", "--config", str(path), "--out", str(out)).returncode == 0
    state = facts.state_dir(load_config(path, environ={}))
    for overlay in ("base", "prod"):
        docs = rendered(out, overlay)
        claim = one(docs, "PersistentVolumeClaim")
        assert claim["spec"] == {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "2Gi"}},
            "storageClassName": "fast-ssd",
        }
        deployment = one(docs, "Deployment")
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
        pod = deployment["spec"]["template"]["spec"]
        mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == state)
        volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
        assert volume == {"name": "state", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}
    assert one(rendered(out, "prod"), "PersistentVolumeClaim")["metadata"]["name"] == "prod-ledger-state"


def test_a_bundle_with_persistent_state_passes_the_validators(tmp_path: Path) -> None:
    path = write_config(tmp_path, PERSISTENT.format(storage_class=""))
    out = tmp_path / "deploy"
    assert run_cli("generate", "deploy", "--config", str(path), "--out", str(out)).returncode == 0
    assert "storageClassName" not in (out / "k8s" / "base" / "state.yaml").read_text()
    result = run_cli("validate", str(out), "--format", "json", "--strict", timeout=300)
    verdicts = json.loads(result.stdout)
    checked = {(v["tool"], v["target"]) for v in verdicts}
    assert {("kubernetes-validate", "k8s/base"), ("kubernetes-validate", "k8s/prod")} <= checked, verdicts
    assert ("checkov", "kubernetes") in checked, verdicts
    assert [v for v in verdicts if v["status"] != "pass"] == []
    assert result.returncode == 0


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("replicas = 2", "deploy.replicas is 2 but deploy.state.persistent = true"),
        (
            "replicas = 1\n[deploy.environments.prod]\nreplicas = 3",
            "deploy.environments.prod.replicas is 3 but deploy.state.persistent = true",
        ),
        (
            'replicas = 1\nstrategy = "blue-green"',
            "deploy.strategy is 'blue-green' but deploy.state.persistent",
        ),
        ('replicas = 1\nstate = { persistent = true, size = "1GB" }', "deploy.state.size: '1GB' is invalid"),
    ],
)
def test_persistent_state_refuses_more_than_one_pod(tmp_path: Path, extra: str, expected: str) -> None:
    """A ReadWriteOnce volume is attached to one node and mounted by one pod: two replicas (or
    blue and green at once) would hang in ContainerCreating. One line, exit 2."""
    body = '[service]\nname = "ledger"\n\n[deploy]\n'
    if "state =" not in extra:
        body += "state = { persistent = true }\n"
    path = write_config(tmp_path, body + extra + "\n")
    result = run_cli("config", "check", "--config", str(path))
    assert result.returncode == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and str(path) in lines[0], result.stderr
