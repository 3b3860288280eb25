"""What users run: `pilothouse serve` end to end against uvicorn on the same stack, against a
plain default `uvicorn app:app`, and against the peer libraries — in one run.

Servers (one trivial Starlette route, `GET /items/{id}` → `ok`, from bench/apps.py):

- `uvicorn` on each stack: `uvicorn bench.apps:app --http h11|httptools --loop asyncio|uvloop`,
  access log off (the bare baseline of that stack);
- `uvicorn-default`: a plain `pip install uvicorn` + `uvicorn app:app`: h11, asyncio, uvicorn's
  access log on (INFO, to a pipe nobody keeps);
- `serve-metrics`: `pilothouse serve`, metrics only (`access_log`, `request_id` off);
- `serve-default`: `pilothouse serve` with the `[telemetry]` defaults (metrics, request id,
  JSON logs with the access line);
- `serve-full`: traces 100 % over OTLP/HTTP to a real local receiver (it decodes every batch
  with the official protobuf definitions and answers 200) + JSON logs + the access line;
- `serve-shipped`: everything as shipped: the `[telemetry]` defaults and the `[protection]`
  defaults (safe errors, security headers, limits); the four above turn `[protection]` off so
  their numbers are telemetry's alone;
- `otel-asgi`: uvicorn + opentelemetry-instrumentation-asgi, SDK `BatchSpanProcessor` +
  OTLP/HTTP exporter to the same kind of receiver, 100 %;
- `starlette-exporter`: uvicorn + starlette-exporter (Prometheus metrics).

Stacks: `h11` (h11 + asyncio), `httptools` (httptools + asyncio), `uvloop` (httptools +
uvloop: what `pilothouse serve` picks by default now).

Two measurements per server: server instructions per request under callgrind (below), and
wrk req/s (+ server CPU µs per request) beside, in interleaved rounds (http_overhead.py's
harness, reused).

Instructions: each server runs twice under callgrind with instrumentation off while it starts
and serves 100 warm-up requests (a few times native speed); counting is then switched on
(`callgrind_control -i on`), 100 (first run) or 1,124 (second run) requests are sent on the
same keep-alive connection, and the server is stopped; (I(1124) - I(100)) / 1024 is the cost of
one request, start-up and warm-up never counted, shutdown and the final flush cancelled by the
subtraction (bench/server_instructions.py's I(N2) - I(N1) with start-up instrumented took over
ten minutes a run on this shared machine).

The callgrind caveat: under callgrind the server runs ~50-100 times slower, so anything driven
by wall-clock time (a batch exporter's timer, a periodic sweep) runs ~50-100 times more often
per request than in production, and its cost lands in the per-request figure. So spans are
exported only when a batch is full or at the exit: `OTEL_BSP_SCHEDULE_DELAY` is one hour and
batches are 512 spans, so the 1,024 requests of the difference are two batches' worth of spans
(otel-asgi, three spans a request: six), all encoded and posted within the difference (whether
in full batches or in the smaller ones an exporter sends for what queued during an export is
the exporter's own behaviour, as in production). The receiver checks every span arrived.
Package versions are recorded in the result (bench/results/serve_variants.json).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.http_overhead import free_port, measure_process, start_argv  # noqa: E402
from bench.server_instructions import connect, request_with, send_requests  # noqa: E402

STACKS = {"h11": ("h11", "asyncio"), "httptools": ("httptools", "asyncio"), "uvloop": ("httptools", "uvloop")}
PACKAGES = (
    "pilothouse",
    "starlette",
    "uvicorn",
    "h11",
    "httptools",
    "uvloop",
    "prometheus-client",
    "opentelemetry-api",
    "opentelemetry-sdk",
    "opentelemetry-exporter-otlp-proto-http",
    "opentelemetry-instrumentation-asgi",
    "starlette-exporter",
)
BATCH = 512
EXPORT_ENV = {
    "OTEL_BSP_SCHEDULE_DELAY": str(3_600_000),  # batches go when full (see the module docstring)
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": str(BATCH),
    "OTEL_BSP_MAX_QUEUE_SIZE": str(8 * BATCH),
}

TELEMETRY = {
    "serve-metrics": 'traces = "none"\naccess_log = false\nrequest_id = false',
    "serve-default": "",
    "serve-full": 'traces = "otlp"\nsample_ratio = 1.0\nlog_format = "json"\naccess_log = true',
    "serve-shipped": "",
}
PROTECTION_OFF = """
[protection.errors]
enabled = false
[protection.headers]
enabled = false
[protection.limits]
enabled = false
"""
CONFIG = """
[service]
name = "bench"
app = "bench.apps:app"
[ops]
admin_token_env = "BENCH_ADMIN_TOKEN"
[lifecycle]
pre_stop_delay = "0s"
drain_timeout = "10s"
flush_timeout = "300s"
[telemetry]
{telemetry}
{protection}
"""
SERVERS = (
    "uvicorn",
    "uvicorn-default",
    "serve-metrics",
    "serve-default",
    "serve-full",
    "serve-shipped",
    "otel-asgi",
    "starlette-exporter",
)
TRACED = {"serve-full", "otel-asgi"}


@dataclass(frozen=True)
class Variant:
    server: str
    stack: str

    @property
    def name(self) -> str:
        return self.server if self.server == "uvicorn-default" else f"{self.server}/{self.stack}"

    @property
    def baseline(self) -> str:
        return f"uvicorn/{self.stack}"


class _Receiver(BaseHTTPRequestHandler):
    """OTLP/HTTP traces: decodes each batch with the official protobuf definitions, answers 200."""

    protocol_version = "HTTP/1.1"  # keep-alive, as collectors do

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        spans = sum(len(scope.spans) for rs in request.resource_spans for scope in rs.scope_spans)
        with self.server.lock:  # type: ignore[attr-defined]
            self.server.spans += spans  # type: ignore[attr-defined]
            self.server.posts += 1  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


class Receiver:
    """A local OTLP/HTTP receiver in a thread of this (the driving) process."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
        self.server.spans = 0  # type: ignore[attr-defined]
        self.server.posts = 0  # type: ignore[attr-defined]
        self.server.lock = threading.Lock()  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    @property
    def spans(self) -> int:
        return int(self.server.spans)  # type: ignore[attr-defined]

    @property
    def posts(self) -> int:
        return int(self.server.posts)  # type: ignore[attr-defined]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


