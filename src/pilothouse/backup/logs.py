"""Log directories as a backup target, with rotation in mind.

A log directory changes while it is read: the active file grows, and logrotate may rename it
(`app.log` -> `app.log.1`), compress an older one or truncate it (`copytruncate`). So the manifest
does not record one digest of the tree but each file's facts taken before restic reads it: its
size and the sha256 of that many bytes, and whether it was unchanged when restic finished
(inode, size and mtime equal: a closed file, checked whole after a restore) or still written
(checked as a prefix: a log is appended to). A file rotated away or truncated during the backup
is recorded as such and not checked. Renamed files cost nothing in the repository: restic's
content-defined chunks of `app.log.1` are those of yesterday's `app.log`.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from pilothouse.errors import OperationError

CHUNK = 1 << 20


def files(root: Path, pattern: str) -> list[Path]:
    if not root.is_dir():
        raise OperationError(f"backup: log directory {root} does not exist")
    return sorted(p for p in root.rglob(pattern) if p.is_file() and not p.is_symlink())


def _prefix_sha(path: Path, size: int) -> str:
    sha, left = hashlib.sha256(), size
    with path.open("rb") as handle:
        while left > 0:
            chunk = handle.read(min(CHUNK, left))
            if not chunk:
                break
            sha.update(chunk)
            left -= len(chunk)
    return sha.hexdigest()


def _identity(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def before(root: Path, found: list[Path]) -> dict[str, dict[str, Any]]:
    """Each file's size, the sha256 of those bytes and its identity, before restic reads it."""
    facts = {}
    for path in found:
        identity = _identity(path)
        if identity is None:  # rotated away between the listing and now
            continue
        facts[str(path.relative_to(root))] = {
            "size": identity[1],
            "sha256": _prefix_sha(path, identity[1]),
            "identity": identity,
        }
    return facts


def after(root: Path, facts: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The facts with each file's state once restic finished: closed, appended, rotated, truncated."""
    out = {}
    for rel, fact in facts.items():
        now = _identity(root / rel)
        if now is None or now[0] != fact["identity"][0]:
            state = "rotated"
        elif now == tuple(fact["identity"]):
            state = "closed"
        elif now[1] >= fact["size"]:
            state = "appended"
        else:
            state = "truncated"
        out[rel] = {"size": fact["size"], "sha256": fact["sha256"], "state": state}
    return out


def check(restored: Path, facts: dict[str, dict[str, Any]], name: str) -> str:
    """Closed files equal, appended ones start with what they held before the backup."""
    counts = {"closed": 0, "appended": 0, "skipped": 0}
    for rel, fact in sorted(facts.items()):
        if fact["state"] in ("rotated", "truncated"):
            counts["skipped"] += 1
            continue
        path = restored / rel
        if not path.is_file():
            raise OperationError(f"restore-test: target '{name}': {rel} is missing after restore")
        size = path.stat().st_size
        short = size < fact["size"] or (fact["state"] == "closed" and size != fact["size"])
        if short or _prefix_sha(path, fact["size"]) != fact["sha256"]:
            raise OperationError(f"restore-test: target '{name}': {rel} differs after restore")
        counts[fact["state"]] += 1
    return (
        f"{counts['closed']} closed log file(s) equal, {counts['appended']} growing one(s) hold what "
        f"they had" + (f", {counts['skipped']} rotated during the backup" if counts["skipped"] else "")
    )


def files_from(paths: list[Path], into: Path) -> Path:
    """A `--files-from-verbatim` list (one path a line; names with a newline cannot be listed)."""
    listed = [str(p) for p in paths if "\n" not in str(p)]
    into.write_text("".join(f"{p}{os.linesep}" for p in listed))
    return into
