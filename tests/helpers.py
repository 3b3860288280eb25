"""Test helpers shared by every suite: free ports, config files, a real `pilothouse serve`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PILOTHOUSE = [sys.executable, "-m", "pilothouse"]
SHOP_DIR = ROOT / "examples" / "shop"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def write_config(directory: Path, body: str, name: str = "pilothouse.toml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(body))
    return path


def run_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run `pilothouse ARGS` as a user would and capture its output."""
    return subprocess.run(
        [*PILOTHOUSE, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


class ServeProcess:
    """`pilothouse serve` in a subprocess on free loopback ports.

    Extra config can be appended; `PILOTHOUSE_*` overrides pin hosts and ports.
    """

    def __init__(
        self,
        config: Path,
        *,
        app_port: int | None = None,
        ops_port: int | None = None,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.app_port = app_port or free_port()
        self.ops_port = ops_port or free_port()
        self.env = {
            **os.environ,
            "PILOTHOUSE_SERVICE__HOST": "127.0.0.1",
            "PILOTHOUSE_SERVICE__PORT": str(self.app_port),
            "PILOTHOUSE_OPS__HOST": "127.0.0.1",
            "PILOTHOUSE_OPS__PORT": str(self.ops_port),
            **(env or {}),
        }
        self.cmd = [*PILOTHOUSE, "serve", "--config", str(config), *args]
        self.cwd = cwd or config.parent
        self.proc: subprocess.Popen[str] | None = None
        # Output goes to a file, not a pipe: a pipe nobody reads fills at 64 KiB and blocks the
        # served process mid-test (a few hundred JSON access-log lines).
        self._log = tempfile.TemporaryFile(mode="w+", encoding="utf-8")  # noqa: SIM115 - lives as long as the process

    @property
    def output(self) -> str:
        """Everything the process printed so far (stdout and stderr)."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read()

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.app_port}"

    @property
    def ops_url(self) -> str:
        return f"http://127.0.0.1:{self.ops_port}"

    def launch(self) -> subprocess.Popen[str]:
        """Start the process without waiting for it."""
        self.proc = subprocess.Popen(
            self.cmd, cwd=self.cwd, env=self.env, text=True, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self.proc

    def start(self, wait_ready: bool = True, timeout: float = 20) -> ServeProcess:
        self.launch()
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited with {self.proc.returncode}:\n{self.output}")
            try:
                r = httpx.get(
                    f"{self.ops_url}/startup" if wait_ready else f"{self.ops_url}/health", timeout=1
                )
                if r.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"serve did not start within {timeout}s:\n{self.output}")

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.wait()

    def __enter__(self) -> ServeProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
