"""`make bench`: every benchmark of the project, one after the other.

Each benchmark is a module in bench/ with `main(argv) -> int`; add yours to BENCHMARKS.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BENCHMARKS = (
    "bench.middleware_cost",
    "bench.server_instructions",
    "bench.http_overhead",
    "bench.serve_variants",
    "bench.jobs",
    "bench.image",
)


def main() -> int:
    status = 0
    for name in BENCHMARKS:
        print(f"== {name}", flush=True)
        status |= importlib.import_module(name).main([])
    return status


if __name__ == "__main__":
    raise SystemExit(main())
