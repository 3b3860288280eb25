"""The ops ASGI app: health, readiness, startup, status, metrics and admin, on its own port.

GET  /health          liveness: process state only, never a dependency
GET  /ready           readiness: lifecycle state + checks (cached); ?verbose=0 for terse
GET  /startup         200 once startup completed (for a k8s startupProbe)
GET  /status          lifecycle state, in-flight requests, uptime
GET  /metrics         Prometheus text or OpenMetrics, gzip when asked
POST /admin/drain     readiness 503, keep serving (bearer token)
POST /admin/undrain   back to ready (bearer token)

An admin request's body is read in full (at most `MAX_ADMIN_BODY`) before its action runs: a
request whose body the HTTP parser rejects (answered 400) or whose client went away takes no
effect, and the action gets the body as one message.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from pilothouse.asgi import Message, Receive, Scope, Send, respond
from pilothouse.runtime.admin_auth import AdminAuth
from pilothouse.runtime.lifecycle import State

if TYPE_CHECKING:
    from pilothouse.runtime.runtime import Runtime

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]
RouteHandler = Handler
"""An extra ops route added by a feature (`Runtime.add_route`): a plain ASGI callable."""


MAX_ADMIN_BODY = 64 * 1024


def _dump(body: object) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


class OpsApp:
    """Routes by exact path; anything else is 404. Lifespan events are acknowledged."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        probes = runtime.config.probes
        self.auth = AdminAuth(runtime.config.ops.admin_token_env)
        self.routes: dict[tuple[str, str], Handler] = {
            ("GET", probes.liveness_path): self.health,
            ("GET", probes.readiness_path): self.ready,
            ("GET", probes.startup_path): self.startup,
            ("GET", probes.status_path): self.status,
            ("GET", probes.metrics_path): self.metrics,
            ("POST", "/admin/drain"): self.admin(self.drain),
            ("POST", "/admin/undrain"): self.admin(self.undrain),
        }
        for (method, path), (extra, admin) in runtime.extra_routes.items():
            self.routes[(method, path)] = self.admin(extra) if admin else extra
        for method, path in list(self.routes):
            if method == "GET":
                self.routes[("HEAD", path)] = self.routes[(method, path)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["type"] != "http":
            return
        handler = self.routes.get((scope["method"], scope["path"]))
        if handler is None:
            # Admin paths do not exist at all while admin is disabled (no 405 that reveals them).
            hidden = scope["path"].startswith("/admin/") and not self.auth.enabled
            known = not hidden and any(path == scope["path"] for _, path in self.routes)
            status = 405 if known else 404
            await respond(send, status, _dump({"error": "method not allowed" if known else "not found"}))
            return
        await handler(scope, receive, send)

    # -- probes ------------------------------------------------------------------------------

    async def health(self, scope: Scope, receive: Receive, send: Send) -> None:
        lifecycle = self.runtime.lifecycle
        if lifecycle.live:
            await respond(send, 200, _dump({"status": "pass", "state": str(lifecycle.state)}))
        else:
            await respond(
                send,
                503,
                _dump({"status": "fail", "state": str(lifecycle.state), "error": lifecycle.broken_reason}),
            )

    async def startup(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = self.runtime.lifecycle.state is not State.STARTING
        await respond(
            send,
            200 if started else 503,
            _dump({"status": "pass" if started else "fail", "state": str(self.runtime.lifecycle.state)}),
        )

    async def ready(self, scope: Scope, receive: Receive, send: Send) -> None:
        lifecycle = self.runtime.lifecycle
        terse = b"verbose=0" in scope.get("query_string", b"").split(b"&")
        if not lifecycle.accepting_traffic:
            body: dict[str, object] = {"status": "fail", "state": str(lifecycle.state)}
            if lifecycle.drain_reason and not terse:
                body["reason"] = lifecycle.drain_reason
            await respond(send, 503, _dump(body))
            return
        report = await self.runtime.readiness()
        status = 200 if report.ok else 503
        if terse:
            await respond(send, status, _dump({"status": report.status}))
            return
        await respond(
            send,
            status,
            _dump(
                {
                    "status": report.status,
                    "state": str(lifecycle.state),
                    "checks": {r.name: r.as_dict() for r in report.results},
                }
            ),
        )

    async def status(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime = self.runtime
        lifecycle = runtime.lifecycle
        await respond(
            send,
            200,
            _dump(
                {
                    "service": runtime.config.service.name,
                    "version": runtime.config.service.version,
                    "state": str(lifecycle.state),
                    "since": lifecycle.since,
                    "uptime_seconds": round(time.time() - lifecycle.started_at, 3),
                    "drain_reason": lifecycle.drain_reason,
                    "inflight_requests": runtime.inflight,
                    "dropped_requests": runtime.dropped,
                    "pid": os.getpid(),
                    **runtime.status_extras(),
                }
            ),
        )

    async def metrics(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        body, content_type, extra = self.runtime.exposition(
            headers.get(b"accept", b"").decode("latin-1"),
            headers.get(b"accept-encoding", b"").decode("latin-1"),
        )
        await respond(send, 200, body, content_type.encode(), extra)

    # -- admin -------------------------------------------------------------------------------

    def admin(self, action: Handler) -> Handler:
        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            verdict = self.auth.verify(dict(scope["headers"]).get(b"authorization"))
            if verdict == "disabled":
                await respond(send, 404, _dump({"error": "not found"}))
            elif verdict == "missing":
                await respond(
                    send,
                    401,
                    _dump({"error": "bearer token required"}),
                    headers=[(b"www-authenticate", b'Bearer realm="pilothouse-admin"')],
                )
            elif verdict == "wrong":
                await respond(send, 403, _dump({"error": "invalid token"}))
            else:
                body = await _read_body(receive)
                if body is None:
                    return  # the client is gone, or the parser refused the body (uvicorn said 400)
                if len(body) > MAX_ADMIN_BODY:
                    await respond(send, 413, _dump({"error": f"body larger than {MAX_ADMIN_BODY} bytes"}))
                    return
                await action(scope, _replay(body, receive), send)

        return guarded

    async def drain(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.runtime.lifecycle.drain("operator")
        await respond(send, 200, _dump({"state": str(self.runtime.lifecycle.state)}))

    async def undrain(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.runtime.lifecycle.undrain():
            await respond(send, 409, _dump({"error": "shutting down; cannot undrain"}))
            return
        await respond(send, 200, _dump({"state": str(self.runtime.lifecycle.state)}))


async def _read_body(receive: Receive) -> bytes | None:
    """The request body (stops reading just past `MAX_ADMIN_BODY`); None on a disconnect."""
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        body += chunk
        if not message.get("more_body") or len(body) > MAX_ADMIN_BODY:
            return body


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` as one message, then the server's messages (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
