"""A uv project built from its uv.lock, and state on a PersistentVolumeClaim, run as deployed.

`tests/image/uvproject` is locked here with `uv lock` (against the index, and `dist/` holding this
checkout's unreleased Pilothouse wheel), built by `pilothouse build --fill-wheelhouse`, and
smoked as its rendered Deployment says: the claim becomes a fresh, empty volume owned as fsGroup
makes it, the job store opens there and the app route writes into it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pilothouse.cli.smoke import rendered
from pilothouse.image.runspec import Claim, SmokeError, from_workload
from tests.helpers import ROOT, run_cli
from tests.image.conftest import TAG, Built, build, context_copy
from tests.image.test_built_images import BUDGET, TOKEN, in_image, pod_spec, smoke

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
SECRETS = {"notes-admin": {"token": TOKEN.encode()}}


def uv() -> str:
    found = shutil.which("uv") or str(Path(sys.executable).parent / "uv")
    assert Path(found).is_file(), "uv is part of the dev extra"
    return found


def locked(lock: Path) -> dict[str, str]:
    """{name: version} of the packages uv.lock pins (the project itself left out)."""
    import tomllib

    data = tomllib.loads(lock.read_text())
    return {p["name"]: p["version"] for p in data["package"] if p["name"] != "notes"}


@pytest.fixture(scope="session")
def notes_image(
    tmp_path_factory: pytest.TempPathFactory, build_args: list[str], pilothouse_wheel: Path
) -> Built:
    context = context_copy(
        ROOT / "tests" / "image" / "uvproject", tmp_path_factory.mktemp("notes") / "ctx", pilothouse_wheel
    )
    (context / "dist").mkdir()
    shutil.copy2(pilothouse_wheel, context / "dist")
    result = subprocess.run(
        [uv(), "lock", "--project", str(context), "--python", sys.executable],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return build(context, "notes", build_args)


def test_the_image_holds_exactly_the_lock_and_no_uv(notes_image: Built) -> None:
    lock = locked(notes_image.context / "uv.lock")
    assert "pytest" in lock  # the dev group is locked ...
    installed = json.loads(
        in_image(
            notes_image.ref,
            "import json, importlib.metadata as m, importlib.util as u, os, shutil; "
            "print(json.dumps({'dists': {d.metadata['Name'].lower().replace('_', '-'): d.version "
            "for d in m.distributions()}, "
            "'uv': [shutil.which('uv'), u.find_spec('uv') is not None, os.path.exists('/opt/tools')]}))",
        )
    )
    dists = installed["dists"]
    assert installed["uv"] == [None, False, False]
    assert "pytest" not in dists  # ... and left out of the image (--no-dev)
    runtime = {name: version for name, version in lock.items() if name in dists}
    assert runtime["markupsafe"] == dists["markupsafe"]
    assert {n: dists[n] for n in runtime} == runtime  # every locked package at its locked version
    # nothing the lock does not name but the project (the venv is made --without-pip: no pip or
    # setuptools seed either)
    assert set(dists) - set(lock) == {"notes"}
    assert notes_image.report["size"] < BUDGET


def test_the_uv_project_answers_with_its_state_on_a_claim(notes_image: Built) -> None:
    docs = rendered(notes_image.bundle, "base")
    spec = from_workload(docs, SECRETS)
    assert spec.claims == [Claim("notes-state", "/var/lib/notes", owned=True)]
    assert [t.target for t in spec.tmpfs] == ["/tmp"]  # the state dir is the claim, not an emptyDir
    smoke(spec, notes_image.ref, "/notes")


def test_without_the_claim_the_state_dir_is_read_only_and_the_smoke_fails(notes_image: Built) -> None:
    docs = copy.deepcopy(rendered(notes_image.bundle, "base"))
    pod = pod_spec(docs)
    pod["volumes"] = [v for v in pod["volumes"] if v["name"] != "state"]
    container = pod["containers"][0]
    container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] != "state"]
    unwritable = r"(?s)exited with code 1 before /startup.*(not writable|unable to open)"
    with pytest.raises(SmokeError, match=unwritable):
        smoke(from_workload(docs, SECRETS), notes_image.ref, "/notes")


def test_a_lock_whose_hash_does_not_match_stops_the_build(
    notes_image: Built, build_args: list[str], tmp_path: Path
) -> None:
    """The image reads uv.lock itself: one changed hash in it (MarkupSafe's wheel) stops the build."""
    context = tmp_path / "ctx"
    shutil.copytree(notes_image.context, context, ignore=shutil.ignore_patterns("deploy"))
    lock = context / "uv.lock"
    text = lock.read_text()
    wheel = next((context / "wheels").glob("markupsafe-*.whl"))  # the file pip installs here
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert text.count(digest) == 1
    lock.write_text(text.replace(digest, "0" * 64))
    ref = f"localhost/pilothouse-test/notes-tampered:{TAG}"
    args = ["build", "--config", str(context / "pilothouse.toml"), "--engine", "buildah", "--tag", ref]
    refused = run_cli(*args, *build_args, timeout=900)
    assert refused.returncode == 1
    assert "DO NOT MATCH THE HASHES" in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("pilothouse: error: buildah build failed")
