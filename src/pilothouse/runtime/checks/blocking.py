"""Run a blocking driver call without letting it hang the probe or pile up threads.

Each check owns one thread slot. While an earlier call is still stuck in its driver, a new run
fails at once instead of starting another thread: a hung dependency costs one thread, not one
per probe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import TypeVar

from pilothouse.runtime.checks.result import CheckFailed, Probe

T = TypeVar("T")

_executor = concurrent.futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="pilothouse-check")


def in_thread(func: Callable[[], object]) -> Probe:
    """Wrap a blocking callable into a probe that runs it in the check thread pool."""
    pending: concurrent.futures.Future[object] | None = None

    async def probe() -> None:
        nonlocal pending
        if pending is not None and not pending.done():
            raise CheckFailed("previous run still in progress (dependency not answering)")
        pending = _executor.submit(func)
        await asyncio.wrap_future(pending)

    return probe
