"""Check a provenance envelope against an artifact and a policy, with one reason per failure.

Order matters: the signature first (nothing in an unverified payload is read), then the
statement's types, the subjects against the artifact's digests, the builder id, the source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pilothouse.errors import OperationError
from pilothouse.provenance.dsse import EnvelopeError, open_envelope, parse
from pilothouse.provenance.statement import PREDICATE_TYPE, STATEMENT_TYPE

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class VerificationFailed(OperationError):
    """The provenance does not hold for the artifact; the message is the one reason."""


@dataclass(frozen=True, slots=True)
class Policy:
    """What the verifier expects beyond a good signature (None: not checked)."""

    builder_id: str | None = None
    source: str | None = None


def _same_source(attested: str, expected: str) -> bool:
    def norm(uri: str) -> str:
        uri = uri.removeprefix("git+").rstrip("/")
        return uri.removesuffix(".git")

    return norm(attested.split("@refs/")[0]) == norm(expected)


def _check_subjects(statement: dict[str, Any], expected: list[dict[str, Any]], directory: bool) -> None:
    attested = [s for s in statement.get("subject", []) if isinstance(s, dict)]
    by_name = {s.get("name"): s.get("digest", {}).get("sha256") for s in attested}
    digests = set(by_name.values())
    for subject in expected:
        digest = subject["digest"]["sha256"]
        if directory:
            if subject["name"] not in by_name:
                raise VerificationFailed(
                    f"subject: file '{subject['name']}' is not attested (added after the build)"
                )
            if by_name[subject["name"]] != digest:
                raise VerificationFailed(
                    f"subject: '{subject['name']}' has sha256 {digest[:16]}…, the provenance attests "
                    f"{str(by_name[subject['name']])[:16]}… (the artifact changed)"
                )
        elif digest not in digests:
            raise VerificationFailed(
                f"subject: '{subject['name']}' has sha256 {digest[:16]}…, which no attested subject has "
                "(the artifact changed, or this provenance is for another one)"
            )
    if directory:
        present = {s["name"] for s in expected}
        prefix = f"{expected[0]['name'].split('/')[0]}/"
        missing = sorted(
            n for n in by_name if isinstance(n, str) and n.startswith(prefix) and n not in present
        )
        if missing:
            raise VerificationFailed(f"subject: attested file '{missing[0]}' is missing")


def check(
    envelope_text: str,
    key: Ed25519PublicKey,
    expected: list[dict[str, Any]],
    policy: Policy,
    directory: bool = False,
) -> dict[str, Any]:
    """The verified statement, or VerificationFailed with the first reason it does not hold."""
    lines = [line for line in envelope_text.splitlines() if line.strip()]
    if not lines:
        raise VerificationFailed("the provenance file is empty")
    failures: list[str] = []
    for line in lines:
        try:
            return _check_one(line, key, expected, policy, directory)
        except (VerificationFailed, EnvelopeError) as exc:
            failures.append(str(exc))
    raise VerificationFailed(failures[0])


def _check_one(
    line: str, key: Ed25519PublicKey, expected: list[dict[str, Any]], policy: Policy, directory: bool
) -> dict[str, Any]:
    opened = open_envelope(parse(line), key)
    try:
        statement = json.loads(opened.payload)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise VerificationFailed("the signed payload is not JSON") from None
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise VerificationFailed(
            f"the payload is not an in-toto Statement v1 (_type must be '{STATEMENT_TYPE}')"
        )
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise VerificationFailed(
            f"predicateType '{statement.get('predicateType')}' is not SLSA Provenance v1 ('{PREDICATE_TYPE}')"
        )
    _check_subjects(statement, expected, directory)
    predicate = statement.get("predicate") or {}
    builder = ((predicate.get("runDetails") or {}).get("builder") or {}).get("id")
    if policy.builder_id is not None and builder != policy.builder_id:
        raise VerificationFailed(f"builder: built by '{builder}', expected '{policy.builder_id}'")
    if policy.source is not None:
        source = ((predicate.get("buildDefinition") or {}).get("externalParameters") or {}).get("source")
        if not isinstance(source, str) or not _same_source(source, policy.source):
            raise VerificationFailed(f"source: built from '{source}', expected '{policy.source}'")
    return statement


def read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        raise VerificationFailed(f"{path}: no provenance file (attest the artifact first)") from None
    except OSError as exc:
        raise VerificationFailed(f"{path}: cannot read the provenance: {exc.strerror}") from None
