"""The shared test helpers hold on a busy machine: a port taken between pick and bind is a retry;
`ServeProcess.stop` stops as an orchestrator does (SIGTERM, the drain, a kill only past a bound)."""

from __future__ import annotations

import json
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


STOPPING = """
[service]
name = "stopping"
app = "tests.apps.slow:app"

[lifecycle]
pre_stop_delay = "0s"
drain_timeout = "{drain}"
flush_timeout = "1s"

[telemetry]
log_format = "json"
"""


def test_stop_is_sigterm_and_the_last_lines_are_in_the_output(tmp_path: Path) -> None:
    """The shutdown runs to its end: exit 0, the last request's access line and the final
    "stopped" line are in the output (a kill ends the process with -9 before either is sure)."""
    server = ServeProcess(write_config(tmp_path, STOPPING.format(drain="5s")), cwd=helpers.ROOT).start()
    last = httpx.get(f"{server.app_url}/hello").headers["x-request-id"]
    assert server.stop() == 0
    assert not server.killed
    lines = [json.loads(line) for line in server.output.splitlines() if line.startswith("{")]
    assert any(line["logger"] == "pilothouse.access" and line.get("request_id") == last for line in lines)
    assert lines[-1]["message"] == "stopped", lines[-1]


def test_stop_kills_a_process_still_running_after_the_bound(tmp_path: Path) -> None:
    """An app whose shutdown blocks its event loop (60 s) and a drain deadline far beyond the
    bound: the runtime's own forced exit would come only after a minute; stop kills it."""
    config = write_config(tmp_path, STOPPING.format(drain="60s"))
    server = ServeProcess(config, cwd=helpers.ROOT, env={"SHUTDOWN_BLOCK": "60"}).start()
    assert server.stop(grace=1) == -9
    assert server.killed
