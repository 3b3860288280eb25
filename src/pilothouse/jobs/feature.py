"""Jobs inside `pilothouse serve`: a worker beside the app, `POST /admin/jobs`, a readiness
check that reports draining, and a local drain of the worker on SIGTERM.

Enabled by a `[jobs]` section. The store and the job module are opened at install time, so a
wrong URL or module stops `serve` before it listens, with one clear line.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import TYPE_CHECKING

from pilothouse.asgi import Receive, Scope, Send, respond
from pilothouse.errors import OperationError
from pilothouse.jobs.attest import attester_for
from pilothouse.jobs.definition import ParamError
from pilothouse.jobs.registry import UnknownJob, load_jobs
from pilothouse.jobs.store import Draining, open_store
from pilothouse.jobs.submit import submit
from pilothouse.jobs.tracing import current_traceparent
from pilothouse.jobs.worker import Worker
from pilothouse.runtime import threads
from pilothouse.runtime.checks import Check, CheckFailed
from pilothouse.runtime.shutdown import Deadlines

if TYPE_CHECKING:
    from pilothouse.runtime.runtime import Runtime

log = logging.getLogger("pilothouse.jobs")


def install(runtime: Runtime) -> None:
    settings = runtime.config.jobs
    if settings is None or runtime.role == "worker":
        return  # with --workers, the supervisor runs the job worker and serves /admin/jobs
    registry = load_jobs(runtime.config)
    store = open_store(runtime.config)
    worker = Worker(
        store, registry, settings, runtime.metrics, attester=attester_for(runtime.config, registry)
    )
    service = JobService(runtime, worker)
    runtime.add_route("POST", "/admin/jobs", service.submit_route, admin=True)
    # A `jobs worker` process exists for its jobs: without its store it is not ready. Inside
    # `serve` the app still serves, so a store outage is a warning there.
    runtime.add_check(
        Check(
            name="jobs",
            kind="jobs",
            critical=runtime.role == "jobs",
            timeout=runtime.config.probes.check_timeout,
            probe=service.probe,
        )
    )
    if settings.worker:
        runtime.on_start(worker.start)
        runtime.on_drain(service.drain)
    runtime.on_flush(service.close)


class JobService:
    """The ops-port face of the jobs feature."""

    def __init__(self, runtime: Runtime, worker: Worker) -> None:
        self.runtime = runtime
        self.worker = worker
        self.store = worker.store

    async def probe(self) -> None:
        """Readiness: fails while no jobs are being taken (a warning inside `serve`)."""
        try:
            draining = await threads.call(self.store.draining_since)
        except OperationError as exc:
            raise CheckFailed(str(exc)) from None
        if draining is not None:
            raise CheckFailed("draining: the job store's drain flag is set; no new jobs are taken")
        if self.worker.local_drain:
            raise CheckFailed("draining: this worker is shutting down")

    async def drain(self) -> None:
        """SIGTERM: a local drain under the lifecycle's drain timeout (the server's limit)."""
        deadlines = Deadlines.of(self.runtime.config.lifecycle)
        try:
            await self.worker.drain(deadlines.job_grace(self.worker.settings.cancel_grace))
        finally:
            self.worker.halt()  # even when the drain timeout cancels this (a store not answering)
        await self.worker.stop()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await threads.call(self.store.close)

    async def submit_route(self, scope: Scope, receive: Receive, send: Send) -> None:
        """POST /admin/jobs {"job": NAME, "params": {...}} -> 201 {"id": ...}."""
        request = _parse((await receive()).get("body", b""))
        if isinstance(request, str):
            log.warning("POST /admin/jobs answered 400: %s", request)
            await _json(send, 400, {"error": request})
            return
        name, params = request
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            job_id = await threads.call(
                submit, self.store, self.worker.registry, name, params, current_traceparent(headers)
            )
        except Draining as exc:
            retry = str(round(self.worker.settings.retry_after))
            await _json(send, 503, {"error": str(exc)}, [(b"retry-after", retry.encode())])
            return
        except ParamError as exc:
            await _json(send, 422, {"error": str(exc)})
            return
        except UnknownJob as exc:
            await _json(send, 404, {"error": str(exc)})
            return
        except OperationError as exc:
            await _json(send, 503, {"error": str(exc)})
            return
        log.info(
            "job %d (%s) submitted over the ops API", job_id, name, extra={"job_id": job_id, "job": name}
        )
        await _json(send, 201, {"id": job_id, "job": name, "state": "queued"})


_EXPECTED = 'expected JSON {"job": "<name>", "params": {"key": "value"}}'


def _parse(body: bytes) -> tuple[str, dict[str, object]] | str:
    """(job name, params) from a submission body, or what is wrong with it. The ops app read the
    whole body (bounded) before this route runs."""
    try:
        request = json.loads(body or b"{}")
    except RecursionError:
        return f"{_EXPECTED}; the body is nested too deeply"
    except ValueError:
        return f"{_EXPECTED}; the body is not valid JSON"
    if not isinstance(request, dict):
        return _EXPECTED
    name, params = request.get("job"), request.get("params", {})
    if not isinstance(name, str) or not isinstance(params, dict):
        return _EXPECTED
    return name, params


async def _json(
    send: Send, status: int, body: object, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await respond(send, status, json.dumps(body, separators=(",", ":")).encode(), headers=headers)
