"""DSSE envelopes (github.com/secure-systems-lab/dsse, protocol v1): sign and open.

The signature covers PAE(payloadType, payload), never the payload alone, so a signature made
for one payload type cannot pass as another. Signatures are base64 as envelope.md specifies
(securesystemslib writes and reads the same since its PR #565).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pilothouse.provenance.keys import keyid

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"


class EnvelopeError(Exception):
    """The envelope is unusable; the message is the one-line reason `verify` reports."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """ "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body, lengths in bytes (protocol.md)."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign(payload: bytes, key: Ed25519PrivateKey, payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> dict[str, Any]:
    """A one-signature envelope over `payload`."""
    signature = key.sign(pae(payload_type, payload))
    return {
        "payload": base64.b64encode(payload).decode(),
        "payloadType": payload_type,
        "signatures": [{"keyid": keyid(key.public_key()), "sig": base64.b64encode(signature).decode()}],
    }


@dataclass(frozen=True, slots=True)
class Opened:
    """An envelope whose signature verified: the exact bytes the signature covered."""

    payload_type: str
    payload: bytes


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise EnvelopeError(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError(f"{what} is not valid base64") from None


def parse(line: str) -> dict[str, Any]:
    """One JSON envelope (a line of a .intoto.jsonl file), shape-checked."""
    try:
        envelope = json.loads(line)
    except json.JSONDecodeError as exc:
        raise EnvelopeError(f"not a DSSE envelope: invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(envelope, dict) or not {"payload", "payloadType", "signatures"} <= envelope.keys():
        raise EnvelopeError("not a DSSE envelope: expected payload, payloadType and signatures")
    if not isinstance(envelope["signatures"], list) or not envelope["signatures"]:
        raise EnvelopeError("the envelope carries no signature")
    return envelope


def open_envelope(envelope: dict[str, Any], key: Ed25519PublicKey) -> Opened:
    """Verify the signature made by `key` and return what it covers; EnvelopeError says why not.

    The payload is decoded once and those bytes are both checked and returned (protocol.md:
    never re-read the envelope after verifying)."""
    from cryptography.exceptions import InvalidSignature

    payload_type = envelope["payloadType"]
    if payload_type != IN_TOTO_PAYLOAD_TYPE:
        raise EnvelopeError(f"payload type '{payload_type}' is not '{IN_TOTO_PAYLOAD_TYPE}'")
    payload = _b64(envelope["payload"], "the payload")
    wanted = keyid(key)
    # keyid is a hint (protocol.md): a signature without one is tried too.
    candidates = [
        s for s in envelope["signatures"] if isinstance(s, dict) and s.get("keyid", wanted) == wanted
    ]
    if not candidates:
        others = ", ".join(sorted(str(s.get("keyid")) for s in envelope["signatures"] if isinstance(s, dict)))
        raise EnvelopeError(
            f"no signature by the given key {wanted[:16]}…; the envelope is signed by {others}"
        )
    for entry in candidates:
        signature = _b64(entry.get("sig"), "the signature")
        if len(signature) != 64:
            raise EnvelopeError(f"the signature is {len(signature)} bytes, not an Ed25519 signature (64)")
        try:
            key.verify(signature, pae(payload_type, payload))
        except InvalidSignature:
            continue
        return Opened(payload_type, payload)
    raise EnvelopeError(
        f"the signature by key {wanted[:16]}… does not verify: the payload or the signature was "
        "altered after signing"
    )
