"""Jobs in processes of their own: `pilothouse jobs worker` (the jobs feature's worker, with the
ops port (health, readiness, metrics) unless turned off, shut down like `serve`) and the runtime
of `pilothouse jobs run` (one job, here and now).

The worker loads what `serve` loads: the app module (its `@pilothouse.check` functions register
on import) and the app's lifespan startup (the checks ping what it opens), so the configured
checks mean the same in every process kind.

The first SIGTERM/SIGINT is a local drain: readiness fails, no new job is taken, running jobs
get `[lifecycle].drain_timeout` to finish and are then cancelled (and killed). A signal during
the app's startup cancels it. A second signal exits at once; the jobs it leaves behind are
recovered by other workers after the heartbeat timeout.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pilothouse.config.model import Config
from pilothouse.runtime.app_lifespan import AppLifespan
from pilothouse.runtime.connection_guard import quiet_accept_errors
from pilothouse.runtime.features import install_process_features
from pilothouse.runtime.runtime import Runtime
from pilothouse.runtime.server import HANDLED_SIGNALS, bind, start_unless_stopped
from pilothouse.runtime.signals import ShutdownSignals
from pilothouse.runtime.uvicorn_server import cancelled_lifespan, ops_server, start_server, stop_server

log = logging.getLogger("pilothouse.jobs.worker")


def one_job_runtime(config: Config) -> Runtime:
    """The runtime of `pilothouse jobs run`: the features every process gets (live secrets,
    logs, traces) as in `jobs worker` and `serve`, so `live("db.url")` and the job's spans work
    the same however the job is started; no ops port and no worker of the jobs feature."""
    runtime = Runtime(config)
    install_process_features(runtime)
    return runtime


async def run_worker(runtime: Runtime, app: Any = None, *, serve_ops: bool = True) -> int:
    """Run until signalled, then drain; the exit code. `app`: the ASGI app whose lifespan runs."""
    config = runtime.config
    stop = asyncio.Event()
    ShutdownSignals(runtime.lifecycle, stop, config.lifecycle.hard_exit_after).install(HANDLED_SIGNALS)
    quiet_accept_errors(asyncio.get_running_loop())

    if serve_ops:
        sock = bind(config.ops.host, config.ops.port, "ops")
        ops = ops_server(runtime.ops_app(), config.ops)
        await start_server(ops, sock)
        ops_loop = asyncio.create_task(ops.main_loop())
    runtime.start_checks()
    lifespan = AppLifespan(app) if app is not None else None
    started = lifespan is None or await start_unless_stopped(lifespan.startup(), stop, config)
    if started:
        await runtime.run_start_hooks()
        runtime.lifecycle.mark_ready()
        await stop.wait()
        try:
            await asyncio.wait_for(runtime.run_drain_hooks(), config.lifecycle.drain_timeout)
        except TimeoutError:
            log.warning("worker drain did not finish within the drain timeout")
        if lifespan is not None:
            await lifespan.shutdown()
    else:
        cancelled_lifespan(lifespan and lifespan.lifespan)
    await runtime.flush()
    runtime.lifecycle.mark_stopped()
    if serve_ops:
        await stop_server(ops, ops_loop, sock)
    return 0
