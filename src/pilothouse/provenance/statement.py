"""The in-toto Statement v1 with an SLSA Provenance v1 predicate that describes one build.

Field names follow https://slsa.dev/spec/v1.0/provenance (buildDefinition: buildType,
externalParameters, internalParameters, resolvedDependencies; runDetails: builder.id,
metadata.invocationId, startedOn, finishedOn) and the in-toto Statement v1 layout.
"""

from __future__ import annotations

import json
import platform
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pilothouse import __version__
from pilothouse.errors import ConfigError
from pilothouse.provenance.subjects import sha256_file

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://github.com/pilothouse/pilothouse/blob/main/docs/provenance.md#build-type-v1"
JOB_RUN_TYPE = "https://github.com/pilothouse/pilothouse/blob/main/docs/provenance.md#job-run-v1"
DEFAULT_BUILDER_ID = "https://github.com/pilothouse/pilothouse/blob/main/docs/provenance.md#local-builder"


@dataclass(frozen=True, slots=True)
class Source:
    """The git checkout a build came from: `git+<url>` and the commit it was at."""

    uri: str
    commit: str
    ref: str | None
    dirty: bool

    def dependency(self) -> dict[str, Any]:
        at = f"@{self.ref}" if self.ref else ""
        return {"uri": f"{self.uri}{at}", "digest": {"gitCommit": self.commit}}


def _git(directory: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_source(directory: Path) -> Source:
    """The checkout at `directory`; ConfigError when it is not one (provenance needs a source)."""
    commit = _git(directory, "rev-parse", "HEAD")
    if not commit:
        raise ConfigError(
            f"{directory}: not a git checkout with a commit; provenance needs the source revision"
        )
    remote = _git(directory, "config", "--get", "remote.origin.url")
    top = _git(directory, "rev-parse", "--show-toplevel") or str(directory.resolve())
    url = remote or Path(top).resolve().as_uri()
    ref = _git(directory, "symbolic-ref", "-q", "HEAD")
    dirty = bool(_git(directory, "status", "--porcelain", "--untracked-files=no"))
    return Source(f"git+{url}", commit, ref, dirty)


def file_dependency(path: Path, uri: str | None = None) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: no such file (a resolved dependency of the build)")
    return {"uri": uri or path.name, "name": path.name, "digest": {"sha256": sha256_file(path)}}


def image_dependency(reference: str) -> dict[str, Any]:
    """`name@sha256:<hex>` — a base image is only a dependency when pinned by digest."""
    name, _, digest = reference.partition("@sha256:")
    if not name or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ConfigError(f"--base-image: '{reference}' is not NAME@sha256:<64 hex digits>")
    return {"uri": f"oci://{name}", "digest": {"sha256": digest}}


def timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class Build:
    """Everything known about one build; `statement()` lays it out as SLSA Provenance v1."""

    subjects: list[dict[str, Any]]
    source: Source | None  # None: not built from a known checkout (a job run outside one)
    builder_id: str = DEFAULT_BUILDER_ID
    invocation_id: str = ""
    started_on: datetime | None = None
    finished_on: datetime | None = None
    dependencies: list[dict[str, Any]] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    build_type: str = BUILD_TYPE
    internal: dict[str, Any] = field(default_factory=dict)

    def statement(self) -> dict[str, Any]:
        metadata: dict[str, Any] = {"invocationId": self.invocation_id}
        if self.started_on is not None:
            metadata["startedOn"] = timestamp(self.started_on)
        if self.finished_on is not None:
            metadata["finishedOn"] = timestamp(self.finished_on)
        external: dict[str, Any] = {"source": self.source.uri} if self.source else {}
        internal: dict[str, Any] = {
            "pilothouseVersion": __version__,
            "python": platform.python_version(),
            **({"sourceDirty": self.source.dirty} if self.source else {}),
            **self.internal,
        }
        source = [self.source.dependency()] if self.source else []
        return {
            "_type": STATEMENT_TYPE,
            "subject": self.subjects,
            "predicateType": PREDICATE_TYPE,
            "predicate": {
                "buildDefinition": {
                    "buildType": self.build_type,
                    "externalParameters": {**external, **self.parameters},
                    "internalParameters": internal,
                    "resolvedDependencies": [*source, *self.dependencies],
                },
                "runDetails": {"builder": {"id": self.builder_id}, "metadata": metadata},
            },
        }

    def payload(self) -> bytes:
        """Canonical bytes (sorted keys, no spaces): the same build gives the same payload."""
        return json.dumps(self.statement(), sort_keys=True, separators=(",", ":")).encode()
