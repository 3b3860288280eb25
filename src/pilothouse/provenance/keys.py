"""Ed25519 signing keys: made here, kept in a 0600 file or a secret, public half shareable.

The key id is securesystemslib's default (sha256 of the canonical JSON of keytype, scheme and
hex public key), so envelopes name keys the way in-toto tooling does.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING

from pilothouse.errors import ConfigError
from pilothouse.files import create

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


def _crypto() -> None:
    try:
        import cryptography  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError(
            "provenance needs the 'provenance' extra: pip install 'pilothouse[provenance]'"
        ) from None


def keyid(public: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key = {"keytype": "ed25519", "keyval": {"public": raw.hex()}, "scheme": "ed25519"}
    return hashlib.sha256(json.dumps(key, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def public_pem(public: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode()


def generate(path: Path) -> Ed25519PrivateKey:
    """A new key at `path` (created 0600, never over an existing file) and `path`.pub beside it."""
    _crypto()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    public_path = path.with_name(path.name + ".pub")
    for target in (path, public_path):
        if target.exists():
            raise ConfigError(f"{target}: already exists; refusing to overwrite a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    create(path, pem, 0o600)
    public_path.write_text(public_pem(key.public_key()))
    return key


def load_private(pem: str, where: str) -> Ed25519PrivateKey:
    """The private key in `pem` (from a file or a secret named by `where`)."""
    _crypto()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"{where}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{where}: not an Ed25519 key")
    return key


def read_private(path: Path) -> Ed25519PrivateKey:
    try:
        if path.stat().st_mode & 0o077:
            raise ConfigError(f"{path}: the private key is readable by others; chmod 600 {path}")
        return load_private(path.read_text(), str(path))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the key: {exc.strerror}") from None


def read_public(path: Path) -> Ed25519PublicKey:
    _crypto()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the public key: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise ConfigError(f"{path}: not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path}: not an Ed25519 public key")
    return key
