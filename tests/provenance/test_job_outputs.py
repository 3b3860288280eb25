"""Job runs attesting their outputs, end to end as a user runs them: a job whose steps declare
outputs runs (`pilothouse jobs run`, and a worker inside `pilothouse serve` with the key in a
secret), the run ends with a `provenance` step, and `pilothouse provenance verify` accepts each
output with the configured builder id and source — and refuses it once the output changed."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ServeProcess, run_cli, write_config
from tests.provenance.conftest import git

HERE = Path(__file__).parent
BUILDER = "https://ci.example/runners/shop-jobs"
REMOTE = "https://git.example/ci.git"
PROVENANCE_KEY_FILE = 'key = "signing.key"'


def checkout(root: Path, provenance: str | None = PROVENANCE_KEY_FILE, name: str = "cijobs") -> Path:
    """A git checkout holding the config and the jobs module, and a signing key beside them."""
    shutil.copy(HERE / "release_jobs.py", root / "release_jobs.py")
    section = f'[jobs.provenance]\n{provenance}\nbuilder_id = "{BUILDER}"\n' if provenance else ""
    config = write_config(
        root,
        f"""
[service]
name = "{name}"
version = "3.1"
app = "release_jobs:app"
state_dir = "state"

[lifecycle]
pre_stop_delay = "0s"

[telemetry]
log_format = "text"

[jobs]
module = "release_jobs"
poll_interval = "50ms"

