"""Real Prometheus and Alertmanager processes for tests, on free loopback ports, plus a webhook
receiver that records what Alertmanager sends."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.helpers import free_port


def _wait_ready(url: str, proc: subprocess.Popen[bytes], name: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name} not ready within {timeout}s")


class Engine:
    """A daemon started with a temp directory; stopped (terminated, then killed) on exit."""

    def __init__(self, cmd: list[str], url: str, ready_path: str, name: str, log: Path) -> None:
        self.url, self.name, self.log = url, name, log
        self.proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        try:
            _wait_ready(url + ready_path, self.proc, name)
        except RuntimeError:
            self.stop()
            raise RuntimeError(f"{name} failed to start:\n{log.read_text()[-2000:]}") from None

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


def prometheus(tmp: Path, job: str, target: str, rule_files: list[Path],
               alertmanager: str | None = None, interval: str = "1s") -> Engine:
    """Prometheus scraping `target` (host:port) as `job`, evaluating `rule_files`."""
    scrape = [{"job_name": job, "static_configs": [{"targets": [target]}]}]
    return prometheus_with(tmp, scrape, rule_files, alertmanager, interval)


def prometheus_config(scrape_configs: list[dict[str, Any]], rule_files: list[Path],
                      alertmanager: str | None = None, interval: str = "1s") -> dict[str, Any]:
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": scrape_configs,
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return config


def prometheus_with(tmp: Path, scrape_configs: list[dict[str, Any]], rule_files: list[Path],
                    alertmanager: str | None = None, interval: str = "1s") -> Engine:
    """Prometheus with the given scrape configs (relabeling and all), evaluating `rule_files`;
    `Engine.reload(prometheus_config(...))` swaps them while it runs."""
    port = free_port()
    config = prometheus_config(scrape_configs, rule_files, alertmanager, interval)
    path = tmp / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not installed (make tools)"
    cmd = [binary, f"--config.file={path}", f"--storage.tsdb.path={tmp / 'tsdb'}",
           f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    return Engine(cmd, f"http://127.0.0.1:{port}", "/-/ready", "prometheus", tmp / "prometheus.log")


def alertmanager(tmp: Path, config: Path) -> Engine:
    port = free_port()
    binary = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
    assert binary, "alertmanager is not installed (make tools)"
    cmd = [binary, f"--config.file={config}", f"--storage.path={tmp / 'am-data'}",
           f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"]
    return Engine(cmd, f"http://127.0.0.1:{port}", "/-/ready", "alertmanager", tmp / "alertmanager.log")


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
