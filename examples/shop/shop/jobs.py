"""The shop's batch jobs, found through `[jobs] module = "shop.jobs"` in pilothouse.toml.

pilothouse jobs run restock-report --param threshold=10
pilothouse jobs submit reindex --wait
"""

from __future__ import annotations

from pilothouse.jobs import WARNING, Param, StepContext, job
from shop.db import store_from_env

restock = job(
    "restock-report",
    params={"threshold": Param(int, default=5, help="report items with fewer in stock")},
    description="Nightly: list items running low; warn (RC 4) if any.",
)


@restock.step(timeout="30s", idempotent=True, retries=2, backoff="1s")
async def scan(ctx: StepContext) -> int:
    store = store_from_env()
    await store.open()
    try:
        items = await store.items()
    finally:
        await store.close()
    low = [i["sku"] for i in items if i["stock"] < ctx.params["threshold"]]
    ctx.shared["low"] = low
    ctx.log.info("%d item(s) below the threshold", len(low))
    return WARNING if low else 0


@restock.step(when_below=8)
def publish(ctx: StepContext) -> None:
    ctx.log.info("restock report: %s", ", ".join(ctx.shared["low"]) or "nothing to restock")


reindex = job("reindex", params={"seconds": Param(float, default=2.0)}, on_lost="requeue")


@reindex.step()
async def rebuild(ctx: StepContext) -> None:
    """A slow step that stops early when cancelled (drain --force, jobs cancel)."""
    await ctx.sleep(ctx.params["seconds"])  # pretend to rebuild; wakes early when cancelled
    ctx.raise_if_cancelled()


@reindex.step()
def swap(ctx: StepContext) -> None:
    ctx.log.info("new index live")
