"""What an attestation is about: files, the files of a directory, or an image digest.

A wheel or an image archive is one subject (its sha256); a generated bundle directory is one
subject per file, named by its path inside the directory, so a changed, added or removed file
shows up by name. An image pushed elsewhere is named by the digest given on the command line.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from pilothouse.errors import ConfigError

_DIGEST = re.compile(r"^sha256:([0-9a-f]{64})$")
SUFFIX = ".intoto.jsonl"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for block in iter(lambda: data.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_subjects(artifact: Path) -> list[dict[str, Any]]:
    """Subjects for a file or, for a directory, each regular file under it (sorted)."""
    if artifact.is_dir():
        files = sorted(p for p in artifact.rglob("*") if p.is_file() and not p.name.endswith(SUFFIX))
        if not files:
            raise ConfigError(f"{artifact}: the directory holds no file to attest")
        return [
            {
                "name": f"{artifact.name}/{p.relative_to(artifact).as_posix()}",
                "digest": {"sha256": sha256_file(p)},
            }
            for p in files
        ]
    if not artifact.is_file():
        raise ConfigError(f"{artifact}: no such file or directory")
    return [{"name": artifact.name, "digest": {"sha256": sha256_file(artifact)}}]


def image_subject(name: str, digest: str) -> dict[str, Any]:
    """An image by `sha256:<hex>` digest (what `podman push --digestfile` or a registry reports)."""
    match = _DIGEST.match(digest)
    if match is None:
        raise ConfigError(f"--image-digest: '{digest}' is not 'sha256:' followed by 64 hex digits")
    return {"name": name, "digest": {"sha256": match.group(1)}}


def envelope_path(artifact: Path) -> Path:
    """Where an artifact's provenance lives: beside it, `<name>.intoto.jsonl`."""
    return artifact.with_name(artifact.name + SUFFIX)
