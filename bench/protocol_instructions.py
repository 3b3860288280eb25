"""Instructions per request of uvicorn's HTTP protocol and the app, in process: no sockets and
nothing time-driven.

serve_variants.py counts a real uvicorn process under callgrind, and with it everything the
server does per wall-clock second (uvicorn's 0.1 s main-loop tick, the loop's wake-ups): under
callgrind's slowdown that lands in the per-request figure, and how much of it depends on how
fast the shared machine ran each process — bare uvicorn measured 654k-682k (h11) and
254k-272k (httptools) instructions a request in four runs of one day, more than the 3 % the
protection target is about. Here uvicorn's own protocol class (`H11Protocol` or
`HttpToolsProtocol`, as `--http` picks it) is driven on a fake transport in one process: the
request bytes go to `data_received`, the app runs in uvicorn's request task, the response
bytes are collected; no main loop, so no tick. The Date header is computed once, as uvicorn's
tick would; `Server: uvicorn` is sent unless `--no-server-header` (as `pilothouse serve` runs).
Everything else per request is uvicorn's real code path: parsing, the scope, the task, the
response headers' checks and serialisation, keep-alive.

Each variant runs twice under callgrind (instrumentation switched on after 300 warm-up
requests), with `--small` and `--large` requests; (I(large) - I(small)) / (large - small) is
the cost of one request. Two runs of the same code differed by at most 3.6k instructions
(0.5 %; hash randomisation and when the garbage collector runs), against the 10k-20k the
served method moved between runs.

`serve-metrics`, `serve-default`, `serve-full` (the `[telemetry]` settings of
bench/serve_variants.py, `[protection]` off; `serve-shipped`: both sections' defaults): the app
stack `pilothouse serve` builds — the config file loaded, logging configured, `Runtime` with
every feature installed, and the `uvicorn.Config` of `PilothouseServer` (the wrapped app, the
connection guard's protocol class, no `Server` header) — with the start hooks run (the span exporter's
thread). `serve-full` exports every span over OTLP/HTTP to a real receiver in the driving
process (bench/serve_variants.py's, decoding each batch with the official protobuf
definitions), batches of 512 sent when full (no timer); at the end the rest is flushed, so with
the default counts the difference holds exactly two full batches, encoded and posted. JSON log
lines go to stderr, which the child discards (a pipe nobody keeps, as the served bench).
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.server_instructions import REQUEST  # noqa: E402

STACKS = ("h11", "httptools", "uvloop")
"""uvloop: httptools on a uvloop loop (what `pilothouse serve` picks by default)."""
WARMUP = 300
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


class _Transport(asyncio.Transport):
    """What uvicorn's protocols use of a transport; the written chunks are kept (a list of them:
    one buffer growing by every response is reallocated now and then, and whether the allocator
    can grow it in place depends on the process's memory layout, not on the variant — in one pair
    of runs it was moved 4 times for one variant and 9 for the other, about 600 instructions a
    request charged to the second, 2026-12-02)."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes | bytearray | memoryview] = []
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written.append(data)

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.protocol


SERVED = ("serve-metrics", "serve-default", "serve-full", "serve-shipped")
"""`pilothouse serve`'s own stack with these `[telemetry]` settings (bench/serve_variants.py);
`serve-shipped` with the `[protection]` defaults on as well."""


def _served_config(variant: str, stack: str) -> tuple[Any, Any]:
    """The `uvicorn.Config` `pilothouse serve` would run for `variant`, and its `Runtime`."""
    from bench.apps import build
    from bench.serve_variants import CONFIG, PROTECTION_OFF, TELEMETRY
    from pilothouse.config.loader import load_config
    from pilothouse.features import install_all
    from pilothouse.runtime.runtime import Runtime
    from pilothouse.runtime.server import PilothouseServer
    from pilothouse.telemetry.logs import configure_logging

    protection = "" if variant == "serve-shipped" else PROTECTION_OFF
    text = CONFIG.format(telemetry=TELEMETRY[variant], protection=protection)
    http = "httptools" if stack == "uvloop" else stack
    text = text.replace('app = "bench.apps:app"', f'app = "bench.apps:app"\nhttp = "{http}"')
    with tempfile.TemporaryDirectory(prefix="pilothouse-protocol-") as tmp:
        path = Path(tmp) / "pilothouse.toml"
        path.write_text(text)
        config = load_config(path)
    configure_logging(config)
    runtime = Runtime(config)
    install_all(runtime)
    return PilothouseServer(runtime, build("bare")).app_server.config, runtime


