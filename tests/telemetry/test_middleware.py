"""The request middleware in-process: bounded labels, route templates, request ids."""

from __future__ import annotations

import random
import string
from typing import Any

import httpx
from prometheus_client import generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from pilothouse.config.model import Config
from pilothouse.runtime.runtime import Runtime
from pilothouse.telemetry.feature import install_middleware
from tests.telemetry.conftest import samples


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def _app() -> Starlette:
    api = Starlette(routes=[Route("/orders/{order_id}", ok)])
    return Starlette(routes=[Route("/items/{id:int}", ok), Mount("/api/v1", app=api)])


def _runtime(**telemetry: Any) -> Runtime:
    runtime = Runtime(Config.model_validate({"service": {"name": "t"}, "telemetry": telemetry}))
    install_middleware(runtime)
    return runtime


async def _call(
    app: Any, method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None
) -> tuple[int, dict[bytes, bytes]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers or [],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await app(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"])


def _series(runtime: Runtime) -> set[Any]:
    body = generate_latest(runtime.metrics.registry).decode()
    return {key for key in samples(body) if key[0].startswith("http_server_request_duration")}


async def test_random_unknown_paths_add_no_series() -> None:
    runtime = _runtime(access_log=False)
    app = runtime.wrap(_app())
    methods = ["GET", "POST", "BREW", "PROPFIND"]
    for method in methods:  # one unknown path per method: the series a 404 can ever have
        await _call(app, method, "/warm/up")
    before = _series(runtime)
    # Standard methods keep their name, the rest share _OTHER; every unknown path is _unmatched.
    assert {dict(labels)["http_request_method"] for _, labels in before} == {"GET", "POST", "_OTHER"}
    assert {dict(labels)["http_route"] for _, labels in before} == {"_unmatched"}
    rng = random.Random(7)
    for _ in range(10_000):
        path = "/" + "/".join("".join(rng.choices(string.ascii_lowercase, k=6)) for _ in range(3))
        assert (await _call(app, rng.choice(methods), path))[0] == 404
    assert _series(runtime) == before


async def test_route_templates_include_mounts() -> None:
    runtime = _runtime(access_log=False)
    app = runtime.wrap(_app())
    await _call(app, "GET", "/items/12")
    await _call(app, "GET", "/api/v1/orders/77")
    await _call(app, "GET", "/api/v1/nothing")
    routes = {dict(labels)["http_route"] for _, labels in _series(runtime)}
    assert routes == {"/items/{id}", "/api/v1/orders/{order_id}", "/api/v1/{path}"}


async def test_request_id_is_honoured_or_generated() -> None:
    app = _runtime(access_log=False).wrap(_app())
    _, headers = await _call(app, "GET", "/items/1", [(b"x-request-id", b"abc-123")])
    assert headers[b"x-request-id"] == b"abc-123"
    _, headers = await _call(app, "GET", "/items/1")
    generated = headers[b"x-request-id"]
    assert len(generated) == 32 and int(generated, 16) >= 0
    # Unsafe values (control characters, huge) are not echoed into logs or headers.
    _, headers = await _call(app, "GET", "/items/1", [(b"x-request-id", b"a\r\nb")])
    assert headers[b"x-request-id"] not in (b"a\r\nb", generated)
    off = _runtime(access_log=False, request_id=False).wrap(_app())
    _, headers = await _call(off, "GET", "/items/1")
    assert b"x-request-id" not in headers


async def test_metrics_switched_off_records_nothing() -> None:
    runtime = _runtime(metrics=False, access_log=False)
    app = runtime.wrap(_app())
    assert (await _call(app, "GET", "/items/1"))[0] == 200
    assert _series(runtime) == set()


async def test_through_httpx_asgi_transport() -> None:
    """The middleware under a real client stack: status, body and headers pass unchanged."""
    app = _runtime(access_log=False).wrap(_app())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.get("/items/5")
    assert (r.status_code, r.text) == (200, "ok")
    assert "x-request-id" in r.headers


async def _cancelled(app: Any, start_first: bool) -> tuple[list[dict[str, Any]], BaseException | None]:
    """Run a request whose app hangs (after starting its response or before), then cancel it
    as the server does at the drain deadline."""
    import asyncio

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "scheme": "http",
        "path": "/hang",
        "root_path": "",
        "headers": [],
        "start_first": start_first,
    }
    task = asyncio.create_task(app(scope, receive, send))
    await asyncio.sleep(0.01)
    task.cancel()
    try:
        await task
    except BaseException as exc:  # the outcome is what is checked
        return sent, exc
    return sent, None


async def test_requests_cut_at_the_drain_deadline_through_the_telemetry_middleware() -> None:
    """The in-flight middleware inside relies on the telemetry middleware's response-start
    mark: a request cut before its response starts gets 503, one cut after is cancelled."""
    import asyncio

    async def hang(scope: Any, receive: Any, send: Any) -> None:
        if scope["start_first"]:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.Event().wait()

    runtime = _runtime(access_log=False)
    app = runtime.wrap(hang)
    sent, error = await _cancelled(app, start_first=False)
    assert error is None and [m.get("status") for m in sent] == [503, None]
    assert dict(sent[0]["headers"])[b"retry-after"] == b"1"
    sent, error = await _cancelled(app, start_first=True)
    assert isinstance(error, asyncio.CancelledError) and [m.get("status") for m in sent] == [200]
    assert (runtime.dropped, runtime.inflight) == (2, 0)
    body = generate_latest(runtime.metrics.registry).decode()
    assert (
        samples(body)[
            (
                "http_server_request_duration_seconds_count",
                frozenset(
                    {
                        "http_request_method": "GET",
                        "http_route": "_unmatched",
                        "http_response_status_code": "503",
                    }.items()
                ),
            )
        ]
        == 1
    )


async def test_the_merged_in_flight_layer_cuts_requests_as_the_layer_itself_does() -> None:
    """Directly around the runtime's in-flight layer the telemetry middleware does its counting
    and calls the app inside (the fast path `serve` gets); the same requests through the layer
    itself (the general path: the layer not told the outer one marks the response start) give
    the same messages, outcome, counts and metric series, body sizes included."""
    import asyncio

    from pilothouse.runtime.inflight import InFlightMiddleware
    from pilothouse.telemetry.middleware import TelemetryMiddleware

    async def hang(scope: Any, receive: Any, send: Any) -> None:
        if scope["start_first"]:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
        await asyncio.Event().wait()

    def outcome(sent: list[dict[str, Any]], error: BaseException | None) -> tuple[Any, ...]:
        headers = [[key for key, _ in m.get("headers", ())] for m in sent]
        return [(m["type"], m.get("status"), m.get("body")) for m in sent], headers, type(error)

    results = []
    for fast in (True, False):
        runtime = _runtime(access_log=False, body_size_metrics=True)
        app = runtime.wrap(hang)
        assert isinstance(app, TelemetryMiddleware) and isinstance(app.app, InFlightMiddleware)
        if not fast:  # the general path: the layer tracks the start itself and is called
            app.app.outer_tracks_start = False
            app = TelemetryMiddleware(app.app, metrics=runtime.metrics, telemetry=runtime.config.telemetry)
        assert (app._inflight is not None) == fast  # merged: the layer is counted here, not called
        runs = [outcome(*await _cancelled(app, start_first)) for start_first in (False, True, False)]
        series = sorted(
            (name, tuple(sorted(labels)), value)
            for (name, labels), value in samples(generate_latest(runtime.metrics.registry).decode()).items()
            if name == "http_server_request_duration_seconds_count"  # durations: timing, the counts only
            or (
                name.startswith("http_server_")
                and not name.startswith("http_server_request_duration")
                and not name.endswith("_created")
            )
        )
        results.append((runs, runtime.dropped, runtime.inflight, series))
    assert results[0][1:3] == (3, 0)
    assert {"http_server_request_duration_seconds_count", "http_server_response_body_size_bytes_sum"} <= {
        name for name, _, _ in results[0][3]
    }
    assert results[0][0][2][1][0].count(b"x-request-id") == 1  # the third cut too (a shared message grew)
    assert results[0] == results[1]


async def echo_twice(request: Request) -> PlainTextResponse:
    body = await request.body()
    return PlainTextResponse(body.decode() * 2)


async def test_body_size_histograms_count_what_the_app_read_and_sent() -> None:
    from tests.telemetry.conftest import value

    runtime = _runtime(access_log=False, body_size_metrics=True)
    app = runtime.wrap(Starlette(routes=[Route("/echo", echo_twice, methods=["POST"]), Route("/ok", ok)]))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for size in (0, 10, 3000):
            assert (await client.post("/echo", content=b"x" * size)).status_code == 200
        await client.get("/ok")

        async def chunks() -> Any:  # no Content-Length: counted from what was read
            for _ in range(4):
                yield b"y" * 500

        assert (await client.post("/echo", content=chunks())).status_code == 200
    body = generate_latest(runtime.metrics.registry).decode()
    post = {"http_request_method": "POST", "http_route": "/echo", "http_response_status_code": "200"}
    assert value(body, "http_server_request_body_size_bytes_count", **post) == 4
    assert value(body, "http_server_request_body_size_bytes_sum", **post) == 0 + 10 + 3000 + 2000
    assert value(body, "http_server_response_body_size_bytes_sum", **post) == 2 * (0 + 10 + 3000 + 2000)
    assert value(body, "http_server_request_body_size_bytes_bucket", le="0.0", **post) == 1
    assert value(body, "http_server_request_body_size_bytes_bucket", le="4096.0", **post) == 4
    get = {"http_request_method": "GET", "http_route": "/ok", "http_response_status_code": "200"}
    assert value(body, "http_server_response_body_size_bytes_sum", **get) == 2  # "ok"


async def test_body_size_histograms_are_off_by_default() -> None:
    runtime = _runtime(access_log=False)
    app = runtime.wrap(_app())
    await _call(app, "GET", "/items/1")
    body = generate_latest(runtime.metrics.registry).decode()
    assert "http_server_request_body_size_bytes" not in body
    assert "http_server_request_duration_seconds_count" in body


async def test_body_sizes_of_streamed_responses_and_unread_requests() -> None:
    from starlette.responses import StreamingResponse

    from tests.telemetry.conftest import value

    async def stream(request: Request) -> StreamingResponse:
        async def chunks() -> Any:
            for size in (100, 2000, 30000):
                yield b"z" * size

        return StreamingResponse(chunks())

    async def ignore_body(request: Request) -> PlainTextResponse:  # never reads what was sent
        return PlainTextResponse("no")

    runtime = _runtime(access_log=False, body_size_metrics=True)
    routes = [Route("/stream", stream), Route("/ignore", ignore_body, methods=["POST"])]
    app = runtime.wrap(Starlette(routes=routes))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert len((await client.get("/stream")).content) == 32100
        assert (await client.post("/ignore", content=b"q" * 5000)).status_code == 200
    body = generate_latest(runtime.metrics.registry).decode()
    streamed = {"http_request_method": "GET", "http_route": "/stream", "http_response_status_code": "200"}
    assert value(body, "http_server_response_body_size_bytes_sum", **streamed) == 32100
    ignored = {"http_request_method": "POST", "http_route": "/ignore", "http_response_status_code": "200"}
    assert value(body, "http_server_request_body_size_bytes_sum", **ignored) == 0  # what the app read
    assert value(body, "http_server_request_body_size_bytes_count", **ignored) == 1


async def test_generated_request_ids_are_unique_across_blocks() -> None:
    """Ids come from blocks of 256 random ones: more than two blocks' worth are all distinct."""
    app = _runtime(access_log=False).wrap(_app())
    ids = [(await _call(app, "GET", "/items/1"))[1][b"x-request-id"] for _ in range(600)]
    assert len(set(ids)) == 600
    assert all(len(rid) == 32 and int(rid, 16) >= 0 for rid in ids)


def test_a_forked_child_draws_request_ids_of_its_own() -> None:
    """A child forked with part of a block left (e.g. a prefork server importing the app first)
    does not hand out the ids its parent hands out next: the block is dropped at the fork."""
    import os

    from pilothouse.telemetry import request_ids

    def next_id() -> str:  # as the middleware takes one
        try:
            return request_ids.take()[0]
        except IndexError:
            return request_ids.refill()[0]

    request_ids.refill()  # a block in the parent, most of it still to come
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ten ids to the parent, then out without cleanup
        try:
            os.write(write, "".join(next_id() for _ in range(10)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read()
    assert os.waitpid(pid, 0)[1] == 0
    assert len(child) == 320
    parent = [next_id() for _ in range(10)]
    assert not {child[i : i + 32] for i in range(0, 320, 32)} & set(parent)


async def test_the_correlation_header_alone_is_read_when_request_ids_are_off() -> None:
    from pilothouse.telemetry.context import current_request

    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        context = current_request.get()
        seen.append(None if context is None else (context.request_id, context.correlation))
        await PlainTextResponse("ok")(scope, receive, send)

    wrapped = _runtime(access_log=False, request_id=False, correlation_header="X-Tx").wrap(app)
    headers = [(b"x-request-id", b"not-read"), (b"x-tx", b"tx-1")]
    _, response_headers = await _call(wrapped, "GET", "/", headers)
    assert seen == [(None, "tx-1")] and b"x-request-id" not in response_headers
