"""The shared test helpers hold on a busy machine: a port taken between pick and bind is a retry."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import helpers
from tests.helpers import ServeProcess, write_config

CONFIG = """
[service]
name = "ports"
app = "tests.apps.slow:app"
"""


@pytest.fixture
def taken() -> Iterator[socket.socket]:
    """A port another process holds: bound, and answering nothing like pilothouse."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


@pytest.mark.parametrize("which", ["app", "ops"])
def test_serve_retries_when_a_picked_port_is_taken(
    which: str, taken: socket.socket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    picks = iter([taken.getsockname()[1]])
    real = helpers.free_port

    def first_pick_taken() -> int:
        return next(picks, None) or real()

    monkeypatch.setattr(helpers, "free_port", first_pick_taken)
    if which == "ops":  # the app port is picked first: let it through, take the ops port
        picks = iter([real(), taken.getsockname()[1]])
    server = ServeProcess(write_config(tmp_path, CONFIG), cwd=helpers.ROOT)
    with server:
        assert taken.getsockname()[1] not in (server.app_port, server.ops_port)
        assert httpx.get(f"{server.ops_url}/status").json()["pid"] == server.proc.pid  # type: ignore[union-attr]


def test_fixed_ports_that_are_taken_fail_clearly(taken: socket.socket, tmp_path: Path) -> None:
    port = taken.getsockname()[1]
    # Both ports fixed by the caller: nothing to pick again, the collision is the caller's to see.
    config = write_config(tmp_path, CONFIG)
    server = ServeProcess(config, app_port=port, ops_port=helpers.free_port(), cwd=helpers.ROOT)
    with pytest.raises(RuntimeError, match="Address already in use"):
        server.start()


def test_a_fixed_port_that_is_taken_fails_at_once(taken: socket.socket, tmp_path: Path) -> None:
    """Only the ops port is picked here; the app port the caller chose is taken: no retry."""
    server = ServeProcess(write_config(tmp_path, CONFIG), app_port=taken.getsockname()[1], cwd=helpers.ROOT)
    with pytest.raises(RuntimeError, match="serve exited with 1"):
        server.start()
