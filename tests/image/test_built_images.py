"""The examples built into real images by `pilothouse build` and run as their bundles say.

What the image holds is asserted from the image itself; how it runs comes from the rendered
Deployment (`kubectl kustomize`) or compose.prod.yaml, never re-typed here. The planted defects
are edits of the rendered manifests (or of the Dockerfile) that a user could make, and each must
fail the smoke with a message that names the cause.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest

from pilothouse.cli.smoke import compose_for, free_ports, rendered
from pilothouse.config import load_config
from pilothouse.image.engine import build_command, measure, run_streaming
from pilothouse.image.runspec import RunSpec, SmokeError, from_workload
from pilothouse.image.smoke import SmokeResult, run_smoke
from tests.helpers import run_cli
from tests.image.conftest import RUN_ARGS, TAG, Built, podman
from tests.secrets.conftest import Bao, login_with_approle

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # builds run inside the first test that needs them
BUDGET = 100_000_000
"""The reference systems' image budget: under 100 MB uncompressed (000.md names it; 001, the
broker, asks for "size-optimized" images without a number, so the same budget holds there)."""
APP_PACKAGES = {
    "shop_image": "['shop']",
    "orders_image": "['orders']",
    "users_image": "['users']",
    "products_image": "['products']",
    "gateway_image": "['gateway']",
    "quotes_image": "['quotes']",
    "transactions_image": "['mainframe']",
    "broker_image": "['broker']",
}
"""Each built image by its fixture, and what its /app holds: the app's package, nothing else."""


def smoke(
    spec: RunSpec,
    image: str,
    route: str,
    lines: list[str] | None = None,
    headers: dict[str, str] | None = None,
    expect_status: int | None = None,
) -> SmokeResult:
    progress = (lambda _line: None) if lines is None else lines.append
    return run_smoke(
        spec,
        image,
        free_ports,
        route=route,
        engine="podman",
        run_args=RUN_ARGS,
        progress=progress,
        headers=headers,
        expect_status=expect_status,
    )


def in_image(image: str, code: str) -> str:
    """Run Python inside the image (no shell there) and return what it printed."""
    return podman("run", "--rm", *RUN_ARGS, "--entrypoint", "python3.11", image, "-c", code).stdout.strip()


def pod_spec(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] in ("Deployment", "Rollout"))["spec"]["template"]["spec"]


