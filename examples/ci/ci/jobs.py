"""Builds and configuration sync, as Pilothouse jobs.

`build` checks a pipeline's source out into a workspace, compiles it, packages the artifact and
reports the build's state to the runners' status API over gRPC (`ci/runner_api.py`); the
`package` step declares its output, so the run signs SLSA provenance for it
(`[jobs.provenance]`). `config-sync` stands in for configuration-as-code sync: it writes the
stamp the `config-sync` freshness check reads.
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import time
from pathlib import Path

from ci import runner_api
from pilothouse.jobs import Param, StepContext, job

# The state directory: systemd's StateDirectory= (the unit sets this variable), a volume elsewhere.
STATE = Path(os.environ.get("PILOTHOUSE_SERVICE__STATE_DIR", "/var/lib/ci"))

build = job(
    "build",
    params={"pipeline": Param(str), "run": Param(int), "seconds": Param(float, default=0.0)},
    description="check out, compile and package a pipeline; the artifact gets signed provenance",
)


def _workspace(ctx: StepContext) -> Path:
    return Path(ctx.shared["workspace"])


@build.step(idempotent=True, retries=1)
def checkout(ctx: StepContext) -> None:
    workspace = STATE / "workspaces" / f"{ctx.params['pipeline']}-{ctx.params['run']}"
    (workspace / "src").mkdir(parents=True, exist_ok=True)
    (workspace / "src" / "main.py").write_text(f"print('{ctx.params['pipeline']} run {ctx.params['run']}')\n")
    ctx.shared["workspace"] = str(workspace)


@build.step(timeout="10m")
async def compile(ctx: StepContext) -> int:
    """Compile (stands for the real build: it takes `seconds`, and can be cancelled meanwhile)."""
    if await ctx.sleep(ctx.params["seconds"]):
        ctx.raise_if_cancelled()
    source = (_workspace(ctx) / "src" / "main.py").read_bytes()
    (_workspace(ctx) / "main.pyc.txt").write_text(hashlib.sha256(source).hexdigest())
    return 0


@build.step(outputs=["artifacts/{pipeline}-{run}.tar.gz"])
def package(ctx: StepContext) -> None:
    (artifact,) = ctx.outputs
    artifact.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(artifact, "w:gz") as tar:
        tar.add(_workspace(ctx) / "src", arcname="src")
        tar.add(_workspace(ctx) / "main.pyc.txt", arcname="main.pyc.txt")


@build.step(idempotent=True, retries=2)
async def report(ctx: StepContext) -> None:
    """Tell the runners' status API (gRPC) the build is packaged."""
    build_name = f"{ctx.params['pipeline']}-{ctx.params['run']}"
    await runner_api.send_report({"build": build_name, "state": "packaged"})


config_sync = job("config-sync", description="sync configuration-as-code; touches the freshness stamp")


@config_sync.step(idempotent=True, retries=2)
def sync(ctx: StepContext) -> None:
    stamp = STATE / "config-sync.stamp"
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(f"{time.time():.0f}\n")