{section}""",
    )
    (root / "state").mkdir()
    (root / ".gitignore").write_text("state/\n*.key\n*.pub\n__pycache__/\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "remote", "add", "origin", REMOTE)
    git(root, "add", ".")
    git(root, "commit", "-q", "-m", "jobs")
    made = run_cli("provenance", "keygen", "--key", str(root / "signing.key"))
    assert made.returncode == 0, made.stderr
    return config


def verify(artifact: Path, key: Path, *policy: str) -> tuple[int, str]:
    done = run_cli("provenance", "verify", str(artifact), "--key", str(key), *policy)
    return done.returncode, (done.stdout + done.stderr).strip()


def statement(envelope: Path) -> Any:
    return json.loads(base64.b64decode(json.loads(envelope.read_text())["payload"]))


def test_a_job_run_signs_its_outputs_and_verify_refuses_them_once_changed(tmp_path: Path) -> None:
    config = checkout(tmp_path)
    pub = tmp_path / "signing.key.pub"
    ran = run_cli("jobs", "run", "package", "-p", "version=1.2", "-c", str(config), "--format", "json")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    shown = json.loads(ran.stdout)
    assert [(s["name"], s["outcome"]) for s in shown["steps"]] == [
        ("build", "ok"),
        ("report", "warning"),
        ("provenance", "ok"),
    ]
    assert shown["outcome"] == "warning"
    tarball, reports = tmp_path / "state/dist/shop-1.2.tar", tmp_path / "state/reports/1.2"
    policy = ("--builder-id", BUILDER, "--source", REMOTE)
    assert verify(tarball, pub, *policy) == (
        0,
        f"verified: {tarball} built by {BUILDER} from git+{REMOTE}",
    )
    assert verify(reports, pub, *policy)[0] == 0

    # What was signed: the job, its parameters, the run, the checkout and the config it ran with.
    signed = statement(Path(f"{tarball}.intoto.jsonl"))
    assert signed["subject"] == statement(Path(f"{reports}.intoto.jsonl"))["subject"]
    assert sorted(s["name"] for s in signed["subject"]) == [
        "1.2/coverage.txt",
        "1.2/tests.txt",
        "shop-1.2.tar",
    ]
    definition, run = signed["predicate"]["buildDefinition"], signed["predicate"]["runDetails"]
    assert definition["buildType"].endswith("docs/provenance.md#job-run-v1")
    assert definition["externalParameters"] == {
        "job": "package",
        "parameters": {"version": "1.2"},
        "source": f"git+{REMOTE}",
    }
    assert definition["internalParameters"]["service"] == "cijobs"
    assert definition["internalParameters"]["serviceVersion"] == "3.1"
    assert definition["internalParameters"]["steps"] == [
        {"name": "build", "outcome": "ok", "rc": 0, "tries": 1},
        {"name": "report", "outcome": "warning", "rc": 4, "tries": 1},
    ]
    assert definition["resolvedDependencies"][0]["digest"] == {
        "gitCommit": git(tmp_path, "rev-parse", "HEAD")
    }
    assert definition["resolvedDependencies"][1]["name"] == "pilothouse.toml"
    assert run["metadata"]["invocationId"] == f"pilothouse-job:cijobs/{shown['id']}/1"
    assert run["metadata"]["startedOn"] <= run["metadata"]["finishedOn"]

    # Another builder or source is refused with its own reason.
    code, said = verify(tarball, pub, "--builder-id", "https://ci.example/other")
    assert code == 1 and f"builder: built by '{BUILDER}'" in said

    # Tampering with an output after the run: each refused, naming what changed.
    with tarball.open("ab") as out:
        out.write(b"backdoor\n")
    code, said = verify(tarball, pub, *policy)
    assert code == 1 and "subject: 'shop-1.2.tar' has sha256" in said, said
    (reports / "tests.txt").write_text("42 passed\n")  # unchanged content: still fine
    (reports / "extra.txt").write_text("added later\n")
    code, said = verify(reports, pub, *policy)
    assert code == 1 and "subject: file '1.2/extra.txt' is not attested (added after the build)" in said


def test_outputs_not_written_or_of_a_failed_run_are_not_signed(tmp_path: Path) -> None:
    config = checkout(tmp_path)
    forgot = run_cli("jobs", "run", "forgetful", "-c", str(config), "--format", "json")
    assert forgot.returncode == 1
    steps = json.loads(forgot.stdout)["steps"]
    assert [(s["name"], s["outcome"], s["rc"]) for s in steps] == [
        ("skip-writing", "ok", 0),
        ("provenance", "abend", 16),
    ]
    never = tmp_path / "state" / "never-written.txt"
    assert steps[1]["error"] == f"step 'skip-writing' declared output {never}, which it did not write"
    assert not Path(f"{never}.intoto.jsonl").exists()

    broken = run_cli("jobs", "run", "broken", "-c", str(config), "--format", "json")
    assert broken.returncode == 1
    assert [(s["name"], s["outcome"]) for s in json.loads(broken.stdout)["steps"]] == [
        ("half", "error"),
        ("provenance", "skipped"),
    ]
    assert (tmp_path / "state/half.txt").exists()
    assert not (tmp_path / "state/half.txt.intoto.jsonl").exists()
    code, said = verify(tmp_path / "state/half.txt", tmp_path / "signing.key.pub")
    assert code == 1 and "no provenance file (attest the artifact first)" in said


def test_a_parameter_cannot_take_an_output_out_of_the_state_directory(tmp_path: Path) -> None:
    config = checkout(tmp_path)
    ran = run_cli(
        "jobs", "run", "package", "-p", "version=../../escaped", "-c", str(config), "--format", "json"
    )
    assert ran.returncode == 1
    steps = json.loads(ran.stdout)["steps"]
    # reports/{version} would be <tmp>/escaped: refused before the step runs
    assert [(s["name"], s["outcome"]) for s in steps] == [
        ("build", "ok"),
        ("report", "abend"),
        ("provenance", "skipped"),
    ]
    assert steps[1]["error"] == (
        f"step 'report': output 'reports/{{version}}' resolves to {tmp_path}/state/reports/../../escaped, "
        f"outside {tmp_path}/state (check the parameters)"
    )
    assert not (tmp_path / "escaped").exists()


@pytest.mark.parametrize(
    ("provenance", "message"),
    [
        (
            None,
            "job 'broken' declares outputs but [jobs.provenance] is missing (add it with key = a 0600 "
            "key file or a secret reference)",
        ),
        ('key = "missing.key"', "missing.key: cannot read the key: No such file or directory"),
    ],
)
def test_outputs_without_a_usable_key_stop_before_anything_runs(
    tmp_path: Path, provenance: str | None, message: str
) -> None:
    config = checkout(tmp_path, provenance)
    ran = run_cli("jobs", "run", "package", "-p", "version=1", "-c", str(config))
    assert ran.returncode == 2, ran.stderr
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pilothouse: error: ") and message in lines[0], lines
    assert not (tmp_path / "state" / "pilothouse-jobs.sqlite3").exists()  # nothing was queued


def test_a_worker_in_serve_signs_with_a_key_from_a_secret(tmp_path: Path) -> None:
    config = checkout(tmp_path, 'key = { secret = "provenance.key" }', name="ciserve")
    pem = (tmp_path / "signing.key").read_text()
    (tmp_path / "signing.key").unlink()  # only the secret has it
    env = {"CISERVE_PROVENANCE_KEY": pem, "CISERVE_ADMIN_TOKEN": "t" * 40}
    with ServeProcess(config, env=env):
        done = run_cli(
            "jobs", "submit", "package", "-p", "version=2.0", "--wait", "-c", str(config), "--format", "json"
        )
    assert done.returncode == 0, done.stdout + done.stderr
    assert [s["name"] for s in json.loads(done.stdout)["steps"]][-1] == "provenance"
    tarball = tmp_path / "state/dist/shop-2.0.tar"
    assert verify(tarball, tmp_path / "signing.key.pub", "--builder-id", BUILDER)[0] == 0
    tarball.write_bytes(b"replaced\n")
    code, said = verify(tarball, tmp_path / "signing.key.pub")
    assert code == 1 and "which no attested subject has" in said
