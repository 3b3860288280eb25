"""HTTP overhead benchmark: requests/s and p99 of one trivial route, per instrumentation.

uvicorn (1 worker, access log off) is pinned to CPU 0 and wrk to CPU 1, on 127.0.0.1. In each
round every variant runs once, in a rotated order (interleaved, so drift hits all alike); the
ratio to the baseline is taken within a round, and the median over rounds is reported.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.apps import BASELINE, VARIANTS  # noqa: E402

URL_PATH = "/items/42"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pinned(cpu: int, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv] if (os.cpu_count() or 1) > 1 else argv


def uvicorn_argv(port: int, http: str) -> list[str]:
    """The served benchmark app: uvicorn, 1 worker, access log off, the given HTTP parser."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "bench.apps:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
        "--workers",
        "1",
        "--http",
        http,
    ]


def server_env(variant: str) -> dict[str, str]:
    return {**os.environ, "BENCH_VARIANT": variant, "PYTHONPATH": str(ROOT)}


def add_http_argument(parser: argparse.ArgumentParser, name: str) -> None:
    """`--http` (uvicorn's HTTP parser) and `--output` (default: bench/results/`name`.json, with
    `-httptools` for httptools)."""
    parser.add_argument(
        "--http",
        choices=("h11", "httptools"),
        default="h11",
        help="uvicorn's HTTP parser: h11 (plain `pip install uvicorn`) or httptools (`uvicorn[standard]`)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help=f"default: bench/results/{name}.json (h11), {name}-httptools.json",
    )


def output_path(parser: argparse.ArgumentParser, args: argparse.Namespace, name: str) -> Path:
    """Where results go; refuses `--http httptools` when httptools is missing (uvicorn would fail
    to start and the benchmark wait for it)."""
    if args.http == "httptools" and importlib.util.find_spec("httptools") is None:
        parser.error("--http httptools: httptools is not installed (pip install httptools)")
    suffix = "" if args.http == "h11" else f"-{args.http}"
    output: Path = args.output or ROOT / "bench" / "results" / f"{name}{suffix}.json"
    return output


def start_server(variant: str, port: int, http: str = "h11") -> subprocess.Popen[bytes]:
    return start_argv(uvicorn_argv(port, http), server_env(variant), port, variant)


def start_argv(argv: list[str], env: dict[str, str], port: int, variant: str) -> subprocess.Popen[bytes]:
    """Start the server `argv` pinned to CPU 0 and wait until `port` accepts connections."""
    proc = subprocess.Popen(
        pinned(0, argv), env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120  # a busy machine starts a server slowly
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"{variant}: server exited with {proc.returncode}") from None
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{variant}: server did not start")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process used so far (its own, whatever else shares the core)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(port: int, seconds: float, connections: int, headers: tuple[str, ...] = ()) -> dict[str, float]:
    out = subprocess.run(
        pinned(
            1,
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{round(seconds)}s",
                "--latency",
                *(arg for header in headers for arg in ("-H", header)),
                f"http://127.0.0.1:{port}{URL_PATH}",
            ],
        ),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    factor = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} error responses:\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return {
        "rps": rps,
        "requests": requests,
        "p99_ms": float(p99.group(1)) * factor[p99.group(2)] if p99 else float("nan"),
    }


def measure(variant: str, seconds: float, connections: int, http: str) -> dict[str, float]:
    port = free_port()
    return measure_process(start_server(variant, port, http), port, seconds, connections)


def measure_process(
    proc: subprocess.Popen[bytes], port: int, seconds: float, connections: int, headers: tuple[str, ...] = ()
) -> dict[str, float]:
    """wrk against the started server `proc` on `port` (after a 1 s warm-up); stops it after."""
    try:
        wrk(port, 1, connections, headers)  # warm-up: imports, caches, first label children
        before = cpu_seconds(proc.pid)
        result = wrk(port, seconds, connections, headers)
        result["cpu_us"] = (cpu_seconds(proc.pid) - before) / result["requests"] * 1e6
        return result
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run(
    variants: tuple[str, ...], rounds: int, seconds: float, connections: int, http: str = "h11"
) -> dict[str, Any]:
    samples: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    for index in range(rounds):
        order = variants[index % len(variants) :] + variants[: index % len(variants)]
        for variant in order:
            result = measure(variant, seconds, connections, http)
            samples[variant].append(result)
            print(
                f"round {index + 1}/{rounds} {variant:24s} {result['rps']:8.0f} req/s "
                f"p99 {result['p99_ms']:6.2f} ms, server CPU {result['cpu_us']:6.1f} µs/request",
                flush=True,
            )
    summary: dict[str, Any] = {}
    for variant in variants:
        base = BASELINE.get(variant, "bare")
        pairs = list(zip(samples[variant], samples[base], strict=True)) if base in samples else []
        ratios = [s["rps"] / b["rps"] for s, b in pairs]
        cpu_ratios = [b["cpu_us"] / s["cpu_us"] for s, b in pairs]
        summary[variant] = {
            "baseline": base,
            "rps_median": statistics.median(s["rps"] for s in samples[variant]),
            "p99_ms_median": statistics.median(s["p99_ms"] for s in samples[variant]),
            "ratio_median": statistics.median(ratios) if ratios else None,
            "ratio_min": min(ratios) if ratios else None,
            "ratio_max": max(ratios) if ratios else None,
            "cpu_us_median": statistics.median(s["cpu_us"] for s in samples[variant]),
            "cpu_ratio_median": statistics.median(cpu_ratios) if cpu_ratios else None,
            "rounds": samples[variant],
        }
    return {
        "rounds": rounds,
        "seconds": seconds,
        "connections": connections,
        "path": URL_PATH,
        "http": http,
        "variants": summary,
    }


def table(result: dict[str, Any]) -> str:
    lines = [
        "| variant | req/s (median) | p99 ms (median) | ratio to baseline (median, min-max) "
        "| server CPU µs/request (median) | CPU ratio baseline/variant (median) |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for variant, row in result["variants"].items():
        ratio = "—"
        if row["ratio_median"] is not None:
            spread = f"{row['ratio_min']:.2f}-{row['ratio_max']:.2f}"
            ratio = f"{row['ratio_median']:.2f} ({spread}) vs {row['baseline']}"
        cpu_ratio = f"{row['cpu_ratio_median']:.2f}" if row["cpu_ratio_median"] is not None else "—"
        lines.append(
            f"| {variant} | {row['rps_median']:.0f} | {row['p99_ms_median']:.2f} | {ratio} "
            f"| {row['cpu_us_median']:.1f} | {cpu_ratio} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    add_http_argument(parser, "http_overhead")
    args = parser.parse_args(argv)
    output = output_path(parser, args, "http_overhead")
    variants = tuple(v for v in args.variants.split(",") if v)
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"unknown variants: {', '.join(unknown)}")
    result = run(variants, args.rounds, args.seconds, args.connections, args.http)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    print(f"written: {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