# -- what is in the image ------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", sorted(APP_PACKAGES))
def test_image_is_small_without_build_tools_and_not_root(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    built: Built = request.getfixturevalue(fixture)
    assert built.report["size"] < BUDGET, f"{built.ref}: {built.report['size']:,} bytes, budget {BUDGET:,}"
    assert built.report["digest"].startswith("sha256:")
    user = podman("image", "inspect", "--format", "{{.Config.User}}", built.ref).stdout.strip()
    assert user == "10001:10001"
    found = in_image(
        built.ref,
        "import os, shutil, importlib.util as u; "
        "print([t for t in ('gcc', 'cc', 'g++', 'make', 'pip', 'pip3') if shutil.which(t)], "
        "u.find_spec('pip') is not None or u.find_spec('setuptools') is not None, "
        "[p for p in ('/root/.cache', '/root/.cache/pip', '/src', '/wheels', '/opt/tools') "
        "if os.path.exists(p)], "
        "sorted(os.listdir('/app')), os.getuid())",
    )
    assert found == f"[] False [] {APP_PACKAGES[fixture]} 10001", found


def test_shop_size_measured_per_layer(shop_image: Built) -> None:
    """The measurement docs/performance.md quotes; `pilothouse build` and a fresh export agree."""
    again = measure("podman", shop_image.ref)
    assert again.digest == shop_image.report["digest"]
    assert again.size == shop_image.report["size"] < BUDGET
    assert [layer.size for layer in again.layers] == [x["size"] for x in shop_image.report["layers"]]


def test_a_hashed_lock_is_installed_and_enforced(
    shop_image: Built, build_args: list[str], tmp_path: Path
) -> None:
    """A requirements file with --hash lines puts pip in hash-checking mode: the right hashes
    build, one changed hash stops the build naming the mismatch."""
    context = tmp_path / "ctx"
    shutil.copytree(shop_image.context, context, ignore=shutil.ignore_patterns("deploy"))
    wheels = context / "wheels"
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--dry-run",
            "--ignore-installed",
            "--report",
            "-",
            "--no-index",
            "--find-links",
            str(wheels),
            "-r",
            str(context / "requirements.txt"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip  (the requirements' closure, as pip resolves it from the wheelhouse)
    lock = []
    for item in json.loads(report.stdout)["install"]:
        wheel = wheels / Path(item["download_info"]["url"]).name
        meta = item["metadata"]
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lock.append(f"{meta['name']}=={meta['version']} --hash=sha256:{digest}")
    (context / "requirements.txt").write_text("\n".join(lock) + "\n")
    ref = f"localhost/pilothouse-test/shop-locked:{TAG}"
    args = [
        "build",
        "--config",
        str(context / "pilothouse.toml"),
        "--engine",
        "buildah",
        "--tag",
        ref,
        *build_args,
    ]
    built = run_cli(*args, timeout=900)
    assert built.returncode == 0, built.stderr[-2000:]
    starlette = next(line for line in lock if line.lower().startswith("starlette=="))
    (context / "requirements.txt").write_text(
        "\n".join(lock).replace(starlette, starlette[:-4] + "0000") + "\n"
    )
    refused = run_cli(*args, timeout=900)
    assert refused.returncode == 1
    assert "DO NOT MATCH THE HASHES" in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("pilothouse: error: buildah build failed")


# -- as the Deployment says ----------------------------------------------------------------------


TOKEN = "smoke-5d41402abc4b2a76b9719d911017c592"  # strong enough for the runtime's startup check
SHOP_SECRETS = {"shop-admin": {"token": TOKEN.encode()}}


def orders_secrets(url: str) -> dict[str, dict[str, bytes]]:
    return {
        "orders-admin": {"token": TOKEN.encode()},
        "orders-db": {"url": url.encode(), "user": b"postgres", "password": b"unused"},
    }


def test_shop_runs_as_its_deployment_says(shop_image: Built) -> None:
    docs = rendered(shop_image.bundle, "base")
    spec = from_workload(docs, SHOP_SECRETS)
    assert (
        spec.read_only and spec.cap_drop == ["ALL"] and spec.no_new_privileges and spec.user == "10001:10001"
    )
    assert (spec.memory_bytes, spec.cpus) == (256 * 2**20, 0.25)  # the Deployment's resources.limits
    lines: list[str] = []
    result = smoke(spec, shop_image.ref, "/items", lines)
    assert result.metric_families > 0
    assert lines[0] == "limits: memory 256Mi (no swap), cpu 0.25", lines[0]


def test_smoke_command_reads_the_bundle_and_a_secrets_file(shop_image: Built, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.yaml"
    example = (shop_image.bundle / "k8s" / "secrets.example.yaml").read_text()
    secrets.write_text(example.replace("<replace with the output of: openssl rand -hex 32>", TOKEN))
    args = ["smoke", "--image", shop_image.ref, "--bundle", str(shop_image.bundle), "--route", "/items"]
    args += [f"--run-arg={a}" for a in RUN_ARGS]
    passed = run_cli(*args, "--secrets", str(secrets), timeout=300)
    assert passed.returncode == 0, passed.stdout + passed.stderr
    lines = passed.stdout.splitlines()
    assert lines[0] == f"smoke: {shop_image.ref} as Deployment shop"
    assert any(line.strip().startswith("SIGTERM: exit 0") for line in lines)
    missing = run_cli(*args, timeout=300)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "pilothouse: error: Secret shop-admin (for env SHOP_ADMIN_TOKEN) was not given to the smoke"
    )


def test_orders_migrates_and_checks_postgres_as_deployed(orders_image: Built, pg_schema: str) -> None:
    """The init container (migrations) runs first, then /ready needs the real PostgreSQL check;
    the app route reads the migrated table."""
    spec = from_workload(rendered(orders_image.bundle, "base"), orders_secrets(pg_schema))
    assert [i.command for i in spec.init] == [["python", "-m", "orders.migrate"]]
    smoke(spec, orders_image.ref, "/orders")
    schema = pg_schema.rsplit("%3D", 1)[1]
    with psycopg.connect(pg_schema.split("?")[0]) as conn:
        row = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", (schema,)
        )
        assert row.fetchone() == (1,)


@pytest.mark.parametrize(("name", "route"), [("users", "/users/1"), ("products", "/products")])
def test_market_services_run_as_their_deployments_say(
    name: str, route: str, request: pytest.FixtureRequest
) -> None:
    """The market's users and products (orders and the gateway have tests of their own) under
    their 128Mi limit, read-only, uid 10001, no capabilities."""
    built: Built = request.getfixturevalue(f"{name}_image")
    spec = from_workload(rendered(built.bundle, "base"), {f"{name}-admin": {"token": TOKEN.encode()}})
    assert spec.source == f"Deployment {name}"
    assert spec.read_only and spec.cap_drop == ["ALL"] and spec.user == "10001:10001"
    lines: list[str] = []
    smoke(spec, built.ref, route, lines)
    assert lines[0] == "limits: memory 128Mi (no swap), cpu 0.1", lines[0]


BROKER_SECRETS = {"broker-admin": {"token": TOKEN.encode()}, "broker-oanda": {"api-key": b"from-the-secret"}}


def test_broker_runs_as_its_rollout_says_with_a_real_vault(
    broker_image: Built, bao: Bao, approle: None
) -> None:
    """Reference system 001 as its Rollout's pod says (read-only, uid 10001, no capabilities, its
    limits, the Secret env), reading its broker API key from a real OpenBao (`bao server -dev` on
    loopback; the smoke runs on the host network) before /startup, with the `vault` extra the
    image holds. The one change is what a cluster gives and this machine cannot: the Vault
    address and, for the Kubernetes auth (no Kubernetes API here), an AppRole holding only the
    policy `pilothouse secrets policy` prints, as examples/broker/acceptance.py does. /ready
    needs the critical `oanda` check (key loaded, adapter connected); the app's route takes POST,
    so a GET through the app port answers 405."""
    creds = login_with_approle(bao, load_config(broker_image.config), "broker-image")
    bao.client().secrets.kv.v2.create_or_update_secret(
        path="broker/oanda", secret={"api-key": "from-vault"}, mount_point="secret"
    )
    spec = from_workload(rendered(broker_image.bundle, "base"), BROKER_SECRETS)
    assert spec.source == "Rollout broker"
    assert spec.read_only and spec.cap_drop == ["ALL"] and spec.no_new_privileges
    assert spec.user == "10001:10001"
    assert (spec.memory_bytes, spec.cpus) == (256 * 2**20, 0.5)  # resources.limits: 256Mi, cpu_limit 500m
    auth = {"method": "approle", "role_id": creds["role_id"], "secret_id_env": "BROKER_VAULT_SECRET_ID"}
    vault = {
        "PILOTHOUSE_SECRETS__VAULT__ADDRESS": bao.address,
        "PILOTHOUSE_SECRETS__VAULT__AUTH": json.dumps(auth),
        "BROKER_VAULT_SECRET_ID": creds["secret_id"],
    }
    lines: list[str] = []
    result = smoke(
        replace(spec, env={**spec.env, **vault}), broker_image.ref, "/orders", lines, expect_status=405
    )
    assert result.metric_families > 0
    assert lines[0] == "limits: memory 256Mi (no swap), cpu 0.5", lines[0]
    assert "GET /orders 405" in [line.strip() for line in lines]
    assert in_image(broker_image.ref, "import hvac, broker; print(hvac.__name__)") == "hvac"


def test_the_broker_without_a_vault_address_refuses_to_start(broker_image: Built) -> None:
    """Vault is the first source: without an address the broker stops at startup naming it, and
    never falls back to the env source silently. (The rendered Rollout carries the cluster's
    VAULT_ADDR from `[deploy].env`; taken out here, as a hand edit of the manifest could.)"""
    spec = from_workload(rendered(broker_image.bundle, "base"), BROKER_SECRETS)
    assert spec.env["VAULT_ADDR"] == "https://vault.vault.svc:8200"
    spec = replace(spec, env={k: v for k, v in spec.env.items() if k != "VAULT_ADDR"})
    with pytest.raises(SmokeError, match=r"(?s)code 2 before /startup.*no Vault address"):
        smoke(spec, broker_image.ref, "/orders", expect_status=405)


def test_fastapi_project_installs_from_its_pyproject_and_answers(quotes_image: Built, pg_schema: str) -> None:
    secrets = {"quotes-admin": {"token": TOKEN.encode()}, "quotes-db": {"url": pg_schema.encode()}}
    smoke(from_workload(rendered(quotes_image.bundle, "base"), secrets), quotes_image.ref, "/quotes")
    version = in_image(quotes_image.ref, "import fastapi, quotes; print(fastapi.__version__ > '0.110')")
    assert version == "True"


def test_shop_runs_as_compose_prod_says(shop_image: Built) -> None:
    spec = compose_for(load_config(shop_image.config), shop_image.bundle, {"SHOP_ADMIN_TOKEN": TOKEN})
    assert spec.volumes == [("state", "/var/lib/shop")]
    assert (spec.memory_bytes, spec.cpus) == (256 * 2**20, 0.25)  # compose's deploy.resources.limits
    smoke(spec, shop_image.ref, "/items")


def test_orders_runs_as_compose_prod_says(orders_image: Built, pg_schema: str) -> None:
    bundle = orders_image.bundle
    (bundle / "secrets").mkdir(exist_ok=True)
    (bundle / "secrets" / "db.url").write_text(pg_schema)
    with psycopg.connect(pg_schema) as conn:  # compose has no init containers: migrate as its docs say
        conn.execute("CREATE TABLE orders (id serial PRIMARY KEY, sku text NOT NULL)")
    variables = {"ORDERS_ADMIN_TOKEN": TOKEN, "DATABASE_URL": pg_schema}
    smoke(compose_for(load_config(orders_image.config), bundle, variables), orders_image.ref, "/orders")


# -- planted defects -----------------------------------------------------------------------------


def test_without_the_tmp_emptydir_the_shop_fails_the_smoke(shop_image: Built) -> None:
    docs = copy.deepcopy(rendered(shop_image.bundle, "base"))
    pod = pod_spec(docs)
    pod["volumes"] = [v for v in pod["volumes"] if v["name"] != "tmp"]
    pod["containers"][0]["volumeMounts"] = [
        m for m in pod["containers"][0]["volumeMounts"] if m["name"] != "tmp"
    ]
    with pytest.raises(
        SmokeError, match=r"(?s)exited with code 1 before /startup.*unable to open database file"
    ):
        smoke(from_workload(docs, SHOP_SECRETS), shop_image.ref, "/items")


def test_a_memory_limit_below_the_service_kills_it_in_the_smoke(shop_image: Built) -> None:
    """The limits are really applied (cgroup memory controller here: v1, cgroupfs): the same
    Deployment with 16Mi, below what the interpreter and its imports need, is killed by the kernel."""
    docs = copy.deepcopy(rendered(shop_image.bundle, "base"))
    pod_spec(docs)["containers"][0]["resources"]["limits"]["memory"] = "16Mi"
    killed = r"code 137(, killed at its memory limit| \(SIGKILL: the OOM killer at its 16Mi memory)"
    with pytest.raises(SmokeError, match=killed):
        smoke(from_workload(docs, SHOP_SECRETS), shop_image.ref, "/items")


def test_a_moved_secret_mount_fails_the_smoke(orders_image: Built, pg_schema: str) -> None:
    docs = copy.deepcopy(rendered(orders_image.bundle, "base"))
    for mount in pod_spec(docs)["containers"][0]["volumeMounts"]:
        if mount["name"] == "secret-db":
            mount["mountPath"] = "/var/run/secrets/orders-db"
    spec = from_workload(docs, orders_secrets(pg_schema))
    with pytest.raises(SmokeError, match=r"(?s)exited with code \d+ before /startup.*db\.url"):
        smoke(spec, orders_image.ref, "/orders")


def test_an_image_without_the_postgres_extra_fails_the_smoke(
    quotes_image: Built, build_args: list[str], pg_schema: str, tmp_path: Path
) -> None:
    """The extra the config implies, taken out of the Dockerfile by hand as the old hand-typed
    package list allowed: the postgres check cannot load its driver."""
    dockerfile = (quotes_image.bundle / "Dockerfile").read_text()
    assert '"pilothouse[postgres]==' in dockerfile
    (tmp_path / "Dockerfile").write_text(dockerfile.replace("pilothouse[postgres]==", "pilothouse=="))
    (tmp_path / "Dockerfile.dockerignore").write_text(
        (quotes_image.bundle / "Dockerfile.dockerignore").read_text()
    )
    ref = f"localhost/pilothouse-test/quotes-no-extra:{TAG}"
    args = build_args[1::2]  # the NAME=VALUE halves of --build-arg NAME=VALUE
    run_streaming(
        build_command(
            "buildah",
            tmp_path / "Dockerfile",
            tmp_path / "Dockerfile.dockerignore",
            quotes_image.context,
            ref,
            args,
        ),
        lambda _line: None,
    )
    assert in_image(ref, "import importlib.util as u; print(u.find_spec('psycopg'))") == "None"
    secrets = {"quotes-admin": {"token": TOKEN.encode()}, "quotes-db": {"url": pg_schema.encode()}}
    with pytest.raises(SmokeError, match=r"the postgres check needs the 'postgres' extra"):
        smoke(from_workload(rendered(quotes_image.bundle, "base"), secrets), ref, "/quotes")


def test_a_secret_the_deployment_references_but_nobody_gives_is_named(shop_image: Built) -> None:
    with pytest.raises(SmokeError, match=r"Secret shop-admin \(for env SHOP_ADMIN_TOKEN\) was not given"):
        from_workload(rendered(shop_image.bundle, "base"), {})
