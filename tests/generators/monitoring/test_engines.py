"""The test daemons (`engines.py`) survive a port taken between the pick and the bind, as
`ServeProcess` does: the picked port is held by another process that even answers the readiness
probe with 200; the daemon must start on another port, and the URL must be its own."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import httpx
import pytest

from tests import helpers
from tests.generators.monitoring import engines


class Impostor(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_a_taken_port_moves_the_daemon_to_another(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    impostor = ThreadingHTTPServer(("127.0.0.1", 0), Impostor)
    Thread(target=impostor.serve_forever, daemon=True).start()
    taken = impostor.server_port
    picks = [taken]
    monkeypatch.setattr(engines, "free_port", lambda: picks.pop() if picks else helpers.free_port())
    prom = engines.prometheus(tmp_path, "engines", "127.0.0.1:1", [])
    try:
        assert prom.port != taken
        assert engines.listens(prom.proc.pid, prom.port)
        assert not engines.listens(prom.proc.pid, taken)
        assert httpx.get(f"{prom.url}/api/v1/status/flags", timeout=5).json()["data"]["config.file"] == str(
            tmp_path / "prometheus.yml"
        )
    finally:
        prom.stop()
        impostor.shutdown()
        impostor.server_close()
