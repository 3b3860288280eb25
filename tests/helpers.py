"""Test helpers shared by every suite: free ports, config files, a real `pilothouse serve`."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
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


def eventually(condition: Callable[[], bool], timeout: float = 30) -> None:
    """Wait until `condition()` holds (polled every 50 ms), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


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


def rendered(bundle: Path, overlay: str) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize` renders from a generated bundle's `k8s/<overlay>`."""
    import yaml

    out = subprocess.run(
        ["kubectl", "kustomize", str(bundle / "k8s" / overlay)], capture_output=True, text=True, check=True
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The one object of `kind` (and `name`) among `docs`; fails unless there is exactly one."""
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


STOP_GRACE = 35.0
"""Seconds `ServeProcess.stop` waits after SIGTERM before it kills: above the default
`[lifecycle]` hard_exit_after (5 + 20 + 3 + 3 s), so a stuck shutdown ends with the runtime's
own forced exit first; the kill is for a process that does not exit at all."""


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
        nofile: int | None = None,
        command: tuple[str, ...] = ("serve",),
    ) -> None:
        """`nofile` lowers the process's open-file limit (soft and hard), to exhaust it cheaply;
        `command` runs another process kind with an ops port (`("jobs", "worker")`)."""
        self.nofile = nofile
        # Ports the caller did not fix are picked here and picked again when another process
        # takes one between the pick and serve's bind (see `start`).
        self._fixed_app_port, self._fixed_ops_port = app_port, ops_port
        self._extra_env = env or {}
        self._pick_ports()
        self.cmd = [*PILOTHOUSE, *command, "--config", str(config), *args]
        self.cwd = cwd or config.parent
        self.proc: subprocess.Popen[str] | None = None
        self.killed = False
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
        self.killed = False
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=self.cwd,
            env=self.env,
            text=True,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=self._limit_files if self.nofile else None,
        )
        return self.proc

    def _pick_ports(self) -> None:
        self.app_port = self._fixed_app_port or free_port()
        self.ops_port = self._fixed_ops_port or free_port()
        self.env = {
            **os.environ,
            "PILOTHOUSE_SERVICE__HOST": "127.0.0.1",
            "PILOTHOUSE_SERVICE__PORT": str(self.app_port),
            "PILOTHOUSE_OPS__HOST": "127.0.0.1",
            "PILOTHOUSE_OPS__PORT": str(self.ops_port),
            **self._extra_env,
        }

    def start(self, wait_ready: bool = True, timeout: float = 20) -> ServeProcess:
        """Start serve and wait for /startup (or /health); on a port collision, new ports.

        A port picked by `free_port` is free only when picked: on a busy machine another process
        can bind it first. Serve then exits with "Address already in use" — or, worse, the other
        process answers our probe. Both are collisions: new ports, another try.
        """
        tries = 1 if self._fixed_app_port and self._fixed_ops_port else 5
        for _ in range(tries):  # a port the caller fixed that is taken fails at once (see below)
            if self._start_once(wait_ready, timeout):
                return self
            self._pick_ports()
        raise RuntimeError(f"serve could not bind its ports ({tries} tries):\n{self.output}")

    def _start_once(self, wait_ready: bool, timeout: float) -> bool:
        """True when this process serves its ports; False on a port collision; raises otherwise."""
        self._log.seek(0)
        self._log.truncate()
        self.launch()
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "Address already in use" in self.output and not self._fixed_port_taken():
                    return False
                raise RuntimeError(f"serve exited with {self.proc.returncode}:\n{self.output}")
            try:
                r = httpx.get(
                    f"{self.ops_url}/startup" if wait_ready else f"{self.ops_url}/health", timeout=1
                )
                if r.status_code == 200:
                    if self._serves_itself():
                        return True
                    self.stop()
                    return False
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"serve did not start within {timeout}s:\n{self.output}")

    def _fixed_port_taken(self) -> bool:
        """Whether the port serve could not bind is one the caller chose (theirs to see fail)."""
        fixed = (p for p in (self._fixed_app_port, self._fixed_ops_port) if p)
        return any(f"127.0.0.1:{port} " in self.output for port in fixed)

    def _serves_itself(self) -> bool:
        """Whether the ops port that answered is this process's own (its /status names its pid)."""
        assert self.proc is not None
        try:
            pid = httpx.get(f"{self.ops_url}/status", timeout=5).json().get("pid")
        except (httpx.HTTPError, ValueError):
            return self.proc.poll() is None
        return bool(pid == self.proc.pid)

    def _limit_files(self) -> None:
        assert self.nofile is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def signal(self, sig: int = signal.SIGTERM) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 60) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self, grace: float = STOP_GRACE) -> int | None:
        """Stop as an orchestrator stops a pod: SIGTERM, then wait up to `grace` seconds for the
        shutdown (pre-stop wait, drain, flush), so the last log lines (the last request's access
        line) reach `output`; killed only when still running after that. The exit code (None
        when never launched); `killed` says whether the bound was reached."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> ServeProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def generate_with_hash_seeds(
    tmp: Path, *args: str, seeds: tuple[int, int] = (1, 2)
) -> list[dict[str, bytes]]:
    """`pilothouse generate ARGS --out DIR` in two processes with different PYTHONHASHSEED.

    Set and dict order of str keys differ between seeds, so generation that leans on either
    gives different files here, where one process generating twice never would.
    """
    trees = []
    out = tmp / "generated"  # one place: paths written into the files are the same both times
    for seed in seeds:
        shutil.rmtree(out, ignore_errors=True)
        result = run_cli("generate", *args, "--out", str(out), env={"PYTHONHASHSEED": str(seed)})
        assert result.returncode == 0, result.stderr
        trees.append({str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()})
    return trees


def alive(pid: int) -> bool:
    """Whether a process with this pid exists (a zombie counts until it is reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def self_signed_certificate(
    directory: Path,
    name: str,
    *,
    days: float,
    common_name: str = "127.0.0.1",
    issued_days_ago: float = 1,
    ip: str | None = None,
) -> tuple[Path, Path]:
    """A certificate signed by its own key, valid for `days` more days (negative: expired):
    `<name>.pem` and `<name>.key` (PKCS#8) in `directory`. With `ip`, it names that address
    and is its own CA, so a client can trust it as one (TLS tests)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=issued_days_ago))
        .not_valid_after(now + datetime.timedelta(days=days))
    )
    if ip is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False
        ).add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    cert = builder.sign(key, hashes.SHA256())
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path
