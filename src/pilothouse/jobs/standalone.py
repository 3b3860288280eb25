"""Jobs in processes of their own: `pilothouse jobs worker` (the jobs feature's worker, with the
ops port (health, readiness, metrics) unless turned off, shut down like `serve`) and the runtime
of `pilothouse jobs run` (one job, here and now).

The first SIGTERM/SIGINT is a local drain: readiness fails, no new job is taken, running jobs
get `[lifecycle].drain_timeout` to finish and are then cancelled (and killed). A second signal
exits at once; the jobs it leaves behind are recovered by other workers after the heartbeat
timeout.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from pilothouse.config.model import Config
from pilothouse.runtime.features import install_process_features
from pilothouse.runtime.runtime import Runtime
from pilothouse.runtime.server import bind
from pilothouse.runtime.uvicorn_server import Server, ops_server

log = logging.getLogger("pilothouse.jobs.worker")


def one_job_runtime(config: Config) -> Runtime:
    """The runtime of `pilothouse jobs run`: the features every process gets (live secrets,
    logs, traces) as in `jobs worker` and `serve`, so `live("db.url")` and the job's spans work
    the same however the job is started; no ops port and no worker of the jobs feature."""
    runtime = Runtime(config)
    install_process_features(runtime)
    return runtime


async def run_worker(runtime: Runtime, *, serve_ops: bool = True) -> int:
    """Run until signalled, then drain; the exit code."""
    stop = asyncio.Event()
    received: list[int] = []

    def on_signal(sig: int) -> None:
        received.append(sig)
        if len(received) > 1:
            log.warning("second %s: exiting without draining", signal.Signals(sig).name)
            logging.shutdown()
            os._exit(128 + sig)
        runtime.lifecycle.begin_shutdown(f"{signal.Signals(sig).name} received")
        stop.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)

    ops: Server | None = None
    if serve_ops:
        settings = runtime.config.ops
        sock = bind(settings.host, settings.port, "ops")
        ops = ops_server(runtime.ops_app(), settings.host, settings.port)
        ops.config.load()
        ops.lifespan = ops.config.lifespan_class(ops.config)
        await ops.startup(sockets=[sock])
        ops_loop = asyncio.create_task(ops.main_loop())
    runtime.start_checks()
    await runtime.run_start_hooks()
    runtime.lifecycle.mark_ready()
    await stop.wait()
    try:
        await asyncio.wait_for(runtime.run_drain_hooks(), runtime.config.lifecycle.drain_timeout)
    except TimeoutError:
        log.warning("worker drain did not finish within the drain timeout")
    await runtime.flush()
    runtime.lifecycle.mark_stopped()
    if ops is not None:
        ops.should_exit = True
        await ops_loop
        await ops.shutdown()
    return 0
