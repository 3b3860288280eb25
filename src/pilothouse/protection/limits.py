"""Request limits (`[protection.limits]`): body size, header size and count, and the time limit
of each route pattern.

A declared `Content-Length` over the limit is refused before the app runs; a body without one
(chunked) is counted as the app reads it, and the read that crosses the limit raises
`BodyTooLarge` instead of handing the app more — so the app never holds more than the limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from pilothouse.asgi import Message, Receive
from pilothouse.config.protection import LimitsConfig
from pilothouse.protection.paths import path_matcher


class BodyTooLarge(Exception):
    """Raised into the app by `BodyLimit.receive` when the body passes the limit."""


class RouteLimit(NamedTuple):
    max_body_size: int
    time_limit: float


class LimitTable:
    """The limits for a path: the first matching `[[protection.limits.routes]]` entry, with the
    section's values for what it leaves out; the section's values when none matches."""

    __slots__ = ("default", "max_header_count", "max_header_size", "routes")

    def __init__(self, config: LimitsConfig) -> None:
        self.default = RouteLimit(config.max_body_size, config.time_limit)
        self.max_header_size = config.max_header_size
        self.max_header_count = config.max_header_count
        self.routes: tuple[tuple[Callable[[str], bool], RouteLimit], ...] = tuple(
            (
                path_matcher([route.path]),
                RouteLimit(
                    route.max_body_size if route.max_body_size is not None else config.max_body_size,
                    route.time_limit if route.time_limit is not None else config.time_limit,
                ),
            )
            for route in config.routes
        )

    def for_path(self, path: str) -> RouteLimit:
        for matches, limit in self.routes:
            if matches(path):
                return limit
        return self.default


class BodyLimit:
    """`receive` counting the body bytes the app reads, refusing to go past `limit`."""

    __slots__ = ("_receive", "limit", "received")

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self.limit = limit
        self.received = 0

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                raise BodyTooLarge
        return message
