"""The entry point of a `pilothouse serve --workers N` worker process (spawned by
`pilothouse.runtime.supervisor`).

A worker runs the single-process server (`PilothouseServer`) on the app socket the supervisor
bound, without the ops port and without the pre-stop wait (the supervisor owns both). It
publishes its in-flight and dropped request counts every 100 ms into shared memory, answers the
supervisor's readiness questions over its pipe (`readiness_pipe`), ignores SIGINT (Ctrl-C
reaches the whole process group; only the supervisor decides) and is SIGTERMed by Linux if the
supervisor dies.
"""

from __future__ import annotations

import asyncio
import ctypes
import signal
import socket
import sys
import threading
from multiprocessing.connection import Connection
from multiprocessing.sharedctypes import SynchronizedArray
from multiprocessing.synchronize import Event

from pilothouse.config.model import Config
from pilothouse.errors import PilothouseError
from pilothouse.redaction import redact
from pilothouse.runtime.readiness_pipe import answer_readiness
from pilothouse.runtime.runtime import Runtime
from pilothouse.runtime.uvicorn_server import run as run_on_loop

PUBLISH_INTERVAL = 0.1


def worker_main(
    config: Config,
    app_ref: str,
    sock: socket.socket,
    index: int,
    started: Event,
    counts: SynchronizedArray[int],
    conn: Connection,
) -> None:
    """Entry point of a spawned worker process."""
    from pilothouse.features import install_all
    from pilothouse.runtime.app_import import import_app
    from pilothouse.runtime.server import PilothouseServer

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    try:
        runtime = Runtime(config, role="worker")
        install_all(runtime)
        app = import_app(app_ref, config.source.parent if config.source else None)

        background: list[asyncio.Task[None]] = []  # keeps the publisher task referenced

        async def publish_counts() -> None:
            async def loop() -> None:
                while True:
                    counts[2 * index], counts[2 * index + 1] = runtime.inflight, runtime.dropped
                    await asyncio.sleep(PUBLISH_INTERVAL)

            background.append(asyncio.create_task(loop()))
            answering = threading.Thread(
                target=answer_readiness, args=(conn, runtime, asyncio.get_running_loop()), daemon=True
            )
            answering.start()

        runtime.on_start(publish_counts)
        server = PilothouseServer(
            runtime, app, app_socket=sock, serve_ops=False, on_started=started.set, signals=(signal.SIGTERM,)
        )
        code = run_on_loop(server.serve(), config.service.loop)
        counts[2 * index], counts[2 * index + 1] = runtime.inflight, runtime.dropped
    except PilothouseError as exc:  # one line, like single-process serve, not a traceback
        print(f"pilothouse: error: worker {index}: {redact(str(exc))}", file=sys.stderr)
        code = exc.exit_code
    sys.exit(code)


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker if the supervisor dies (no orphans serving traffic)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
