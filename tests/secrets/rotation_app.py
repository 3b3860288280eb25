"""A tiny ASGI app that uses a live secret the way a connection pool would: it subscribes to
rotations and "reconnects". It reports counts and lengths, never the value."""

from __future__ import annotations

import json
from typing import Any

from pilothouse.secrets import SecretValue, live

state: dict[str, Any] = {"reconnects": 0, "length": 0}


def reconnect(value: SecretValue) -> None:
    state["reconnects"] += 1
    state["length"] = len(value.reveal())


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            secret = live("db.password")
            state["length"] = len(secret.reveal())
            secret.subscribe(reconnect)
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = json.dumps(state).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
