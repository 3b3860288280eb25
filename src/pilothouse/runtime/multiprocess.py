"""Correct totals when several worker processes serve one app (prometheus_client multiprocess).

Each worker writes its samples to memory-mapped files in one directory; the process that
answers `/metrics` adds them up. The directory must be known before any worker creates a
metric, so the supervisor calls `setup_dir` before it spawns workers (they inherit the
environment variable), and `worker_exited` when one dies so its live gauges disappear.
Counters and histograms of dead workers stay in the totals, as Prometheus expects of a counter.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.metrics_core import Metric

from pilothouse.catalog import all_specs

ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_enabled() -> bool:
    """Whether this process stores metrics for a multiprocess scrape."""
    return bool(os.environ.get(ENV))


def setup_dir(path: Path | None) -> Path:
    """Prepare the shared metrics directory and export it to child processes.

    Creates `path` (or a fresh temporary directory when None), deletes the `*.db` files earlier
    runs left behind (call this before any worker starts: their files would be deleted too),
    and sets PROMETHEUS_MULTIPROC_DIR in `os.environ` so workers spawned afterwards inherit it.
    prometheus_client chooses its storage when first imported, so a worker must not import it
    before the variable is set; the supervisor's own metrics stay in its memory.
    """
    directory = Path(tempfile.mkdtemp(prefix="pilothouse-metrics-")) if path is None else path
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ[ENV] = str(directory)
    return directory


def worker_exited(pid: int) -> None:
    """Forget the live gauges (e.g. active requests) of a worker that exited; call it from
    the supervisor for every worker it reaps."""
    directory = os.environ.get(ENV)
    if directory:
        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


class _Merged:
    """The scraping process's own families, plus those of `sources` it does not have (the first
    source to bring a family wins)."""

    def __init__(self, local: CollectorRegistry, sources: list[Callable[[], Iterable[Metric]]]) -> None:
        self.local = local
        self.sources = sources

    def collect(self) -> Iterable[Metric]:
        own = list(self.local.collect())
        names = {family.name for family in own}
        yield from own
        for source in self.sources:
            for family in source():
                if family.name not in names:
                    names.add(family.name)
                    yield family


def _workers(directory: str, app_metrics: bool) -> Callable[[], Iterable[Metric]]:
    """Every worker's samples from the shared files; only the catalog's unless `app_metrics`
    (the app's own prometheus_client metrics live in the same files)."""
    declared = {spec.name for spec in all_specs()}

    def collect() -> Iterable[Metric]:
        collector = multiprocess.MultiProcessCollector(None, directory)  # type: ignore[no-untyped-call]
        for family in collector.collect():  # type: ignore[no-untyped-call]
            if app_metrics or family.name in declared:
                yield family

    return collect


def scrape_registry(local: CollectorRegistry, app: CollectorRegistry | None = None) -> CollectorRegistry:
    """What `/metrics` exposes: `local`, plus the app's own metrics (`app`, usually
    prometheus_client's default REGISTRY; None leaves them out), or, when multiprocess mode is on,
    every worker's samples. On a name clash the local family wins: lifecycle and readiness
    metrics belong to the process that runs the checks and answers the probes, and the default
    registry's process collectors duplicate ours."""
    directory = os.environ.get(ENV)
    sources: list[Callable[[], Iterable[Metric]]] = []
    if directory:
        sources.append(_workers(directory, app is not None))
    elif app is not None:
        sources.append(app.collect)
    if not sources:
        return local
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(local, sources))
    return registry
