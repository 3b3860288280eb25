"""Fixtures for the real services on this machine. They fail (never skip) when a service is down:
`make test` starts them, and a silent skip would hide a broken setup in CI."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> str:
    if not _reachable(5432):
        pytest.fail("PostgreSQL is not running on 127.0.0.1:5432 (run `make services`)")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _reachable(6379):
        pytest.fail("Redis is not running on 127.0.0.1:6379 (run `make services`)")
    return REDIS_URL


@pytest.fixture
def refused_port() -> Iterator[Callable[[], int]]:
    """Loopback ports where nothing listens, for "the service is down" cases: each is held
    bound (not listening) until the test ends, so connecting is refused and no other process
    (the other xdist worker, a server another test starts) can take it meanwhile — unlike a
    port picked with `free_port()`, which is free only at the moment it is picked."""
    held: list[socket.socket] = []

    def take() -> int:
        sock = socket.socket()
        held.append(sock)
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port

    yield take
    for sock in held:
        sock.close()


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`make test` runs two xdist workers with `--dist loadfile`: each test file goes to one
    worker, so a module's fixtures (an example's whole stack, a Prometheus) start once; and all
    of `tests/image` goes to one, because its session fixtures assemble base images into one
    cache and build images under one tag per checkout, which two workers would do at once.

    xdist's own `loadgroup` (an `xdist_group` mark) does not group with pytest 9.2: it renames
    `item._nodeid`, which that pytest no longer reads. Scopes are xdist's documented seam
    instead: `LoadFileScheduling` is `LoadScopeScheduling` with `_split_scope` giving the file."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FileOrImageScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return "tests/image" if module.startswith("tests/image/") else module

    return FileOrImageScheduling(config, log)
