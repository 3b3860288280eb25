"""The runners' status API, over gRPC: a build reports its state here (the `report` step of
`ci/jobs.py`), and runners, the UI or an operator ask for it. It runs beside the HTTP API in the
same process (started by the app's lifespan), with Pilothouse's gRPC interceptors on both ends,
so a build's trace goes `job build` -> `step report` -> the CLIENT call -> the SERVER call.

The service is defined without protoc: JSON bytes in and out, one generic handler.

    ci.runner.v1.RunnerStatus/Report  {"build": "shop-1", "state": "packaged", ...} -> {}
    ci.runner.v1.RunnerStatus/Get     b"shop-1" -> the last report, or NOT_FOUND
"""

from __future__ import annotations

import json
import os
from typing import Any

import grpc
import grpc.aio

from pilothouse.telemetry.grpc import aio_client_interceptors, aio_server_interceptor

SERVICE = "ci.runner.v1.RunnerStatus"
# Where the API listens: `CI_RUNNER_API_PORT` (0: any free port, read back from `target()`).
DEFAULT_PORT = 50051

_reports: dict[str, dict[str, Any]] = {}
_target: str | None = None  # set once this process serves the API


async def report(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    state = json.loads(request)  # a malformed report raises: UNKNOWN, recorded on the span
    _reports[str(state["build"])] = state
    return b"{}"


async def get(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    build = request.decode()
    if build not in _reports:
        await context.abort(grpc.StatusCode.NOT_FOUND, f"no report for build {build}")
    return json.dumps(_reports[build]).encode()


async def start() -> grpc.aio.Server:
    """Serve the API on 127.0.0.1 (a runner on another host would use the host's address)."""
    global _target
    interceptor = aio_server_interceptor("127.0.0.1")
    server = grpc.aio.server(interceptors=[interceptor])
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                SERVICE,
                {
                    "Report": grpc.unary_unary_rpc_method_handler(report),
                    "Get": grpc.unary_unary_rpc_method_handler(get),
                },
            )
        ]
    )
    port = server.add_insecure_port(f"127.0.0.1:{os.environ.get('CI_RUNNER_API_PORT', DEFAULT_PORT)}")
    interceptor.server_port = port
    await server.start()
    _target = f"127.0.0.1:{port}"
    return server


def target() -> str:
    """The API's address: this process's server, else `CI_RUNNER_API` (a separate job worker)."""
    return _target or os.environ.get("CI_RUNNER_API", f"127.0.0.1:{DEFAULT_PORT}")


async def send_report(state: dict[str, Any]) -> None:
    """Report a build's state (a client span, its context in the call's metadata)."""
    where = target()
    async with grpc.aio.insecure_channel(where, interceptors=aio_client_interceptors(where)) as channel:
        await channel.unary_unary(f"/{SERVICE}/Report")(json.dumps(state).encode(), timeout=10)
