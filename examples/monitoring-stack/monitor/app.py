"""A status API of the monitoring stack: GET / says which components it watches. Plain ASGI, no
framework: the operations layer around it is the point of this example."""

from __future__ import annotations

import json
from typing import Any

COMPONENTS = ("prometheus", "grafana", "loki")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = json.dumps({"service": "monitor", "components": COMPONENTS}).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})
