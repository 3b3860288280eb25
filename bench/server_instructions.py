"""Server instructions per request: the HTTP overhead benchmark without the noise.

req/s under wrk moves by several percent run to run on a shared 2-core machine, more than the
differences the targets are about. Instructions do not: uvicorn serving each variant runs
under `valgrind --tool=callgrind`, a client sends N requests on one keep-alive connection, and
the instructions the server executed (every thread: the span export and log writer threads
count) are read at exit. Two runs with N1 and N2 requests cancel start-up and shutdown:
(I(N2) - I(N1)) / (N2 - N1) is the cost of one request, repeatable to about 0.3 %. The ratio
bare/variant is the throughput the variant would reach if every instruction cost the same;
cache effects are not modelled, which is why http_overhead.py still measures the real thing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.apps import BASELINE, VARIANTS  # noqa: E402
from bench.http_overhead import (  # noqa: E402
    URL_PATH,
    add_http_argument,
    free_port,
    output_path,
    server_env,
    uvicorn_argv,
)

_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")
REQUEST = f"GET {URL_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\n\r\n".encode()


def request_with(headers: tuple[str, ...]) -> bytes:
    """REQUEST with more header lines ("Name: value")."""
    return REQUEST[:-2] + "".join(f"{header}\r\n" for header in headers).encode() + b"\r\n"


def connect(port: int, timeout: float = 300) -> socket.socket:
    """A connection to the server on `port`, retried until it listens (or `timeout`)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=60)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def send_requests(sock: socket.socket, requests: int, request: bytes = REQUEST) -> None:
    """Send `requests` GETs one after the other on `sock`, each answered in full."""
    for _ in range(requests):
        sock.sendall(request)
        received = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            received += chunk
            head, sep, body = received.partition(b"\r\n\r\n")
            length = re.search(rb"content-length: (\d+)", head, re.I) if sep else None
            if length and len(body) >= int(length.group(1)):
                break


def drive(port: int, requests: int, timeout: float = 300) -> None:
    """Send `requests` GETs one after the other on one connection, each answered in full."""
    with connect(port, timeout) as sock:
        send_requests(sock, requests)


def instructions(variant: str, requests: int, http: str = "h11") -> int:
    """Instructions the uvicorn process serving `variant` executed, start to exit, for `requests`."""
    port = free_port()
    return instructions_of(uvicorn_argv(port, http), server_env(variant), port, requests, variant)


def instructions_of(
    argv: list[str],
    env: dict[str, str],
    port: int,
    requests: int,
    name: str,
    profile: Path | None = None,
) -> int:
    """Instructions the server process `argv` (listening on `port`) executed, start to exit,
    serving `requests`; `profile`: keep callgrind's output there (for callgrind_annotate)."""
    with tempfile.TemporaryDirectory(prefix="pilothouse-callgrind-") as tmp:
        log = Path(tmp) / "valgrind.log"
        out = profile or Path(tmp) / "out"
        valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", f"--log-file={log}"]
        quiet = subprocess.DEVNULL
        server = subprocess.Popen([*valgrind, *argv], env=env, cwd=ROOT, stdout=quiet, stderr=quiet)
        try:
            drive(port, requests)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(600)
        match = _COLLECTED.search(log.read_text())
        if match is None:
            raise SystemExit(f"{name}: no instruction count in the valgrind log")
        return int(match.group(1))


def per_request(variant: str, small: int, large: int, http: str = "h11") -> float:
    return (instructions(variant, large, http) - instructions(variant, small, http)) / (large - small)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--small", type=int, default=300)
    parser.add_argument("--large", type=int, default=1300)
    add_http_argument(parser, "server_instructions")
    args = parser.parse_args(argv)
    output = output_path(parser, args, "server_instructions")
    if shutil.which("valgrind") is None:
        print("server_instructions: valgrind is not installed (Debian package valgrind); skipped")
        return 0
    variants = tuple(args.variants.split(","))
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variants: {', '.join(unknown)}")
    with ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1))) as pool:
        measured = pool.map(lambda v: per_request(v, args.small, args.large, args.http), variants)
        costs = dict(zip(variants, measured, strict=True))
    result: dict[str, Any] = {"requests": [args.small, args.large], "http": args.http, "variants": {}}
    print("| variant | server instructions/request | ratio baseline/variant |")
    print("|---|---:|---:|")
    for variant, cost in costs.items():
        baseline = BASELINE.get(variant, "bare")
        ratio = costs[baseline] / cost if baseline in costs else None
        result["variants"][variant] = {"instructions": round(cost), "baseline": baseline, "ratio": ratio}
        shown = f"{ratio:.3f}" + (f" vs {baseline}" if baseline != "bare" else "") if ratio else "-"
        print(f"| {variant} | {cost:,.0f} | {shown} |")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    print(f"written: {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
