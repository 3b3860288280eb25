"""`direct_call`: the app as its bound `__call__` where that is a Python method, else as it is."""

from __future__ import annotations

import asyncio
import functools
from types import MethodType
from typing import Any

from pilothouse.asgi import Message, Receive, Scope, Send, direct_call


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.seen.append(("called", scope["path"]))
        await send({"type": "http.response.start", "status": 204})


class Inherits(Recorder):
    pass


async def function_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 204})


async def _noop_receive() -> Message:
    return {"type": "http.request"}


def _run(app: Any) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "path": "/x"}, _noop_receive, send))
    return sent


def test_an_instance_is_called_by_its_bound_method_and_reaches_the_same_object() -> None:
    for app in (Recorder(), Inherits()):
        call = direct_call(app)
        assert type(call) is MethodType and call.__self__ is app
        assert _run(call) == [{"type": "http.response.start", "status": 204}]
        assert app.seen == [("called", "/x")]


def test_anything_else_is_called_as_it_is() -> None:
    partial = functools.partial(function_app)  # a C-level __call__: no bound method to gain
    assert direct_call(function_app) is function_app
    assert direct_call(partial) is partial
    assert _run(direct_call(partial)) == [{"type": "http.response.start", "status": 204}]
