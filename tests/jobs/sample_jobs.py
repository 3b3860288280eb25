"""Jobs the integration tests run in real worker processes (copied next to each test config).

Every step writes a line to the ledger file ($JOBS_LEDGER): "<job id> <attempt> <pid> <event>",
appended with O_APPEND so lines from concurrent processes never interleave.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from pilothouse.jobs import Param, StepContext, job

# Never the working directory: an in-process test without $JOBS_LEDGER must not litter the repo.
LEDGER = Path(os.environ.get("JOBS_LEDGER") or Path(tempfile.gettempdir()) / "pilothouse-jobs-ledger.txt")


def mark(ctx: StepContext, event: str) -> None:
    fd = os.open(LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{ctx.job_id} {ctx.attempt} {os.getpid()} {event}\n".encode())
    finally:
        os.close(fd)


tick = job("tick")


@tick.step()
async def once(ctx: StepContext) -> None:
    mark(ctx, "ran")
    await asyncio.sleep(0.005)


async def _cooperative_sleep(ctx: StepContext) -> None:
    mark(ctx, "start")
    await ctx.sleep(ctx.params["seconds"])
    ctx.raise_if_cancelled()
    mark(ctx, "done")


slow = job("slow", params={"seconds": Param(float, default=1.0)}, on_lost="requeue")
slow.step("wait")(_cooperative_sleep)

fragile = job("fragile", params={"seconds": Param(float, default=1.0)}, on_lost="fail")
fragile.step("wait")(_cooperative_sleep)

gated = job("gated", params={"gate": Param(str)})


@gated.step("wait")
async def wait_for_gate(ctx: StepContext) -> None:
    """Runs until the test creates the gate file: "still running" holds however busy the machine."""
    mark(ctx, "start")
    while not Path(ctx.params["gate"]).exists():
        await ctx.sleep(0.02)
        ctx.raise_if_cancelled()
    mark(ctx, "done")


stubborn = job("stubborn", params={"pidfile": Param(str)})


@stubborn.step()
async def hold(ctx: StepContext) -> None:
    """Ignores cooperative cancellation: only the worker's kill stops its subprocess."""
    mark(ctx, "start")
    await ctx.run("sh", "-c", f"echo $$ > {ctx.params['pidfile']}; exec sleep 30")
    mark(ctx, "done")


secretive = job("secretive")


@secretive.step()
def read_secret(ctx: StepContext) -> int:
    """Reads the live secret `db.url` (marks whether it matches $EXPECTED_DB_URL, never the
    value) and ends with RC 12: the mainframe-style reference's error case."""
    from pilothouse.secrets import live

    value = live("db.url").reveal()
    mark(ctx, "secret-ok" if value == os.environ["EXPECTED_DB_URL"] else "secret-wrong")
    return 12
