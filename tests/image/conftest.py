"""Real images: base images assembled with mmdebstrap (no registry pulls here), a wheelhouse, and
images built by `pilothouse build` from the examples.

The base tars and wheels are cached under $PILOTHOUSE_TEST_CACHE (default .cache/pilothouse-test
in the repository, git-ignored), so a rerun imports a tar instead of assembling it (about a minute)
and finds its wheels locally. Build and run follow ../shared/README.md "Containers": buildah with
chroot isolation, podman with limits below the host's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, run_cli
from tests.secrets.conftest import approle, bao  # noqa: F401  (fixtures: the broker's smoke reads OpenBao)

CACHE = Path(os.environ.get("PILOTHOUSE_TEST_CACHE", ROOT / ".cache" / "pilothouse-test"))
RUN_ARGS = ("--ulimit=nofile=1024:1024", "--ulimit=nproc=1024:1024")
"""podman refuses limits equal to or above the host's on this kind of machine."""
TAG = hashlib.sha1(str(ROOT).encode()).hexdigest()[:8]
"""One tag per checkout: reruns replace their images instead of piling up new ones."""

PYTHON = "3.11"
_STRIP = " ".join(f"usr/lib/python{PYTHON}/{m}" for m in ("test", "idlelib", "tkinter", "ensurepip"))
BASES: dict[str, list[str]] = {
    # The final stage: Python 3.11 with ssl/sqlite, no apt, dpkg, perl, shell utilities or docs.
    "runtime": [
        "--variant=extract",
        f"--include=python{PYTHON},ca-certificates,libc-bin",
        "--dpkgopt=path-exclude=/usr/share/doc/*",
        "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*",
        '--customize-hook=cd "$1" && rm -rf var/lib/apt var/cache/apt var/lib/dpkg ' + _STRIP,
    ],
    # The builder stage: the same Python at the same path, with venv and pip (never shipped).
    "builder": ["--variant=minbase", f"--include=python{PYTHON},python{PYTHON}-venv,ca-certificates"],
}


def _need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        message = f"{', '.join(missing)} not installed (make tools installs them)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], capture_output=True, text=True, check=check, timeout=600)


def base_image(name: str) -> str:
    """`localhost/pilothouse-test/NAME:<hash of its recipe>`: imported from the cached tar, which
    is assembled with mmdebstrap when missing."""
    recipe = BASES[name]
    digest = hashlib.sha1(json.dumps(recipe).encode()).hexdigest()[:10]
    ref = f"localhost/pilothouse-test/{name}:{digest}"
    if podman("image", "exists", ref, check=False).returncode == 0:
        return ref
    tar = CACHE / f"{name}-{digest}.tar"
    if not tar.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = tar.with_suffix(".partial")
        subprocess.run(
            ["mmdebstrap", "--quiet", "--format=tar", *recipe, "bookworm", str(partial)],
            check=True,
            timeout=900,
            capture_output=True,
        )
        partial.rename(tar)
    podman("import", str(tar), ref)
    return ref


@pytest.fixture(scope="session")
def build_args() -> list[str]:
    _need("buildah", "podman", "runc", "mmdebstrap")
    return [
        "--build-arg",
        f"BASE_IMAGE={base_image('runtime')}",
        "--build-arg",
        f"BUILDER_IMAGE={base_image('builder')}",
    ]


@pytest.fixture(scope="session")
def pilothouse_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This checkout as a wheel: what the examples' wheelhouse holds for `pilothouse==<version>`."""
    out = tmp_path_factory.mktemp("pilothouse-wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
        timeout=300,
        capture_output=True,
    )
    return next(out.glob("pilothouse-*.whl"))


@dataclass(frozen=True)
class Built:
    """An image `pilothouse build` made, with its context (config, generated bundle) and report."""

    context: Path
    ref: str
    report: dict[str, Any]

    @property
    def bundle(self) -> Path:
        return self.context / "deploy"

    @property
    def config(self) -> Path:
        return self.context / "pilothouse.toml"


def context_copy(source: Path, target: Path, pilothouse_wheel: Path) -> Path:
    """The example's directory as a build context, its wheelhouse seeded from the cache."""
    shutil.copytree(
        source, target, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3*", "wheels", "deploy")
    )
    wheels = target / "wheels"
    wheels.mkdir()
    cached = CACHE / "wheels"
    for wheel in cached.glob("*.whl") if cached.is_dir() else []:
        if not wheel.name.startswith("pilothouse-"):
            shutil.copy2(wheel, wheels)
    shutil.copy2(pilothouse_wheel, wheels)
    return target


def build(context: Path, name: str, build_args: list[str], *extra: str) -> Built:
    """`pilothouse build --fill-wheelhouse` with buildah, then the bundle the smoke reads."""
    ref = f"localhost/pilothouse-test/{name}:{TAG}"
    config = str(context / "pilothouse.toml")
    result = run_cli(
        "build", "--config", config, "--engine", "buildah", "--tag", ref, "--fill-wheelhouse",
        "--format", "json", *build_args, *extra, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    cached = CACHE / "wheels"
    cached.mkdir(parents=True, exist_ok=True)
    for wheel in (context / "wheels").glob("*.whl"):
        if not wheel.name.startswith("pilothouse-") and not (cached / wheel.name).exists():
            shutil.copy2(wheel, cached)
    generated = run_cli("generate", "deploy", "--config", config, "--out", str(context / "deploy"))
    assert generated.returncode == 0, generated.stderr
    return Built(context, ref, json.loads(result.stdout))


def example_image(example: str, doc: str) -> Any:
    """A session fixture: `examples/EXAMPLE` (a directory with its pilothouse.toml) built once
    as `localhost/pilothouse-test/<its last part>:TAG`."""
    name = example.rsplit("/", 1)[-1]

    @pytest.fixture(scope="session")
    def image(
        tmp_path_factory: pytest.TempPathFactory, build_args: list[str], pilothouse_wheel: Path
    ) -> Built:
        target = tmp_path_factory.mktemp(name) / "ctx"
        return build(context_copy(ROOT / "examples" / example, target, pilothouse_wheel), name, build_args)

    image.__doc__ = doc
    return image


shop_image = example_image("shop", "The demo shop (SQLite job store, a /tmp emptyDir).")
orders_image = example_image("market/orders", "The market's orders (PostgreSQL; an init container migrates).")
users_image = example_image("market/users", "The market's users (in memory).")
products_image = example_image("market/products", "The market's products (in memory).")
gateway_image = example_image("market/gateway", "The market's gateway: an Argo Rollouts Rollout.")
quotes_image = example_image("quotes", "A FastAPI project installed from its pyproject.toml.")
transactions_image = example_image(
    "transactions", "The mainframe-style reference system (000): its size budget is 000.md's."
)
broker_image = example_image(
    "broker", "The broker integration (reference system 001): a Rollout, Vault its first secret source."
)


@pytest.fixture
def pg_schema(postgres_url: str) -> Iterator[str]:
    """A fresh schema in the shared database; the URL the Secret hands the service uses it."""
    import uuid

    import psycopg

    schema = f"image_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{postgres_url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
