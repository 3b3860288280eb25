"""Jobs in processes of their own: `pilothouse jobs worker` (the jobs feature's worker, with the
ops port (health, readiness, metrics) unless turned off, shut down like `serve`) and the runtime
of `pilothouse jobs run` (one job, here and now) is `pilothouse.features.one_job_runtime`.

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

from pilothouse.runtime.app_lifespan import AppLifespan
from pilothouse.runtime.connection_guard import quiet_accept_errors
from pilothouse.runtime.ops_port import OpsPort
from pilothouse.runtime.runtime import Runtime
from pilothouse.runtime.server import HANDLED_SIGNALS, start_unless_stopped
from pilothouse.runtime.shutdown import Deadlines, Steps, run_shutdown
from pilothouse.runtime.signals import ShutdownSignals
from pilothouse.runtime.uvicorn_server import cancelled_lifespan

log = logging.getLogger("pilothouse.jobs.worker")


async def run_worker(runtime: Runtime, app: Any = None, *, serve_ops: bool = True) -> int:
    """Run until signalled, then drain; the exit code. `app`: the ASGI app whose lifespan runs."""
    config = runtime.config
    stop = asyncio.Event()
    ShutdownSignals(runtime.lifecycle, stop, config.lifecycle.hard_exit_after).install(HANDLED_SIGNALS)
    quiet_accept_errors(asyncio.get_running_loop())

    ops = OpsPort(runtime)
    if serve_ops:
        await ops.start()
    runtime.start_checks()
    lifespan = AppLifespan(app) if app is not None else None
    started = lifespan is None or await start_unless_stopped(lifespan.startup(), stop, config)
    if started:
        await runtime.run_start_hooks()
        runtime.lifecycle.mark_ready()
        await stop.wait()
    else:
        cancelled_lifespan(lifespan and lifespan.lifespan)
    # The shutdown sequence (`pilothouse.runtime.shutdown`): no app port to close and no pre-stop
    # wait (no load balancer sends jobs); the jobs drain under the drain deadline, then the app's
    # lifespan shutdown, the flush and the ops port.
    steps = Steps(
        feature_drain=runtime.run_drain_hooks if started else None,
        lifespan=lifespan.shutdown if started and lifespan is not None else None,
        flush=runtime.flush,
        stop_ops=ops.stop,
    )
    await run_shutdown(runtime.lifecycle, steps, Deadlines.of(config.lifecycle))
    return 0
