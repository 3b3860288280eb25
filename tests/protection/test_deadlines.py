"""The time-limit sweep in process: its own cancellation becomes a 504, anyone else's (the
drain cancelling a request at shutdown) passes through as a cancellation."""

from __future__ import annotations

import asyncio
import contextlib
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


def limited(routes: list[dict[str, str]], default: str = "30s") -> ProtectionMiddleware:
    config = Config.model_validate(
        {"service": {"name": "t"}, "protection": {"limits": {"time_limit": default, "routes": routes}}}
    )
    return ProtectionMiddleware(sleepy, config.protection, None)


async def test_a_shorter_route_limit_is_not_held_up_by_a_longer_running_one() -> None:
    """The one timer fires at the earliest running deadline: a request under a short route limit
    that starts while a long one runs re-arms it earlier (else it would wait for the 30 s)."""
    app = limited([{"path": "/fast", "time_limit": "100ms"}])
    long_sent: list[dict[str, Any]] = []
    short_sent: list[dict[str, Any]] = []

    async def long_send(message: dict[str, Any]) -> None:
        long_sent.append(message)

    async def short_send(message: dict[str, Any]) -> None:
        short_sent.append(message)

    long = asyncio.create_task(app(scope(), None, long_send))  # type: ignore[arg-type]
    await asyncio.sleep(0)  # the long request is tracked first
    await asyncio.wait_for(app({**scope(), "path": "/fast"}, None, short_send), 10)  # type: ignore[arg-type]
    assert short_sent[0]["status"] == 504
    assert long_sent == [] and not long.done()
    long.cancel()
    with pytest.raises(asyncio.CancelledError):
        await long


async def test_no_timer_left_armed_when_no_request_runs() -> None:
    """No periodic wake-ups: once the requests are done, the timer fires (at the earliest
    deadline it was armed for), finds nothing running and is not armed again."""

    async def quick(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    config = Config.model_validate(
        {"service": {"name": "t"}, "protection": {"limits": {"time_limit": "50ms"}}}
    )
    app = ProtectionMiddleware(quick, config.protection, None)

    async def send(message: dict[str, Any]) -> None:
        pass

    for _ in range(3):
        await app(scope(), None, send)  # type: ignore[arg-type]
    deadlines = app.deadlines
    assert deadlines.armed
    async with asyncio.timeout(10):
        while deadlines.armed:
            await asyncio.sleep(0.01)
    await app(scope(), None, send)  # type: ignore[arg-type]
    assert deadlines.armed  # the next request arms it again


async def test_task_lookup_finds_the_running_task_and_falls_back_to_the_public_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The time limit finds the request's task through asyncio's private dict on 3.11 (a C
    `dict.get` instead of the Python `current_task`); only when that is exactly what
    `current_task` reads, else the public function."""
    from pilothouse.protection import deadlines

    loop = asyncio.get_running_loop()
    assert deadlines.current_task(loop) is asyncio.current_task() is not None
    lookup = deadlines.task_lookup()
    assert lookup(loop) is asyncio.current_task()
    with monkeypatch.context() as patch:  # as on 3.12+: current_task is a C function
        patch.setattr(asyncio, "current_task", {}.get)
        assert deadlines.task_lookup() is asyncio.current_task
    with monkeypatch.context() as patch:  # no such dict
        patch.delattr(asyncio.tasks, "_current_tasks")
        assert deadlines.task_lookup() is asyncio.current_task


async def test_a_cut_request_that_swallows_its_cancellation_is_not_remembered() -> None:
    """A handler may catch the cancellation and return normally; the cut task must not stay in
    the set of tasks cut here (a leak, one task per such request)."""

    async def stubborn(scope: Any, receive: Any, send: Any) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(60)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    config = Config.model_validate(
        {"service": {"name": "t"}, "protection": {"limits": {"time_limit": "50ms"}}}
    )
    app = ProtectionMiddleware(stubborn, config.protection, None)
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(app(scope(), None, send), 10)  # type: ignore[arg-type]
    assert sent[0]["status"] == 200
    assert not app.deadlines.running and not app.deadlines.cut
