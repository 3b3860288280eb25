"""Jobs: throughput of trivial jobs (submit -> done) on SQLite and PostgreSQL with 1 and 2 worker
processes, the store's own cost per job, and drain latency (flag set -> every worker stopped
taking jobs).

Workers are real `pilothouse jobs worker --no-ops` processes, started and registered before the
clock starts, so interpreter start-up is not counted. Run: `.venv/bin/python bench/jobs.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from pilothouse.config import load_config
from pilothouse.jobs.store import JobStore, open_store

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
JOBS_MODULE = """
from pilothouse.jobs import job

noop = job("noop")
noop.step("nothing")(lambda ctx: 0)
"""


def write_config(directory: Path, backend: str, schema: str, poll: str) -> Path:
    (directory / "bench_jobs.py").write_text(JOBS_MODULE)
    store = (
        f'url = "{POSTGRES_URL}"\npg_schema = "{schema}"'
        if backend == "postgres"
        else 'path = "jobs.sqlite3"'
    )
    path = directory / "pilothouse.toml"
    path.write_text(
        f'[service]\nname = "bench"\n[telemetry]\nlog_level = "warning"\n[lifecycle]\npre_stop_delay = "0s"\n'
        f'[jobs]\nmodule = "bench_jobs"\n{store}\nconcurrency = 8\npoll_interval = "{poll}"\n'
        'heartbeat_interval = "1s"\nheartbeat_timeout = "10s"\n'
    )
    return path


def start_workers(path: Path, count: int, store: JobStore) -> list[subprocess.Popen[bytes]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "pilothouse", "jobs", "worker", "--no-ops", "-c", str(path)],
            cwd=path.parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    deadline = time.monotonic() + 30
    while len(store.workers()) < count:
        if time.monotonic() > deadline:
            raise RuntimeError("workers did not register")
        time.sleep(0.05)
    return procs


def stop_workers(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=30)


def throughput(store: JobStore, jobs: int) -> dict[str, float]:
    started = time.perf_counter()
    for _ in range(jobs):
        store.submit("noop", {}, on_lost="requeue", max_attempts=3, traceparent=None)
    submitted = time.perf_counter() - started
    while store.counts()["finished"] < jobs:
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    return {"jobs_per_s": jobs / elapsed, "submit_ms_per_job": submitted * 1000 / jobs, "seconds": elapsed}


def store_overhead(store: JobStore, jobs: int) -> float:
    """Milliseconds of store calls one job costs a worker: submit, claim, step start/end, finish."""
    store.register_worker("bench", "host", 0)
    started = time.perf_counter()
    for _ in range(jobs):
        job_id = store.submit("noop", {}, on_lost="requeue", max_attempts=3, traceparent=None)
        [record] = store.claim("bench", 1, job_id)
        store.step_started(job_id, record.attempts, 1, "nothing")
        store.step_finished(job_id, record.attempts, 1, "nothing", "ok", 0, 1, None)
        store.finish(job_id, "bench", "ok", 0, None)
    store.unregister_worker("bench")
    return (time.perf_counter() - started) * 1000 / jobs


def drain_latency(store: JobStore, trials: int) -> list[float]:
    """Seconds from setting the flag until every registered worker reports not accepting."""
    out = []
    for _ in range(trials):
        time.sleep(random.uniform(0, 0.2))  # land anywhere in the workers' poll cycle
        store.set_draining(True)
        started = time.perf_counter()
        while any(w.accepting for w in store.workers()):
            time.sleep(0.002)
        out.append(time.perf_counter() - started)
        store.set_draining(False)
        while not all(w.accepting for w in store.workers()):
            time.sleep(0.01)
    return out


def run_backend(backend: str, jobs: int, trials: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            schema = f"bench_jobs_{uuid.uuid4().hex[:8]}"
            path = write_config(Path(tmp), backend, schema, "100ms")
            store = open_store(load_config(path))
            procs = start_workers(path, workers, store)
            try:
                throughput(store, 50)  # warm-up: imports, connections, page cache
                result = throughput(store, jobs)
                latency = drain_latency(store, trials)
            finally:
                stop_workers(procs)
                overhead = store_overhead(store, 300) if workers == 1 else None
                store.close()
                if backend == "postgres":
                    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
                        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        rows.append(
            {
                "backend": backend,
                "workers": workers,
                **result,
                "store_ms_per_job": overhead,
                "drain_p50_ms": statistics.median(latency) * 1000,
                "drain_max_ms": max(latency) * 1000,
            }
        )
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    rows = run_backend("sqlite", args.jobs, args.trials) + run_backend("postgres", args.jobs, args.trials)
    print(f"{args.jobs} trivial jobs (one no-op step), concurrency 8 per worker, poll_interval 100ms")
    print(
        "| store | workers | jobs/s (submit -> done) | submit ms/job | store ms/job, all calls |"
        " drain p50 ms | drain max ms |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        overhead = f"{r['store_ms_per_job']:.2f}" if r["store_ms_per_job"] is not None else "-"
        print(
            f"| {r['backend']} | {r['workers']} | {r['jobs_per_s']:.0f} | {r['submit_ms_per_job']:.2f} | "
            f"{overhead} | {r['drain_p50_ms']:.0f} | {r['drain_max_ms']:.0f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
