"""Real Prometheus and Alertmanager processes for tests, on free loopback ports, plus a webhook
receiver that records what Alertmanager sends."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.helpers import free_port

START_TRIES = 5


def listens(pid: int, port: int) -> bool:
    """Whether process `pid` owns the socket listening on `port` (Linux: its descriptors'
    socket inodes against the kernel's table of listening TCP sockets)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port and inode in inodes:
                return True
    return False


class Engine:
    """A daemon started with a temp directory on a free loopback port; stopped (terminated,
    then killed) on exit.

    Like `ServeProcess`, a port picked by `free_port` is free only when picked: when another
    process binds it first, the daemon exits with "address already in use" (or the other process
    answers the readiness probe); that is a collision, and the daemon starts again on a new port.
    """

    def __init__(
        self,
        command: Callable[[int], list[str]],
        ready_path: str,
        name: str,
        log: Path,
        port: int | None = None,
    ) -> None:
        """`port`: start on that port (a restart where the data names it), with no retry."""
        self.name, self.log = name, log
        for _ in range(1 if port else START_TRIES):
            self.port = port or free_port()
            self.url = f"http://127.0.0.1:{self.port}"
            self.proc = subprocess.Popen(command(self.port), stdout=log.open("wb"), stderr=subprocess.STDOUT)
            try:
                if self._ready(ready_path):
                    return
            except RuntimeError:
                self.stop()
                raise RuntimeError(f"{name} failed to start:\n{log.read_text()[-2000:]}") from None
            self.stop()
        raise RuntimeError(f"{name} could not bind a port ({START_TRIES} tries):\n{log.read_text()[-2000:]}")

    def _ready(self, path: str, timeout: float = 20) -> bool:
        """True once this daemon answers ready on its own port; False on a port collision."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "address already in use" in self.log.read_text(errors="replace").lower():
                    return False
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            try:
                if httpx.get(self.url + path, timeout=1).status_code == 200:
                    return listens(self.proc.pid, self.port)
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready within {timeout}s")

    def reload(self, config: dict[str, Any], path: Path) -> None:
        """Write a new config to `path` (the file it was started with) and send SIGHUP, which
        Prometheus answers by reloading it."""
        path.write_text(yaml.safe_dump(config))
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def prometheus(
    tmp: Path,
    job: str,
    target: str,
    rule_files: list[Path],
    alertmanager: str | None = None,
    interval: str = "1s",
) -> Engine:
    """Prometheus scraping `target` (host:port) as `job`, evaluating `rule_files`."""
    scrape = [{"job_name": job, "static_configs": [{"targets": [target]}]}]
    return prometheus_with(tmp, scrape, rule_files, alertmanager, interval)


def prometheus_config(
    scrape_configs: list[dict[str, Any]],
    rule_files: list[Path],
    alertmanager: str | None = None,
    interval: str = "1s",
) -> dict[str, Any]:
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": scrape_configs,
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return config


def prometheus_with(
    tmp: Path,
    scrape_configs: list[dict[str, Any]],
    rule_files: list[Path],
    alertmanager: str | None = None,
    interval: str = "1s",
) -> Engine:
    """Prometheus with the given scrape configs (relabeling and all), evaluating `rule_files`;
    `Engine.reload(prometheus_config(...))` swaps them while it runs."""
    config = prometheus_config(scrape_configs, rule_files, alertmanager, interval)
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed (make tools)"

    def command(port: int) -> list[str]:
        return [
            binary,
            f"--config.file={path}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]

    return Engine(command, "/-/ready", "prometheus", tmp / "prometheus.log")


def alertmanager(tmp: Path, config: Path) -> Engine:
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    assert binary, "alertmanager is not installed (make tools)"

    def command(port: int) -> list[str]:
        return [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ]

    return Engine(command, "/-/ready", "alertmanager", tmp / "alertmanager.log")


class Webhook:
    """An HTTP server recording every Alertmanager webhook payload it receives, with its path
    (one server can stand in for several receivers: /page, /ticket...)."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        received = self.payloads

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received.append({**json.loads(body), "path": self.path, "received": time.monotonic()})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # the kernel picks; no race
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
