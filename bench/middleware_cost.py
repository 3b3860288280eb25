"""CPU cost per request of each instrumentation, in process (no server, no network).

Calls each variant's ASGI app directly with a fixed GET scope and measures process CPU time, so
a busy machine (other processes on the cores) disturbs it far less than the wrk benchmark. The
difference to "bare" is what the instrumentation adds per request, in microseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.apps import BASELINE, VARIANTS, build


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict[str, Any]) -> None:
    pass


def _scope() -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/items/42",
        "raw_path": b"/items/42",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"user-agent", b"wrk")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "state": {},
    }


async def _loop(app: Any, n: int) -> None:
    for _ in range(n):
        await app(_scope(), _receive, _send)


def cost(variant: str, requests: int, repeats: int) -> float:
    """Median CPU microseconds per request over `repeats` batches (one process per variant:
    the OpenTelemetry provider is global)."""
    app = build(variant)
    for handler in logging.getLogger().handlers:  # logs are formatted and written, to /dev/null
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
    asyncio.run(_loop(app, 2000))
    batches = []
    for _ in range(repeats):
        start = time.process_time()
        asyncio.run(_loop(app, requests))
        batches.append((time.process_time() - start) / requests * 1e6)
    return statistics.median(batches)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--variant", help="measure one variant in this process and print its cost")
    args = parser.parse_args(argv)
    if args.variant:
        print(f"{cost(args.variant, args.requests, args.repeats):.2f}")
        return 0
    import subprocess

    costs = {}
    for variant in VARIANTS:
        argv = [
            sys.executable,
            __file__,
            "--variant",
            variant,
            "--requests",
            str(args.requests),
            "--repeats",
            str(args.repeats),
        ]
        out = subprocess.run(argv, capture_output=True, text=True, check=True)
        costs[variant] = float(out.stdout.strip().splitlines()[-1])
    print("| variant | CPU µs/request | added vs baseline |")
    print("|---|---:|---:|")
    for variant, micros in costs.items():
        base = BASELINE.get(variant, "bare")
        print(f"| {variant} | {micros:.1f} | {micros - costs[base]:+.1f} vs {base} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
