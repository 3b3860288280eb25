"""Blocking calls off the event loop, on daemon threads that never hold the process at exit.

`asyncio.to_thread` uses the loop's default executor, whose threads are joined when the loop
closes and again when the interpreter exits: one call stuck in a driver (a frozen database that
accepted the connection and went silent) keeps a stopped process alive for ever. Here every call
gets its own daemon thread; the caller still waits for the result, but once the process decides
to exit, nothing waits for a thread that is stuck.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _run(call: Callable[[], Any], future: concurrent.futures.Future[Any]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(call())
    except BaseException as exc:  # delivered to whoever awaits the future
        future.set_exception(exc)


def start(func: Callable[..., T], *args: Any, name: str = "pilothouse-call") -> concurrent.futures.Future[T]:
    """Start `func(*args)` on a new daemon thread (in a copy of the current context)."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()
    context = contextvars.copy_context()
    threading.Thread(
        target=_run, args=(lambda: context.run(func, *args), future), name=name, daemon=True
    ).start()
    return future


async def call(func: Callable[..., T], *args: Any) -> T:
    """`await asyncio.to_thread(func, *args)`, on a daemon thread."""
    return await asyncio.wrap_future(start(func, *args))