async def _serve(variant: str, stack: str, server_header: bool, requests: int, pid_to_count: int) -> None:
    """Serve WARMUP requests, switch callgrind's instrumentation on, serve `requests` more."""
    import uvicorn
    from uvicorn.server import ServerState

    from bench.apps import build

    runtime = None
    if variant in SERVED:
        config, runtime = _served_config(variant, stack)
        await runtime.run_start_hooks()
        runtime.lifecycle.mark_ready()
    else:
        config = uvicorn.Config(
            app=build(variant),
            http="httptools" if stack == "uvloop" else stack,
            access_log=False,
            server_header=server_header,
            lifespan="off",
            log_level="warning",
        )
    config.load()
    state = ServerState()
    date = email.utils.formatdate(time.time(), usegmt=True).encode()
    state.default_headers = [(b"date", date), *config.encoded_headers]
    loop = asyncio.get_running_loop()
    protocol = config.http_protocol_class(config=config, server_state=state, app_state={}, _loop=loop)  # type: ignore[call-arg]
    transport = _Transport()
    transport.set_protocol(protocol)
    protocol.connection_made(transport)  # type: ignore[arg-type]

    async def serve(count: int) -> None:
        for _ in range(count):
            protocol.data_received(REQUEST)
            while state.tasks:  # the request's task, until the response is written
                await asyncio.sleep(0)

    await serve(WARMUP)
    transport.written.clear()
    if pid_to_count:
        switch = ["callgrind_control", "-i", "on", str(pid_to_count)]
        subprocess.run(switch, check=True, stdout=subprocess.DEVNULL)
    await serve(requests)
    answered = b"".join(transport.written).count(b"HTTP/1.1 200 OK\r\n")
    if answered != requests:
        raise SystemExit(f"{variant}/{stack}: {answered} answers to {requests} requests")
    if runtime is not None:  # the spans still queued, in both runs alike (they cancel out)
        await runtime.flush()


def _run(variant: str, stack: str, server_header: bool, requests: int) -> int:
    """Instructions of one callgrind run serving `requests` counted requests (`serve-full`: every
    span must have reached the receiver)."""
    from bench.serve_variants import EXPORT_ENV, Receiver

    traced = variant == "serve-full"
    with tempfile.TemporaryDirectory(prefix="pilothouse-protocol-") as tmp, Receiver() as receiver:
        log = Path(tmp) / "valgrind.log"
        argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        argv += [f"--callgrind-out-file={tmp}/out", f"--log-file={log}", sys.executable, __file__]
        argv += ["--child", variant, stack, "1" if server_header else "0", str(requests)]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, (os.environ.get("PYTHONPATH"), str(ROOT)))),
            "BENCH_ADMIN_TOKEN": secrets.token_hex(32),
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            **EXPORT_ENV,
        }
        with (Path(tmp) / "stderr").open("w+") as err:
            if subprocess.run(argv, cwd=ROOT, env=env, stderr=err).returncode:
                err.seek(0)
                tail = [line for line in err.read().splitlines() if not line.startswith('{"timestamp"')]
                raise SystemExit(f"{variant}/{stack}: the child failed:\n" + "\n".join(tail[-20:]))
        match = _COLLECTED.search(log.read_text())
        spans = receiver.spans
    if match is None:
        raise SystemExit(f"{variant}/{stack}: no instruction count in the valgrind log")
    if traced and spans != WARMUP + requests:
        expected = WARMUP + requests
        raise SystemExit(f"{variant}/{stack}: the receiver got {spans} spans for {expected} requests")
    return int(match.group(1))


def per_request(variant: str, stack: str, server_header: bool, small: int, large: int) -> dict[str, Any]:
    runs = [_run(variant, stack, server_header, n) for n in (small, large)]
    cost = (runs[1] - runs[0]) / (large - small)
    print(f"callgrind {variant}/{stack:10s} {cost:12,.0f} instructions/request", flush=True)
    return {"instructions": round(cost), "runs": runs}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":  # inside valgrind
        variant, stack, header, requests = argv[1:5]
        factory = None
        if stack == "uvloop":
            import uvloop

            factory = uvloop.new_event_loop
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(_serve(variant, stack, header == "1", int(requests), os.getpid()))
        return 0
    from bench.apps import VARIANTS
    from bench.serve_variants import commit, versions

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--apps", default="bare,minimal-headers,minimal-defaults,minimal-defaults-timeout,protection-defaults"
    )
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--no-server-header", action="store_true", help="as pilothouse serve runs uvicorn")
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=1224, help="--large - --small: full OTLP batches")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results" / "protocol_instructions.json"
    )
    args = parser.parse_args(argv)
    apps = [a for a in args.apps.split(",") if a]
    stacks = [s for s in args.stacks.split(",") if s]
    if unknown := sorted(set(apps) - {*VARIANTS, *SERVED}) + sorted(set(stacks) - set(STACKS)):
        parser.error(f"unknown: {', '.join(unknown)}")
    if "bare" not in apps:
        apps.insert(0, "bare")
    pairs = [(app, stack) for stack in stacks for app in apps]
    header = not args.no_server_header
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        costs = list(pool.map(lambda p: per_request(p[0], p[1], header, args.small, args.large), pairs))
    result: dict[str, Any] = {
        "method": f"uvicorn's protocol class in process on a fake transport, callgrind, instrumentation on "
        f"after {WARMUP} requests; (I({args.large}) - I({args.small})) / {args.large - args.small}",
        "server_header": header,
        "versions": versions(),
        "commit": commit(),
        "variants": {f"{app}/{stack}": cost for (app, stack), cost in zip(pairs, costs, strict=True)},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print("| variant | instructions / request | ratio to bare, same stack |\n|---|---:|---:|")
    for (app, stack), cost in zip(pairs, costs, strict=True):
        bare = result["variants"][f"bare/{stack}"]["instructions"]
        print(f"| {app}/{stack} | {cost['instructions']:,} | {bare / cost['instructions']:.3f} |")
    print(f"written: {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
