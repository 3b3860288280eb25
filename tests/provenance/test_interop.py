"""Envelopes cross both ways with securesystemslib, the DSSE implementation in-toto uses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner, SSlibKey

from pilothouse.provenance import keys
from tests.helpers import run_cli
from tests.provenance.conftest import REMOTE, Project
from tests.provenance.test_verify import attest, statement_of, verify


def test_securesystemslib_verifies_what_pilothouse_signs(project: Project) -> None:
    envelope = attest(project, project.wheel)
    public = keys.read_public(project.public)
    accepted = Envelope.from_dict(json.loads(envelope.read_text())).verify([SSlibKey.from_crypto(public)], 1)
    assert list(accepted) == [keys.keyid(public)]


def test_pilothouse_verifies_what_securesystemslib_signs(project: Project, tmp_path: Path) -> None:
    wheel = tmp_path / project.wheel.name
    shutil.copy(project.wheel, wheel)
    statement = statement_of(attest(project, wheel))  # the statement, re-signed by the other library
    private = serialization.load_pem_private_key(project.key.read_bytes(), password=None)
    signer = CryptoSigner(private)  # type: ignore[arg-type]
    theirs = Envelope(json.dumps(statement).encode(), "application/vnd.in-toto+json", {})
    theirs.sign(signer)
    wheel.with_name(wheel.name + ".intoto.jsonl").write_text(json.dumps(theirs.to_dict()) + "\n")
    code, out = verify(project, wheel, "--source", REMOTE)
    assert code == 0, out
    # and a securesystemslib envelope whose payload was changed is refused by the signature
    theirs.payload = theirs.payload.replace(b"shop", b"shoq")
    wheel.with_name(wheel.name + ".intoto.jsonl").write_text(json.dumps(theirs.to_dict()) + "\n")
    code, out = verify(project, wheel)
    assert code == 1
    assert out.endswith("does not verify: the payload or the signature was altered after signing")


def test_securesystemslib_refuses_a_tampered_pilothouse_envelope(project: Project, tmp_path: Path) -> None:
    from securesystemslib.exceptions import VerificationError

    wheel = tmp_path / project.wheel.name
    shutil.copy(project.wheel, wheel)
    data = json.loads(attest(project, wheel).read_text())
    data["payloadType"] = "application/json"
    public = keys.read_public(project.public)
    try:
        Envelope.from_dict(data).verify([SSlibKey.from_crypto(public)], 1)
    except VerificationError:
        pass
    else:
        raise AssertionError("securesystemslib accepted a changed payload type")
    assert run_cli("provenance", "verify", str(wheel), "--key", str(project.public)).returncode == 0
