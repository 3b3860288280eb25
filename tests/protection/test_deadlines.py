"""The time-limit sweep in process: its own cancellation becomes a 504, anyone else's (the
drain cancelling a request at shutdown) passes through as a cancellation."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pilothouse.config.model import Config
from pilothouse.protection.middleware import ProtectionMiddleware


async def sleepy(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(60)


def middleware(time_limit: str) -> ProtectionMiddleware:
    config = Config.model_validate(
        {"service": {"name": "t"}, "protection": {"limits": {"time_limit": time_limit}}}
    )
    return ProtectionMiddleware(sleepy, config.protection, None)


def scope() -> dict[str, Any]:
    return {
        "type": "http",
        "method": "GET",
        "path": "/",
        "scheme": "http",
        "client": ("127.0.0.1", 1),
        "headers": [],
    }


async def test_own_deadline_answers_504() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(middleware("100ms")(scope(), None, send), 10)  # type: ignore[arg-type]
    assert sent[0]["status"] == 504


async def test_someone_elses_cancellation_passes_through() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    task = asyncio.create_task(middleware("30s")(scope(), None, send))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert sent == []
