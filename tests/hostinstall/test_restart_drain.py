"""A restart as the generated unit makes systemd do it, against a real `pilothouse serve`.

No systemd runs here (a container without an init), so systemd's part is modelled from its
documentation and everything else is real: the process is started with the unit's `ExecStart`,
`WorkingDirectory` and `Environment=` lines; stopping follows systemd.kill(5) for the unit's
`KillMode=mixed` and `KillSignal=SIGTERM` — SIGTERM to the main process only, and only if it is
still running after `TimeoutStopSec`, SIGKILL to every process left — and systemd.service(5):
without `ExecStop=` the stop is that signal. What is modelled, not run: the cgroup (the process
group stands in), `StateDirectory=` (a directory the test makes, passed as systemd's environment
would), `DynamicUser=`/the sandbox, and the `EnvironmentFile=` (its variables passed directly).

The restart of an upgrade is `systemctl try-restart` (hostinstall/installer.py): this stop, then
the same `ExecStart`, which goes through the venv link the upgrade switched before.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shlex
import shutil
import signal
import socket
import sys
from pathlib import Path

import httpx

from pilothouse.config import load_config
from pilothouse.generators.deploy.systemd import unit
from tests.helpers import ROOT, ServeProcess, eventually, run_cli, write_config

JOBS = """
import os
from pathlib import Path

from pilothouse.jobs import Param, StepContext, job

long = job("long", params={"seconds": Param(float)})


@long.step()
async def work(ctx: StepContext) -> None:
    Path(os.environ["DRAIN_STARTED"]).write_text(str(ctx.job_id))
    await ctx.sleep(ctx.params["seconds"])
    ctx.raise_if_cancelled()
"""


def service_section(text: str) -> dict[str, list[str]]:
    """The [Service] keys of a unit, each with its values in order (keys may repeat)."""
    keys: dict[str, list[str]] = {}
    section = ""
    for line in text.splitlines():
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            keys.setdefault(key, []).append(value)
    return keys


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except ConnectionRefusedError:
        return True


def deployed(tmp_path: Path) -> tuple[Path, dict[str, list[str]]]:
    """The host layout the installer makes, under tmp_path: the venv link, the config, the app in
    the working directory; and the [Service] keys of the unit it writes."""
    opt, etc = tmp_path / "opt/drainer", tmp_path / "etc/drainer"
    for directory in (opt / "app", opt / "releases", etc, tmp_path / "var/lib/drainer"):
        directory.mkdir(parents=True)
    (opt / "releases/1.0").symlink_to(sys.prefix)  # this checkout's venv stands for the release
    (opt / "venv").symlink_to("releases/1.0")
    shutil.copy(ROOT / "tests/apps/slow.py", opt / "app/slowapp.py")
    (opt / "app/drainjobs.py").write_text(JOBS)
    config = write_config(
        etc,
        f"""
[service]
name = "drainer"
version = "1.0"
app = "slowapp:app"
[lifecycle]
pre_stop_delay = "1s"
drain_timeout = "8s"
flush_timeout = "1s"
[jobs]
module = "drainjobs"
path = "jobs.sqlite3"
poll_interval = "50ms"
[deploy.systemd]
venv = "{opt}/venv"
working_directory = "{opt}/app"
config_path = "{etc}/pilothouse.toml"
environment_file = "{etc}/drainer.env"
""",
    )
    return config, service_section(unit(load_config(config)))


def test_the_units_stop_drains_requests_and_jobs_then_the_same_execstart_serves_again(
    tmp_path: Path,
) -> None:
    config_path, service = deployed(tmp_path)
    config = load_config(config_path)
    lifecycle = config.lifecycle

    # The unit stops with a signal the runtime drains on, and gives it the runtime's whole budget.
    assert service["KillSignal"] == ["SIGTERM"] and service["KillMode"] == ["mixed"]
    assert "ExecStop" not in service  # the stop is the signal: nothing else runs first
    stop_budget = int(service["TimeoutStopSec"][0].removesuffix("s"))
    assert stop_budget == lifecycle.stop_timeout_seconds
    assert stop_budget >= lifecycle.pre_stop_delay + lifecycle.drain_timeout + lifecycle.flush_timeout

    # Started the way systemd starts it: ExecStart, WorkingDirectory, Environment=.
    env = dict(value.split("=", 1) for value in service["Environment"])
    env["PILOTHOUSE_SERVICE__STATE_DIR"] = str(tmp_path / "var/lib/drainer")  # StateDirectory=
    env["DRAINER_ADMIN_TOKEN"] = "a" * 40  # from the EnvironmentFile
    started = tmp_path / "job-started"
    env["DRAIN_STARTED"] = str(started)
    exec_start = shlex.split(service["ExecStart"][0])
    assert exec_start[0] == f"{tmp_path}/opt/drainer/venv/bin/pilothouse"  # through the release link

    def start() -> ServeProcess:
        server = ServeProcess(config_path, env=env, cwd=Path(service["WorkingDirectory"][0]))
        server.cmd = exec_start
        return server.start()

    server = start()
    try:
        submitted = run_cli(
            "jobs",
            "submit",
            "long",
            "-p",
            "seconds=3",
            "-c",
            str(config_path),
            "--format",
            "json",
            env=env,
        )
        assert submitted.returncode == 0, submitted.stderr
        job_id = json.loads(submitted.stdout)["id"]
        eventually(lambda: started.exists())
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            inflight = pool.submit(httpx.get, f"{server.app_url}/slow?seconds=2", timeout=30)
            eventually(lambda: httpx.get(f"{server.ops_url}/status").json()["inflight_requests"] == 1)

            # systemctl stop, KillMode=mixed: SIGTERM to the main process only.
            assert server.proc is not None
            os.kill(server.proc.pid, signal.SIGTERM)
            eventually(lambda: httpx.get(f"{server.ops_url}/ready").status_code == 503, timeout=2)
            eventually(lambda: refused(server.app_port), timeout=5)  # after the pre-stop delay
            assert inflight.result().status_code == 200  # the request in flight completed
            # Within TimeoutStopSec it exits by itself: systemd's SIGKILL never comes.
            assert server.wait(timeout=stop_budget) == 0, server.output
    finally:
        server.stop()

    shown = json.loads(
        run_cli("jobs", "show", str(job_id), "-c", str(config_path), "--format", "json", env=env).stdout
    )
    assert (shown["state"], shown["outcome"]) == ("finished", "ok")  # the job in flight finished too

    # The start half of the restart: the same ExecStart serves again, on the same job store.
    again = start()
    try:
        assert httpx.get(f"{again.ops_url}/ready").status_code == 200
        assert httpx.get(f"{again.app_url}/hello").text == "hello"
    finally:
        again.signal(signal.SIGTERM)
        assert again.wait(timeout=stop_budget) == 0