NO_SERVER_HEADER = False
"""`--no-server-header`: plain uvicorn without its `Server: uvicorn` header, as `pilothouse serve`
runs it (`[protection.headers] server` unset)."""


def command(
    variant: Variant, port: int, directory: Path, receiver: Receiver | None, hash_seed: int | None = None
) -> tuple[list[str], dict[str, str]]:
    """The server's argv and environment (`PYTHONHASHSEED` when a seed is given)."""
    http, loop = STACKS[variant.stack]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_VARIANT": "bare", **EXPORT_ENV}
    if hash_seed is not None:
        env["PYTHONHASHSEED"] = str(hash_seed)
    if receiver is not None:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.endpoint
    server = variant.server
    if server.startswith("serve-"):
        config = directory / f"{server}.toml"
        protection = "" if server == "serve-shipped" else PROTECTION_OFF
        config.write_text(CONFIG.format(telemetry=TELEMETRY[server], protection=protection))
        env["BENCH_ADMIN_TOKEN"] = secrets.token_hex(32)
        argv = [sys.executable, "-m", "pilothouse", "serve", "--config", str(config)]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--ops-port", str(free_port())]
        return [*argv, "--http", http, "--loop", loop], env
    argv = [sys.executable, "-m", "uvicorn", "bench.apps:app", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--http", http, "--loop", loop]
    if NO_SERVER_HEADER:
        argv.append("--no-server-header")
    if server == "uvicorn-default":
        return argv, env  # uvicorn's defaults: access log on, log level info
    if server in ("otel-asgi", "starlette-exporter"):
        env["BENCH_VARIANT"] = "otel-asgi-otlp" if server == "otel-asgi" else server
    elif server.startswith("app:"):  # any bench/apps.py variant under uvicorn (--apps)
        env["BENCH_VARIANT"] = server.removeprefix("app:")
        env["BENCH_TOKEN_FILE"] = str(token_file(variant, directory))
    return [*argv, "--no-access-log", "--log-level", "warning"], env


SPANS_PER_REQUEST = {"serve-full": 1, "otel-asgi": 3}
"""otel-asgi: the server span and one internal span per `send` (response start and body)."""
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


def token_file(variant: Variant, directory: Path) -> Path:
    return directory / f"token-{variant.name.replace('/', '-').replace(':', '-')}"


def client_headers(variant: Variant, directory: Path) -> tuple[str, ...]:
    """Request headers the client sends: a bearer token for the JWT variants (the server wrote
    it at start)."""
    if not variant.server.startswith("app:jwt-"):
        return ()
    return (f"Authorization: Bearer {token_file(variant, directory).read_text().strip()}",)


def window_run(variant: Variant, warmup: int, requests: int, hash_seed: int | None = None) -> dict[str, Any]:
    """Instructions of one server process from the end of `warmup` requests to its exit, having
    served `requests` more (callgrind instrumentation off until then: `callgrind_control -i on`).
    With the receiver's span and POST counts: every span must have arrived by the exit."""
    spans_each = SPANS_PER_REQUEST.get(variant.server, 0)
    with tempfile.TemporaryDirectory(prefix="pilothouse-serve-variants-") as tmp:
        receiver = Receiver() if spans_each else None
        with receiver or _Null():
            port = free_port()
            argv, env = command(variant, port, Path(tmp), receiver, hash_seed)
            log = Path(tmp) / "valgrind.log"
            valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
            valgrind += [f"--callgrind-out-file={tmp}/out", f"--log-file={log}"]
            quiet = subprocess.DEVNULL
            server = subprocess.Popen([*valgrind, *argv], env=env, cwd=ROOT, stdout=quiet, stderr=quiet)
            try:
                with connect(port, timeout=900) as sock:
                    request = request_with(client_headers(variant, Path(tmp)))
                    send_requests(sock, warmup, request)
                    switch = ["callgrind_control", "-i", "on", str(server.pid)]
                    subprocess.run(switch, check=True, stdout=quiet)
                    counting = time.monotonic()
                    send_requests(sock, requests, request)
            finally:
                server.send_signal(signal.SIGINT)
                server.wait(900)
            seconds = time.monotonic() - counting
            match = _COLLECTED.search(log.read_text())
            spans = receiver.spans if receiver else 0
            posts = receiver.posts if receiver else 0
    if match is None:
        raise SystemExit(f"{variant.name}: no instruction count in the valgrind log")
    if spans != spans_each * (warmup + requests):
        raise SystemExit(f"{variant.name}: the receiver got {spans} spans for {warmup + requests} requests")
    return {
        "instructions": int(match.group(1)),
        "seconds": round(seconds, 1),
        "spans_received": spans,
        "posts": posts,
    }


def per_request(
    variant: Variant, warmup: int, small: int, large: int, hash_seeds: Sequence[int] = ()
) -> dict[str, Any]:
    """(I(large) - I(small)) / (large - small) over two `window_run`s: start-up and warm-up are
    not counted, shutdown and the final flush cancel out, and the spans of the difference are
    all encoded and posted within it.

    With `hash_seeds`, both runs of a pair share one `PYTHONHASHSEED` (otherwise each process
    draws its own, and the two processes' different hash layouts land in the difference), a
    pair per seed, and the median is the figure; without, one pair of random seeds as before."""
    runs: list[dict[str, Any]] = []
    costs: list[float] = []
    for seed in hash_seeds or (None,):
        pair = [window_run(variant, warmup, n, seed) for n in (small, large)]
        costs.append((pair[1]["instructions"] - pair[0]["instructions"]) / (large - small))
        runs += pair
    cost = statistics.median(costs)
    seeded = f" (seeds: {', '.join(f'{value:,.0f}' for value in costs)})" if hash_seeds else ""
    print(f"callgrind {variant.name:32s} {cost:12,.0f} instructions/request{seeded}", flush=True)
    result: dict[str, Any] = {"instructions": round(cost), "runs": runs}
    if hash_seeds:
        result["by_hash_seed"] = {str(seed): round(c) for seed, c in zip(hash_seeds, costs, strict=True)}
    return result


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


def wrk_rounds(variants: list[Variant], rounds: int, seconds: float, connections: int) -> dict[str, Any]:
    samples: dict[str, list[dict[str, float]]] = {v.name: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="pilothouse-serve-variants-") as tmp, Receiver() as receiver:
        for index in range(rounds):
            order = variants[index % len(variants) :] + variants[: index % len(variants)]
            for variant in order:
                port = free_port()
                argv, env = command(variant, port, Path(tmp), receiver)
                proc = start_argv(argv, env, port, variant.name)
                headers = client_headers(variant, Path(tmp))
                result = measure_process(proc, port, seconds, connections, headers)
                samples[variant.name].append(result)
                print(
                    f"wrk round {index + 1}/{rounds} {variant.name:32s} {result['rps']:8.0f} req/s, "
                    f"server CPU {result['cpu_us']:6.1f} µs/request",
                    flush=True,
                )
        spans = receiver.spans
    summary: dict[str, Any] = {"spans_received": spans}
    for variant in variants:
        own, base = samples[variant.name], samples.get(variant.baseline, [])
        ratios = [s["rps"] / b["rps"] for s, b in zip(own, base, strict=False)]
        summary[variant.name] = {
            "rps_median": statistics.median(s["rps"] for s in own),
            "cpu_us_median": statistics.median(s["cpu_us"] for s in own),
            "ratio_median": statistics.median(ratios) if ratios else None,
            "ratio_min": min(ratios) if ratios else None,
            "ratio_max": max(ratios) if ratios else None,
            "rounds": own,
        }
    return summary


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    found["python"] = sys.version.split()[0]
    return found


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def table(result: dict[str, Any]) -> str:
    lines = [
        "| variant | instructions / request | ratio to uvicorn, same stack | wrk req/s (median) "
        "| wrk ratio (median, min-max) | server CPU µs/request |",
        "|---|---:|---:|---:|---|---:|",
    ]
    for name, row in result["variants"].items():
        base = result["variants"].get(row["baseline"], {})
        ratio = f"{base['instructions'] / row['instructions']:.3f}" if base.get("instructions") else "—"
        wrk = result["wrk"].get(name)
        if wrk:
            spread = (
                f"{wrk['ratio_median']:.2f} ({wrk['ratio_min']:.2f}-{wrk['ratio_max']:.2f})"
                if wrk["ratio_median"]
                else "—"
            )
            lines.append(
                f"| {name} | {row.get('instructions', 0):,} | {ratio} | {wrk['rps_median']:.0f} | {spread} "
                f"| {wrk['cpu_us_median']:.1f} |"
            )
        else:
            lines.append(f"| {name} | {row.get('instructions', 0):,} | {ratio} | | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"of {', '.join(SERVERS)}")
    parser.add_argument(
        "--apps",
        default="",
        help="bench/apps.py variants to serve under uvicorn too, e.g. protection-defaults,minimal-headers",
    )
    parser.add_argument("--stacks", default=",".join(STACKS), help=f"of {', '.join(STACKS)}")
    parser.add_argument("--warmup", type=int, default=100, help="requests before counting starts")
    parser.add_argument("--small", type=int, default=100, help="requests counted in the first run")
    parser.add_argument("--large", type=int, default=100 + 2 * BATCH, help="... in the second run")
    parser.add_argument("--rounds", type=int, default=3, help="wrk rounds (0: no wrk)")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument(
        "--no-server-header",
        action="store_true",
        help="plain uvicorn runs without its Server header, as pilothouse serve does by default",
    )
    parser.add_argument("--jobs", type=int, default=2, help="callgrind runs at a time")
    parser.add_argument(
        "--hash-seeds",
        default="",
        help="PYTHONHASHSEED values, e.g. 1,2,3: a pair of callgrind runs per seed (both runs of a "
        "pair with the same seed), the median reported; default: one pair, each process its own seed",
    )
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "serve_variants.json")
    args = parser.parse_args(argv)
    global NO_SERVER_HEADER
    NO_SERVER_HEADER = args.no_server_header
    servers = [s for s in args.servers.split(",") if s]
    try:
        seeds = [int(seed) for seed in args.hash_seeds.split(",") if seed]
    except ValueError:
        parser.error(f"--hash-seeds: integers separated by commas, got {args.hash_seeds!r}")
    apps = [a for a in args.apps.split(",") if a]
    from bench.apps import VARIANTS as APP_VARIANTS

    if unknown_apps := sorted(set(apps) - set(APP_VARIANTS)):
        parser.error(f"unknown apps: {', '.join(unknown_apps)}")
    stacks = [s for s in args.stacks.split(",") if s]
    if unknown := sorted(set(servers) - set(SERVERS)) + sorted(set(stacks) - set(STACKS)):
        parser.error(f"unknown: {', '.join(unknown)}")
    servers += [f"app:{app}" for app in apps]
    if (args.large - args.small) % BATCH:
        parser.error(f"--large - --small must be a multiple of the batch size {BATCH} (full batches)")
    variants: list[Variant] = []
    for stack in stacks:
        for server in servers:
            if server == "uvicorn-default" and stack != stacks[0]:
                continue
            variants.append(Variant(server, "h11" if server == "uvicorn-default" else stack))
    for stack in stacks:  # every ratio needs its stack's bare uvicorn
        if Variant("uvicorn", stack) not in variants:
            variants.insert(0, Variant("uvicorn", stack))
    result: dict[str, Any] = {
        "method": {
            "instructions": f"callgrind, instrumentation on after {args.warmup} warm-up requests, "
            f"to exit; (I({args.large}) - I({args.small})) / {args.large - args.small}, one keep-alive "
            f"connection; OTLP batches of {BATCH} spans, sent when full (no timer)"
            + (
                f"; a pair of runs per PYTHONHASHSEED in {seeds} (both runs of a pair alike), the median"
                if seeds
                else "; each process its own random hash seed"
            ),
            "server_header": "off (uvicorn --no-server-header)"
            if args.no_server_header
            else "uvicorn's default",
            "wrk": f"{args.rounds} interleaved rounds x {args.seconds}s, wrk -t1 -c{args.connections}, "
            "server on CPU 0, wrk on CPU 1",
        },
        "versions": versions(),
        "commit": commit(),
        "variants": {v.name: {"baseline": v.baseline} for v in variants},
        "wrk": {},
    }
    if not args.no_callgrind:
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            costs = pool.map(lambda v: per_request(v, args.warmup, args.small, args.large, seeds), variants)
            for variant, cost in zip(variants, costs, strict=True):
                result["variants"][variant.name].update(cost)
    if args.rounds:
        result["wrk"] = wrk_rounds(variants, args.rounds, args.seconds, args.connections)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"written: {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
