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
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import json
import os
import re
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

STACKS = ("h11", "httptools")
WARMUP = 300
_COLLECTED = re.compile(r"Collected\s*:\s*(\d+)")


class _Transport(asyncio.Transport):
    """What uvicorn's protocols use of a transport; the written bytes are kept."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

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


async def _serve(variant: str, stack: str, server_header: bool, requests: int, pid_to_count: int) -> None:
    """Serve WARMUP requests, switch callgrind's instrumentation on, serve `requests` more."""
    import uvicorn
    from uvicorn.server import ServerState

    from bench.apps import build

    config = uvicorn.Config(
        app=build(variant),
        http=stack,
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
    answered = transport.written.count(b"HTTP/1.1 200 OK\r\n")
    if answered != requests:
        raise SystemExit(f"{variant}/{stack}: {answered} answers to {requests} requests")


def _run(variant: str, stack: str, server_header: bool, requests: int) -> int:
    """Instructions of one callgrind run serving `requests` counted requests."""
    with tempfile.TemporaryDirectory(prefix="pilothouse-protocol-") as tmp:
        log = Path(tmp) / "valgrind.log"
        argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        argv += [f"--callgrind-out-file={tmp}/out", f"--log-file={log}", sys.executable, __file__]
        argv += ["--child", variant, stack, "1" if server_header else "0", str(requests)]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, (os.environ.get("PYTHONPATH"), str(ROOT)))),
        }
        subprocess.run(argv, check=True, cwd=ROOT, env=env)
        match = _COLLECTED.search(log.read_text())
    if match is None:
        raise SystemExit(f"{variant}/{stack}: no instruction count in the valgrind log")
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
        asyncio.run(_serve(variant, stack, header == "1", int(requests), os.getpid()))
        return 0
    from bench.apps import VARIANTS
    from bench.serve_variants import commit, versions

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--apps", default="bare,minimal-headers,minimal-defaults,protection-defaults")
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--no-server-header", action="store_true", help="as pilothouse serve runs uvicorn")
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--large", type=int, default=1200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "results" / "protocol_instructions.json"
    )
    args = parser.parse_args(argv)
    apps = [a for a in args.apps.split(",") if a]
    stacks = [s for s in args.stacks.split(",") if s]
    if unknown := sorted(set(apps) - set(VARIANTS)) + sorted(set(stacks) - set(STACKS)):
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
