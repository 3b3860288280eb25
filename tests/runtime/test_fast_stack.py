"""The fast stack: `pilothouse serve` on httptools and uvloop when installed, `--http/--loop`
(over `[service] http/loop`) to choose, `--host/--port/--ops-port` over the file, and one line
(exit 2) for a parser or loop asked for by name but not installed. Each runs the real CLI."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import ROOT, ServeProcess, free_port, run_cli, write_config

CONFIG = """
[service]
name = "svc"
app = "tests.apps.slow:app"
{service}
[ops]
admin_token_env = "SVC_ADMIN_TOKEN"
[lifecycle]
pre_stop_delay = "0s"
"""


def serving_line(server: ServeProcess) -> str:
    httpx.get(f"{server.app_url}/slow?seconds=0", timeout=10).raise_for_status()
    return next(line for line in server.output.splitlines() if "serving svc on" in line)


@pytest.mark.parametrize(
    ("service", "args", "stack"),
    [
        ("", (), "(httptools, uvloop)"),  # auto: both are installed here (the dev extra has `fast`)
        ('http = "h11"\nloop = "asyncio"', (), "(h11, asyncio)"),
        (
            'http = "h11"\nloop = "asyncio"',
            ("--http", "httptools", "--loop", "uvloop"),
            "(httptools, uvloop)",
        ),
        ("", ("--http", "h11", "--loop", "asyncio"), "(h11, asyncio)"),
    ],
)
def test_serve_runs_the_stack_the_config_and_flags_choose(
    tmp_path: Path, service: str, args: tuple[str, ...], stack: str
) -> None:
    path = write_config(tmp_path, CONFIG.format(service=service))
    with ServeProcess(path, cwd=ROOT, args=args) as server:
        assert stack in serving_line(server)


def test_port_flags_win_over_the_config(tmp_path: Path) -> None:
    path = write_config(tmp_path, CONFIG.format(service="port = 1"))
    # The environment points both ports at 1 (not bindable): only the flags make this start.
    env = {"PILOTHOUSE_SERVICE__PORT": "1", "PILOTHOUSE_OPS__PORT": "2"}
    for _ in range(5):  # ports free when picked; another process may take one before serve binds
        app_port, ops_port = free_port(), free_port()
        args = ("--host", "127.0.0.1", "--port", str(app_port), "--ops-port", str(ops_port))
        server = ServeProcess(path, cwd=ROOT, env=env, args=args, app_port=app_port, ops_port=ops_port)
        try:
            server.start()
        except RuntimeError as exc:
            if "Address already in use" in str(exc) or "error while attempting to bind" in str(exc):
                continue
            raise
        with server:
            assert f"serving svc on 127.0.0.1:{app_port} " in serving_line(server)
            assert httpx.get(f"http://127.0.0.1:{ops_port}/health", timeout=5).status_code == 200
        return
    pytest.fail("no two free ports could be bound in 5 tries")


def test_a_bad_port_flag_is_one_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, CONFIG.format(service=""))
    result = run_cli("serve", "--config", str(path), "--port", "70000")
    assert result.returncode == 2
    assert "--port: '70000' is invalid: expected a TCP port, 1-65535" in result.stderr


@pytest.mark.parametrize(
    ("setting", "package"), [('loop = "uvloop"', "uvloop"), ('http = "httptools"', "httptools")]
)
def test_a_named_stack_that_is_not_installed_is_one_line(tmp_path: Path, setting: str, package: str) -> None:
    path = write_config(tmp_path, CONFIG.format(service=setting))
    # The package made unimportable in this process, as on an install without it.
    code = (
        f"import sys; sys.modules[{package!r}] = None; from pilothouse.cli import entrypoint; "
        f"sys.argv = ['pilothouse', 'serve', '--config', {str(path)!r}]; entrypoint()"
    )
    env = {"SVC_ADMIN_TOKEN": secrets.token_hex(32), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"service.{setting.split()[0]}" in lines[0] and f"'{package}' is not installed" in lines[0]
