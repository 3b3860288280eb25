"""Fixtures for the real services on this machine. They fail (never skip) when a service is down:
`make test` starts them, and a silent skip would hide a broken setup in CI."""

from __future__ import annotations

import socket

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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`make test` runs two xdist workers with `--dist loadgroup`: each test file is one group,
    so a module's fixtures (a whole example stack, a Prometheus) start once, on one worker; the
    image tests are one group because their session fixtures build images under one tag per
    checkout, which two workers would build at once."""
    for item in items:
        module = item.nodeid.split("::", 1)[0]
        group = "tests/image" if module.startswith("tests/image/") else module
        item.add_marker(pytest.mark.xdist_group(group))
