"""Image: the demo shop's image size per layer, cold and warm build time, container start to /ready.

Builds with `pilothouse build` (buildah, chroot isolation) on the bases the image tests assemble
with mmdebstrap (tests/image/conftest.py; no registry pulls here), then runs the image as the
rendered Deployment says with the smoke, several times. Run: `.venv/bin/python bench/image.py`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import ROOT
from tests.image.conftest import RUN_ARGS, base_image, context_copy

from pilothouse.cli.smoke import free_ports, rendered
from pilothouse.image.engine import human
from pilothouse.image.runspec import from_workload
from pilothouse.image.smoke import run_smoke


def build(context: Path, tag: str, base: str, builder: str, *extra: str) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "pilothouse", "build", "--config", str(context / "pilothouse.toml"),
         "--engine", "buildah", "--tag", tag, "--format", "json",
         "--build-arg", f"BASE_IMAGE={base}", "--build-arg", f"BUILDER_IMAGE={builder}", *extra],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return time.monotonic() - started, json.loads(out.stdout)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="container starts to time")
    args = parser.parse_args(argv)
    runtime, builder = base_image("runtime"), base_image("builder")
    with tempfile.TemporaryDirectory() as tmp:
        wheel_dir = Path(tmp) / "wheel"
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheel_dir), str(ROOT)],
            check=True,
        )
        context = context_copy(ROOT / "examples" / "shop", Path(tmp) / "ctx", next(wheel_dir.glob("*.whl")))
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pilothouse",
                "build",
                "--config",
                str(context / "pilothouse.toml"),
                "--engine",
                "buildah",
                "--fill-wheelhouse",
                "--tag",
                "localhost/bench/shop:fill",
                "--build-arg",
                f"BASE_IMAGE={runtime}",
                "--build-arg",
                f"BUILDER_IMAGE={builder}",
            ],
            capture_output=True,
            check=True,
        )  # fmt: skip  (fills the wheelhouse so neither timed build touches the network)
        cold, report = build(context, "localhost/bench/shop:cold", runtime, builder, "--no-cache")
        warm, _ = build(context, "localhost/bench/shop:warm", runtime, builder)
        _, fuller = build(context, "localhost/bench/shop:minbase", builder, builder)
        bundle = context / "deploy"
        subprocess.run(
            [sys.executable, "-m", "pilothouse", "generate", "deploy",
             "--config", str(context / "pilothouse.toml"), "--out", str(bundle)],
            check=True, capture_output=True,
        )  # fmt: skip
        token = b"bench-5d41402abc4b2a76b9719d911017c592"  # the runtime refuses tokens under 24 chars
        spec = from_workload(rendered(bundle, "base"), {"shop-admin": {"token": token}})
        ready = [
            run_smoke(spec, report["image"], free_ports, route="/items", run_args=RUN_ARGS).ready_seconds
            for _ in range(args.runs)
        ]
    print(f"shop image {report['image']} {report['digest']}")
    print(f"  size {human(report['size'])} uncompressed, {human(report['compressed'])} gzip; layers:")
    for layer in report["layers"]:
        print(f"    {human(layer['size']):>9} {human(layer['compressed']):>9}  {layer['created_by'][:90]}")
    print(f"  on the Debian minbase builder image instead: {human(fuller['size'])} uncompressed")
    print(f"  build: cold (--no-cache) {cold:.1f}s, warm (all layers cached) {warm:.1f}s")
    print(
        f"  start to /ready 200 over {args.runs} runs: "
        f"median {statistics.median(ready):.2f}s, max {max(ready):.2f}s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
