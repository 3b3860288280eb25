"""Benchmark of the core runtime (issue: config, probes, lifecycle, serve).

Measures, against a real `pilothouse serve` on 127.0.0.1 with five real checks (PostgreSQL,
Redis, TCP, disk, file freshness):
  1. `/ready` latency, checks cached (TTL 1 s) vs uncached (TTL 0): p50 / p99 over sequential probes;
  2. a probe storm at a fixed 200 requests/s for 10 s: achieved rate, and how often the checks
     really ran (the `pilothouse_readiness_check_runs_total` counter; at most once per TTL);
  3. time from SIGTERM to exit, idle and with in-flight requests.
Bounded in time and count; loopback only. Prints a Markdown report.

    .venv/bin/python bench/core.py
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.helpers import ServeProcess, write_config  # noqa: E402

CONFIG = """
[service]
name = "bench"
app = "tests.apps.slow:app"
[probes]
check_timeout = "1s"
cache_ttl = "{ttl}"
[lifecycle]
pre_stop_delay = "{pre_stop}"
drain_timeout = "10s"
flush_timeout = "1s"
[[checks]]
name = "postgres"
kind = "postgres"
url = "postgresql://postgres@127.0.0.1:5432/test"
[[checks]]
name = "redis"
kind = "redis"
url = "redis://127.0.0.1:6379/0"
[[checks]]
name = "tcp"
kind = "tcp"
host = "127.0.0.1"
port = 5432
[[checks]]
name = "disk"
kind = "disk"
path = "/"
min_free = "1%"
[[checks]]
name = "fresh"
kind = "freshness"
file = "{fresh}"
max_age = "1h"
"""


def start(directory: Path, ttl: str, pre_stop: str = "0s") -> ServeProcess:
    fresh = directory / "fresh"
    fresh.touch()
    path = write_config(
        directory, CONFIG.format(ttl=ttl, pre_stop=pre_stop, fresh=fresh), f"bench-{ttl}.toml"
    )
    return ServeProcess(path, cwd=ROOT, env={"PILOTHOUSE_TELEMETRY__ACCESS_LOG": "false"}).start()


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ready_latency(server: ServeProcess, n: int = 400) -> tuple[float, float, int]:
    samples, ok = [], 0
    with httpx.Client(base_url=server.ops_url) as client:
        for _ in range(20):
            client.get("/ready")
        for _ in range(n):
            start = time.perf_counter()
            r = client.get("/ready")
            samples.append((time.perf_counter() - start) * 1000)
            ok += r.status_code == 200
    return percentile(samples, 0.5), percentile(samples, 0.99), ok


def check_runs(server: ServeProcess) -> dict[str, float]:
    text = httpx.get(f"{server.ops_url}/metrics").text
    runs: dict[str, float] = {}
    for check, value in re.findall(
        r'pilothouse_readiness_check_runs_total\{check="([^"]+)"[^}]*\} ([0-9.e+]+)', text
    ):
        runs[check] = runs.get(check, 0) + float(value)
    return runs


async def storm(url: str, rate: int, seconds: float) -> tuple[int, int, float]:
    """Send `rate` requests per second for `seconds`, each at its scheduled time."""
    sent = ok = 0
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=50)) as client:

        async def one() -> None:
            nonlocal ok
            r = await client.get(url)
            ok += r.status_code == 200

        tasks = []
        begin = time.perf_counter()
        total = int(rate * seconds)
        for i in range(total):
            delay = begin + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
            sent += 1
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - begin
    return sent, ok, elapsed


def sigterm_to_exit(directory: Path, inflight: int) -> float:
    server = start(directory, "1s", pre_stop="1s")
    with concurrent.futures.ThreadPoolExecutor(max(1, inflight)) as pool:
        futures = [
            pool.submit(httpx.get, f"{server.app_url}/slow?seconds=2", timeout=30) for _ in range(inflight)
        ]
        while inflight and httpx.get(f"{server.ops_url}/status").json()["inflight_requests"] < inflight:
            time.sleep(0.02)
        sent = time.monotonic()
        server.signal(signal.SIGTERM)
        code = server.wait(timeout=30)
        took = time.monotonic() - sent
        assert code == 0 and all(f.result().status_code == 200 for f in futures)
    return took


def main() -> None:
    print(f"# Core runtime benchmark ({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, loopback)\n")
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        print("## /ready latency, 5 real checks (PostgreSQL, Redis, TCP, disk, file freshness)\n")
        print("| mode | p50 ms | p99 ms | 200s / probes |\n|---|---|---|---|")
        for label, ttl in (("cached (TTL 1s)", "1s"), ("uncached (TTL 0s)", "0s")):
            server = start(directory, ttl)
            p50, p99, ok = ready_latency(server)
            server.signal(signal.SIGTERM)
            server.wait()
            print(f"| {label} | {p50:.2f} | {p99:.2f} | {ok}/400 |")

        print("\n## Probe storm: 200 req/s for 10 s at /ready, TTL 1 s\n")
        server = start(directory, "1s")
        before = check_runs(server)
        sent, ok, elapsed = asyncio.run(storm(f"{server.ops_url}/ready", 200, 10))
        after = check_runs(server)
        server.signal(signal.SIGTERM)
        server.wait()
        runs = {name: after.get(name, 0) - before.get(name, 0) for name in after}
        print(f"- probes sent {sent} in {elapsed:.1f}s ({sent / elapsed:.0f}/s), answered 200: {ok}")
        print(
            f"- check runs per check during the storm: {sorted(set(runs.values()))} "
            f"(≤ {int(elapsed) + 1} allowed at one run per TTL)"
        )

        print("\n## SIGTERM to exit (pre_stop_delay 1s, drain_timeout 10s, flush_timeout 1s)\n")
        print("| in flight at SIGTERM | seconds to exit (median of 3) |\n|---|---|")
        for inflight in (0, 20):
            times = [sigterm_to_exit(directory, inflight) for _ in range(3)]
            print(f"| {inflight} (each 2 s long) | {statistics.median(times):.2f} |")


if __name__ == "__main__":
    if subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"]).returncode != 0:
        sys.exit("PostgreSQL is not running on 127.0.0.1:5432 (run `make services`)")
    main()
