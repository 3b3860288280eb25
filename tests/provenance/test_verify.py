"""`pilothouse provenance attest|verify` on a real wheel, a bundle directory and an image digest:
a valid envelope passes, and each kind of tampering fails with its own one-line reason."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pilothouse.provenance.dsse import pae
from pilothouse.provenance.statement import DEFAULT_BUILDER_ID
from tests.helpers import run_cli
from tests.provenance.conftest import REMOTE, Project, git

BUILDER = "https://ci.example/runners/shop"


def attest(project: Project, artifact: Path, *extra: str) -> Path:
    done = run_cli(
        "provenance",
        "attest",
        str(artifact),
        "--key",
        str(project.key),
        "--lock",
        str(project.lock),
        "--base-image",
        "localhost/python-base@sha256:" + "ab" * 32,
        "--builder-id",
        BUILDER,
        "--source-dir",
        str(project.root),
        *extra,
    )
    assert done.returncode == 0, done.stderr
    envelope = artifact.with_name(artifact.name + ".intoto.jsonl")
    assert envelope.is_file()
    return envelope


def verify(project: Project, artifact: Path, *extra: str, key: Path | None = None) -> tuple[int, str]:
    done = run_cli("provenance", "verify", str(artifact), "--key", str(key or project.public), *extra)
    return done.returncode, (done.stdout + done.stderr).strip()


def statement_of(envelope: Path) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(base64.b64decode(json.loads(envelope.read_text())["payload"]))
    return payload


def test_pae_matches_the_dsse_specification_vector() -> None:
    # protocol.md "Test Vectors" (github.com/secure-systems-lab/dsse): LEN counts bytes.
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("tyb\u00e9", b"x") == b"DSSEv1 5 tyb\xc3\xa9 1 x"


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(project: Project) -> None:
    assert project.key.stat().st_mode & 0o777 == 0o600
    assert project.public.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    before = project.key.read_bytes()
    again = run_cli("provenance", "keygen", "--key", str(project.key))
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"pilothouse: error: {project.key}: already exists; refusing to overwrite a key"
    ]
    assert project.key.read_bytes() == before


def test_keygen_prints_the_public_half_of_a_key_kept_in_a_secret(project: Project, tmp_path: Path) -> None:
    config = tmp_path / "pilothouse.toml"
    config.write_text('[service]\nname = "shop"\n\n[secrets]\nsources = ["env"]\n')
    done = run_cli(
        "provenance",
        "keygen",
        "--key-secret",
        "provenance.key",
        "--config",
        str(config),
        env={"SHOP_PROVENANCE_KEY": project.key.read_text()},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == project.public.read_text()
    assert "PRIVATE" not in done.stdout + done.stderr


def test_a_readable_private_key_is_refused(project: Project, tmp_path: Path) -> None:
    loose = tmp_path / "loose.key"
    shutil.copy(project.key, loose)
    loose.chmod(0o644)
    done = run_cli("provenance", "attest", str(project.wheel), "--key", str(loose))
    assert done.returncode == 2
    assert f"{loose}: the private key is readable by others" in done.stderr
    assert not loose.with_name(project.wheel.name + ".intoto.jsonl").exists()


def test_a_wheel_from_python_build_is_attested_with_slsa_v1_fields_and_verifies(project: Project) -> None:
    envelope = attest(project, project.wheel, "--build-command", "python -m build --wheel")
    statement = statement_of(envelope)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    (subject,) = statement["subject"]
    assert subject["name"] == project.wheel.name
    definition = statement["predicate"]["buildDefinition"]
    assert definition["externalParameters"]["source"] == f"git+{REMOTE}"
    assert definition["externalParameters"]["buildCommand"] == "python -m build --wheel"
    assert definition["internalParameters"]["sourceDirty"] is False
    deps = {d["uri"]: d["digest"] for d in definition["resolvedDependencies"]}
    assert deps[f"git+{REMOTE}@refs/heads/main"] == {"gitCommit": git(project.root, "rev-parse", "HEAD")}
    assert deps["requirements.lock"]["sha256"] == hashlib.sha256(project.lock.read_bytes()).hexdigest()
    assert deps["oci://localhost/python-base"] == {"sha256": "ab" * 32}
    run = statement["predicate"]["runDetails"]
    assert run["builder"]["id"] == BUILDER
    assert run["metadata"]["invocationId"].startswith("urn:uuid:")
    assert run["metadata"]["startedOn"] <= run["metadata"]["finishedOn"]
    code, out = verify(project, project.wheel, "--builder-id", BUILDER, "--source", REMOTE)
    assert code == 0, out
    assert out == f"verified: {project.wheel} built by {BUILDER} from git+{REMOTE}"


def _edit(envelope: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(envelope.read_text())
    change(data)
    envelope.write_text(json.dumps(data) + "\n")


def _payload(change: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def edit(envelope: dict[str, Any]) -> None:
        statement = json.loads(base64.b64decode(envelope["payload"]))
        change(statement)
        envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()

    return edit


def _flip_signature(envelope: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(envelope["signatures"][0]["sig"]))
    raw[10] ^= 0x01
    envelope["signatures"][0]["sig"] = base64.b64encode(bytes(raw)).decode()


def _truncate_signature(envelope: dict[str, Any]) -> None:
    envelope["signatures"][0]["sig"] = base64.b64encode(
        base64.b64decode(envelope["signatures"][0]["sig"])[:40]
    ).decode()


def _other_subject(statement: dict[str, Any]) -> None:
    statement["subject"][0]["digest"]["sha256"] = "0" * 64


def _payload_type(envelope: dict[str, Any]) -> None:
    envelope["payloadType"] = "application/json"


TAMPERING = {
    # what was tampered with: (how, the reason verify must give)
    "payload": (
        _payload(_other_subject),
        "does not verify: the payload or the signature was altered after signing",
    ),
    "signature": (_flip_signature, "does not verify: the payload or the signature was altered after signing"),
    "signature-encoding": (_truncate_signature, "the signature is 40 bytes, not an Ed25519 signature (64)"),
    "payload-type": (_payload_type, "payload type 'application/json' is not 'application/vnd.in-toto+json'"),
}


@pytest.mark.parametrize("what", sorted(TAMPERING))
def test_a_tampered_envelope_fails_with_its_reason(project: Project, tmp_path: Path, what: str) -> None:
    wheel = tmp_path / project.wheel.name
    shutil.copy(project.wheel, wheel)
    envelope = attest(project, wheel)
    change, reason = TAMPERING[what]
    _edit(envelope, change)
    code, out = verify(project, wheel)
    assert code == 1
    assert len(out.splitlines()) == 1
    assert out.startswith(f"pilothouse: error: {wheel}: provenance does not verify: ")
    assert out.endswith(reason)


def test_a_changed_artifact_fails_on_its_digest(project: Project, tmp_path: Path) -> None:
    wheel = tmp_path / project.wheel.name
    shutil.copy(project.wheel, wheel)
    attest(project, wheel)
    with wheel.open("ab") as out:
        out.write(b"\0")
    code, out = verify(project, wheel)
    assert code == 1
    assert f"subject: '{wheel.name}' has sha256 " in out
    assert "which no attested subject has" in out


def test_another_key_fails_on_the_key(project: Project, tmp_path: Path) -> None:
    wheel = tmp_path / project.wheel.name
    shutil.copy(project.wheel, wheel)
    attest(project, wheel)
    other = tmp_path / "other.key"
    assert run_cli("provenance", "keygen", "--key", str(other)).returncode == 0
    code, out = verify(project, wheel, key=tmp_path / "other.key.pub")
    assert code == 1
    assert "provenance does not verify: no signature by the given key " in out
    assert "the envelope is signed by " in out


@pytest.mark.parametrize(
    ("option", "value", "reason"),
    [
        (
            "--builder-id",
            DEFAULT_BUILDER_ID,
            f"builder: built by '{BUILDER}', expected '{DEFAULT_BUILDER_ID}'",
        ),
        (
            "--source",
            "https://git.example/evil.git",
            f"source: built from 'git+{REMOTE}', expected 'https://git.example/evil.git'",
        ),
    ],
)
def test_an_unexpected_builder_or_source_fails(
    project: Project, option: str, value: str, reason: str
) -> None:
    attest(project, project.wheel)
    code, out = verify(project, project.wheel, option, value)
    assert code == 1
    assert out == f"pilothouse: error: {project.wheel}: provenance does not verify: {reason}"


def test_every_failure_has_a_reason_of_its_own(project: Project) -> None:
    reasons = [reason for _, reason in TAMPERING.values()]
    # payload and signature share one: with one Ed25519 signature, a changed payload and a
    # changed signature are the same mathematical failure; nothing honest can tell them apart.
    assert len(set(reasons)) == len(reasons) - 1


def test_a_bundle_directory_names_the_file_that_changed_appeared_or_went(
    project: Project, tmp_path: Path
) -> None:
    config = tmp_path / "pilothouse.toml"
    config.write_text('[service]\nname = "shop"\n')
    bundle = tmp_path / "deploy"
    made = run_cli("generate", "deploy", "--config", str(config), "--out", str(bundle))
    assert made.returncode == 0, made.stderr
    attest(project, bundle)
    assert verify(project, bundle)[0] == 0
    victim = sorted(p for p in bundle.rglob("*") if p.is_file())[0]
    name = f"deploy/{victim.relative_to(bundle).as_posix()}"
    original = victim.read_bytes()
    victim.write_bytes(original + b"# extra\n")
    code, out = verify(project, bundle)
    assert (code, f"subject: '{name}' has sha256 " in out, "(the artifact changed)" in out) == (1, True, True)
    victim.unlink()
    code, out = verify(project, bundle)
    assert (code, out.endswith(f"subject: attested file '{name}' is missing")) == (1, True)
    victim.write_bytes(original)
    (bundle / "extra.yaml").write_text("kind: ConfigMap\n")
    code, out = verify(project, bundle)
    assert (
        code,
        out.endswith("subject: file 'deploy/extra.yaml' is not attested (added after the build)"),
    ) == (
        1,
        True,
    )


def test_an_image_is_attested_by_digest(project: Project, tmp_path: Path) -> None:
    digest = "sha256:" + "5e" * 32
    out = tmp_path / "shop-image.intoto.jsonl"
    done = run_cli(
        "provenance",
        "attest",
        "--image-digest",
        digest,
        "--image-name",
        "registry.example/shop",
        "--output",
        str(out),
        "--key",
        str(project.key),
        "--source-dir",
        str(project.root),
    )
    assert done.returncode == 0, done.stderr
    assert statement_of(out)["subject"] == [
        {"name": "registry.example/shop", "digest": {"sha256": "5e" * 32}}
    ]
    base = ["provenance", "verify", "--key", str(project.public), "--provenance", str(out)]
    assert run_cli(*base, "--image-digest", digest).returncode == 0
    other = run_cli(*base, "--image-digest", "sha256:" + "6f" * 32)
    assert other.returncode == 1
    assert "which no attested subject has" in other.stderr
    bad = run_cli(*base, "--image-digest", "latest")
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "pilothouse: error: --image-digest: 'latest' is not 'sha256:' followed by 64 hex digits"
    )


def test_attest_outside_a_git_checkout_writes_nothing(project: Project, tmp_path: Path) -> None:
    wheel = tmp_path / project.wheel.name
    shutil.copy(project.wheel, wheel)
    done = run_cli(
        "provenance", "attest", str(wheel), "--key", str(project.key), "--source-dir", str(tmp_path)
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"pilothouse: error: {tmp_path}: not a git checkout with a commit; "
        "provenance needs the source revision"
    ]
    assert list(tmp_path.iterdir()) == [wheel]
