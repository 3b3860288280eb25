"""Run the service the way the rendered pod would: the ConfigMap's file, the Deployment's env, the
Dockerfile's CMD. Container paths are mapped onto a temporary directory (no container runtime on
this machine); ports and hosts are pinned to free loopback ports with the runtime's own
PILOTHOUSE_<SECTION>__<FIELD> overrides."""

from __future__ import annotations

import ast
import re
import signal
import time
from pathlib import Path

import httpx

from tests.helpers import SHOP_DIR, ServeProcess, one, rendered

TOKEN = "as-deployed-token-3b2a1f9e8d7c"


def test_pod_spec_runs_and_stops_within_its_grace_period(shop_bundle: Path, tmp_path: Path) -> None:
    docs = rendered(shop_bundle, "base")
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    paths = {
        mounts["config"]: tmp_path / "config",
        mounts["tmp"]: tmp_path / "tmp",
        mounts["state"]: tmp_path / "state",
        "/app": SHOP_DIR,
    }
    for local in paths.values():
        local.mkdir(exist_ok=True)

    def local(path: str) -> str:
        for inside, outside in paths.items():
            if path == inside or path.startswith(inside + "/"):
                return str(outside) + path[len(inside) :]
        return path

    config_map = one(docs, "ConfigMap", volumes["config"]["configMap"]["name"])
    for key, text in config_map["data"].items():
        (paths[mounts["config"]] / key).write_text(text)
    env = {e["name"]: local(e["value"]) for e in container["env"] if "value" in e}
    secret_vars = [e["name"] for e in container["env"] if "valueFrom" in e]
    assert secret_vars == ["SHOP_ADMIN_TOKEN"]
    env["SHOP_ADMIN_TOKEN"] = TOKEN

    dockerfile = (shop_bundle / "Dockerfile").read_text()
    cmd = ast.literal_eval(re.findall(r"^CMD (\[.*\])$", dockerfile, re.M)[-1])
    assert cmd[:3] == ["pilothouse", "serve", "--config"] and cmd[3] == "/etc/pilothouse/pilothouse.toml"
    assert env["PILOTHOUSE_CONFIG"] == local(cmd[3])

    serve = ServeProcess(Path(local(cmd[3])), env=env, cwd=Path(local("/app")))
    with serve:
        deadline = time.monotonic() + 15
        while (
            httpx.get(f"{serve.ops_url}{container['readinessProbe']['httpGet']['path']}").status_code != 200
        ):
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.1)
        for probe in ("startupProbe", "livenessProbe"):
            assert httpx.get(f"{serve.ops_url}{container[probe]['httpGet']['path']}").status_code == 200
        assert httpx.get(f"{serve.app_url}/items").status_code == 200
        assert (paths[mounts["tmp"]] / "shop.sqlite3").exists()  # the writable places: /tmp ...
        assert (paths[mounts["state"]] / "shop-jobs.sqlite3").exists()  # ... and the state dir
        drain = httpx.post(f"{serve.ops_url}/admin/drain", headers={"Authorization": f"Bearer {TOKEN}"})
        assert drain.status_code == 200
        # SIGTERM comes after the preStop sleep; the rest of the grace period must be enough.
        prestop = int(container["lifecycle"]["preStop"]["sleep"]["seconds"])
        budget = pod["terminationGracePeriodSeconds"] - prestop
        started = time.monotonic()
        serve.signal(signal.SIGTERM)
        assert serve.wait(timeout=budget) == 0
        assert time.monotonic() - started < budget
