"""Build an image with the container engine that is present: docker, podman or buildah.

Each engine gets the generated Dockerfile and its ignore file (BuildKit reads
`<Dockerfile>.dockerignore` by itself; podman and buildah are given `--ignorefile`), its output is
streamed while it runs, and the result is measured the same way for all three: the image is
exported as a docker-archive and its layers are counted as stored (uncompressed) and gzip'd (what a
registry transfers).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pilothouse.errors import ConfigError, OperationError
from pilothouse.image import ENGINES


def find_engine(wanted: str | None = None) -> str:
    """The engine to use: `wanted` if installed, else the first of docker, podman, buildah found."""
    for name in [wanted] if wanted else ENGINES:
        if shutil.which(name):
            return name
    if wanted:
        raise OperationError(f"--engine {wanted}: {wanted} is not installed (looked on PATH)")
    raise OperationError("no container engine found: install docker, podman or buildah")


def build_command(
    engine: str,
    dockerfile: Path,
    ignorefile: Path,
    context: Path,
    tag: str,
    build_args: Sequence[str] = (),
    isolation: str | None = "chroot",
    no_cache: bool = False,
) -> list[str]:
    """The engine's build command. `isolation` applies to podman and buildah (chroot runs RUN
    steps where the default OCI isolation cannot set rlimits, e.g. inside another container)."""
    args = [a for item in build_args for a in ("--build-arg", item)] + (["--no-cache"] if no_cache else [])
    if engine == "docker":
        return ["docker", "build", "--progress=plain", "-f", str(dockerfile), "-t", tag, *args, str(context)]
    head = ["buildah", "bud"] if engine == "buildah" else ["podman", "build"]
    extra = ["--isolation", isolation] if isolation else []
    return [
        *head,
        *extra,
        "--format",
        "docker",  # OCI images drop HEALTHCHECK
        "--layers",
        "--ignorefile",
        str(ignorefile),
        "-f",
        str(dockerfile),
        "-t",
        tag,
        *args,
        str(context),
    ]


def run_streaming(command: list[str], progress: Callable[[str], None], cwd: Path | None = None) -> None:
    """Run `command`, passing each output line to `progress`; fail with the last lines on error."""
    tail: list[str] = []
    with subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip("\n")
            progress(line)
            tail = [*tail[-19:], line]
    if proc.returncode != 0:
        last = next((t for t in reversed(tail) if t.strip()), "")
        raise OperationError(f"{command[0]} build failed (exit {proc.returncode}): {last}")


@dataclass(frozen=True, slots=True)
class Layer:
    created_by: str
    size: int
    compressed: int


@dataclass(frozen=True, slots=True)
class ImageReport:
    """What `pilothouse build` prints: reference, digest (the image ID) and sizes."""

    reference: str
    digest: str
    layers: tuple[Layer, ...]

    @property
    def size(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def compressed(self) -> int:
        return sum(layer.compressed for layer in self.layers)


def _save_command(engine: str, reference: str, target: Path) -> list[str]:
    if engine == "docker":
        return ["docker", "save", "-o", str(target), reference]
    if engine == "podman":
        return ["podman", "save", "--format", "docker-archive", "-o", str(target), reference]
    return ["buildah", "push", reference, f"docker-archive:{target}:{reference}"]


def _gzip_size(stream: IO[bytes]) -> tuple[int, int]:
    """(bytes read, bytes after gzip level 6): what a registry would store for this layer."""
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)
    raw = packed = 0
    while chunk := stream.read(1 << 20):
        raw += len(chunk)
        packed += len(packer.compress(chunk))
    return raw, packed + len(packer.flush())


def measure_archive(archive: Path, reference: str) -> ImageReport:
    """Sizes per layer from a docker-archive (manifest.json, the config's history, layer tars)."""
    with tarfile.open(archive) as tar:

        def member(name: str) -> IO[bytes]:
            handle = tar.extractfile(name)
            if handle is None:
                raise OperationError(f"{archive}: {name} missing from the image archive")
            return handle

        manifest = json.load(member("manifest.json"))[0]
        config_bytes = member(manifest["Config"]).read()
        history = [h for h in json.loads(config_bytes).get("history", []) if not h.get("empty_layer")]
        layers = []
        for index, name in enumerate(manifest["Layers"]):
            size, compressed = _gzip_size(member(name))
            created = history[index].get("created_by", "") if index < len(history) else ""
            layers.append(Layer(created, size, compressed))
    digest = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    return ImageReport(reference, digest, tuple(layers))


def measure(engine: str, reference: str) -> ImageReport:
    """Export the image and measure it (every engine exports a docker-archive)."""
    with tempfile.TemporaryDirectory(prefix="pilothouse-image-") as tmp:
        target = Path(tmp) / "image.tar"
        result = subprocess.run(_save_command(engine, reference, target), capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise OperationError(f"{engine}: could not export {reference}: {last}")
        return measure_archive(target, reference)


def human(size: int) -> str:
    """Decimal megabytes, as engines print image sizes."""
    return f"{size / 1e6:.1f} MB"


def check_build_args(build_args: Sequence[str]) -> None:
    for item in build_args:
        if "=" not in item or not item.split("=", 1)[0]:
            raise ConfigError(f"--build-arg {item!r}: expected NAME=VALUE")


def stderr_progress(line: str) -> None:
    print(f"  | {line}", file=sys.stderr, flush=True)
