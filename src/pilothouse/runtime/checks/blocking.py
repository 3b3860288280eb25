"""Run a blocking driver call without letting it hang the probe, pile up threads, or keep the
process alive.

Each call runs on its own daemon thread: a driver stuck forever (a blackholed database, a hung
NFS mount under `statvfs`) can neither block the event loop nor stop the process from exiting
after a graceful shutdown (a pool's worker threads are joined at exit; daemon threads are not).
Each check owns one slot: while an earlier call is still stuck, a new run fails at once instead
of starting another thread, so a hung dependency costs one thread, not one per probe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable

from pilothouse.runtime import threads
from pilothouse.runtime.checks.result import CheckFailed, Probe


def _consume(future: asyncio.Future[object]) -> None:
    if not future.cancelled():
        future.exception()


def in_thread(func: Callable[[], object]) -> Probe:
    """Wrap a blocking callable into a probe that runs it on a daemon thread."""
    pending: concurrent.futures.Future[object] | None = None

    async def probe() -> None:
        nonlocal pending
        if pending is not None and not pending.done():
            raise CheckFailed("previous run still in progress (dependency not answering)")
        pending = threads.start(func, name="pilothouse-check")
        # Shielded: the probe's timeout cancels the wait, not the future, so the slot stays taken
        # until the thread really returns.
        waiting = asyncio.wrap_future(pending)
        waiting.add_done_callback(_consume)  # a late failure after a timeout is not an error to log
        await asyncio.shield(waiting)

    return probe
