"""`Runtime`: everything Pilothouse keeps inside one service process, built from the config.

`serve` and `attach` both build one; the ops app, middleware and shutdown read it.
"""

from __future__ import annotations

import asyncio
import gzip
import inspect
import logging
import platform
from collections.abc import Awaitable, Callable
from typing import Literal

from prometheus_client import CollectorRegistry, exposition

from pilothouse.asgi import ASGIApp, Headers
from pilothouse.catalog import http_server as http_metrics
from pilothouse.catalog import lifecycle as lifecycle_metrics
from pilothouse.config.model import Config
from pilothouse.config.secret_ref import ResolveSecret
from pilothouse.metrics import Metrics
from pilothouse.runtime.checks import Check, CheckResult, CheckRunner, ReadinessReport, build_checks
from pilothouse.runtime.checks.factory import no_resolver
from pilothouse.runtime.inflight import InFlightMiddleware
from pilothouse.runtime.lifecycle import Lifecycle, State
from pilothouse.runtime.ops_app import OpsApp, RouteHandler

log = logging.getLogger("pilothouse")

_current: Runtime | None = None

FlushHook = Callable[[], Awaitable[None] | None]
Hook = Callable[[], Awaitable[None]]
Role = Literal["process", "supervisor", "worker", "jobs"]


class Runtime:
    """Lifecycle, checks, metrics and shutdown hooks of one process."""

    def __init__(self, config: Config, metrics: Metrics | None = None, *, role: Role = "process") -> None:
        """`role` is "process" for a single-process serve or attach, "supervisor" and "worker"
        for `--workers`, "jobs" for `pilothouse jobs worker` (jobs are its purpose). Build info,
        lifecycle and readiness metrics belong to the process that answers the probes (not
        workers), and background features such as the job worker run once per pod, in the
        supervisor (not in HTTP workers)."""
        global _current
        _current = self
        self.config = config
        self.lifecycle = Lifecycle()
        self.metrics = metrics or Metrics()
        self._runner: CheckRunner | None = None
        self._inflight: InFlightMiddleware | None = None
        self._flush_hooks: list[FlushHook] = []
        self._start_hooks: list[Hook] = []
        self._drain_hooks: list[Hook] = []
        self.extra_routes: dict[tuple[str, str], tuple[RouteHandler, bool]] = {}
        self._extra_checks: list[Check] = []
        self._middleware: list[Callable[[ASGIApp], ASGIApp]] = []
        self._inner_middleware: list[Callable[[ASGIApp], ASGIApp]] = []
        self._scrape: Callable[[CollectorRegistry], CollectorRegistry] = _own_registry
        self.status_extras: Callable[[], dict[str, object]] = dict
        """More fields for `/status` (the supervisor adds its workers)."""
        self.record_check_metrics = True
        self.run_config_checks = True
        """False in the `--workers` supervisor: workers run the configured checks."""
        self.inflight_source: Callable[[], tuple[int, int]] | None = None
        """(in flight, dropped) when requests are served elsewhere (the supervisor's workers)."""
        self.role: Role = role
        self.resolve_secret: ResolveSecret = no_resolver
        """How configured checks read a secret URL; the secrets feature installs its resolver."""
        if role != "worker":
            self._register_process_metrics()

    # -- extension points (features such as jobs and telemetry plug in here) -----------------

    def add_route(self, method: str, path: str, handler: RouteHandler, *, admin: bool) -> None:
        """Serve `handler` on the ops port; `admin=True` puts it behind the bearer token."""
        self.extra_routes[(method.upper(), path)] = (handler, admin)

    def add_check(self, check: Check) -> None:
        """Add a readiness check from code (e.g. a feature's own health); before startup only."""
        if self._runner is not None:
            raise RuntimeError("checks are already running; add checks before startup")
        self._extra_checks.append(check)

    def on_start(self, hook: Hook) -> None:
        """Run `hook` once the app is serving, before the process is marked ready."""
        self._start_hooks.append(hook)

    def on_drain(self, hook: Hook) -> None:
        """Run `hook` during shutdown, beside the HTTP drain and under the same drain timeout."""
        self._drain_hooks.append(hook)

    async def run_start_hooks(self) -> None:
        for hook in self._start_hooks:
            await hook()

    async def run_drain_hooks(self) -> None:
        if self._drain_hooks:
            await asyncio.gather(*(hook() for hook in self._drain_hooks), return_exceptions=True)

    # -- checks ------------------------------------------------------------------------------

    def start_checks(self) -> CheckRunner:
        """Build the checks. Called after the app is imported, so decorated checks exist."""
        if self._runner is None:
            self._runner = CheckRunner(
                [
                    *(build_checks(self.config, self.resolve_secret) if self.run_config_checks else []),
                    *self._extra_checks,
                ],
                self.config.probes.cache_ttl,
                self._record_check,
            )
        return self._runner

    async def readiness(self) -> ReadinessReport:
        return await self.start_checks().report()

    def _record_check(self, result: CheckResult) -> None:
        if not self.record_check_metrics:
            return
        self.metrics.gauge(lifecycle_metrics.READINESS_CHECK_STATUS).labels(
            result.name, str(result.critical).lower()
        ).set(1 if result.ok else 0)
        self.metrics.histogram(lifecycle_metrics.READINESS_CHECK_DURATION).labels(result.name).observe(
            result.duration_ms / 1000
        )
        self.metrics.counter(lifecycle_metrics.READINESS_CHECK_RUNS).labels(
            result.name, "pass" if result.ok else "fail"
        ).inc()

    # -- the app -----------------------------------------------------------------------------

    def add_middleware(self, factory: Callable[[ASGIApp], ASGIApp], *, inner: bool = False) -> None:
        """Wrap the app in `factory(app)` when it is served (features add theirs at install;
        the first added is closest to the app, inside the later ones). `inner=True` puts it
        inside the in-flight layer, right around the app: for middleware that cancels a
        handler itself and answers (a time limit), which must not count as a drain drop."""
        (self._inner_middleware if inner else self._middleware).append(factory)

    def set_scrape(self, scrape: Callable[[CollectorRegistry], CollectorRegistry]) -> None:
        """Choose what `/metrics` exposes from this process's registry (e.g. add every
        worker's samples in multiprocess mode)."""
        self._scrape = scrape

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """The app with Pilothouse's request middleware around it: the in-flight tracking the
        shutdown needs, inside whatever the installed features added."""
        dropped = self.metrics.counter(http_metrics.HTTP_SERVER_REQUESTS_DROPPED)
        for factory in self._inner_middleware:
            app = factory(app)
        self._inflight = InFlightMiddleware(app, on_drop=dropped.inc)
        wrapped: ASGIApp = self._inflight
        for factory in self._middleware:
            wrapped = factory(wrapped)
        return wrapped

    @property
    def inflight(self) -> int:
        if self.inflight_source is not None:
            return self.inflight_source()[0]
        return self._inflight.inflight if self._inflight else 0

    @property
    def dropped(self) -> int:
        if self.inflight_source is not None:
            return self.inflight_source()[1]
        return self._inflight.dropped if self._inflight else 0

    def ops_app(self) -> OpsApp:
        return OpsApp(self)

    # -- metrics -----------------------------------------------------------------------------

    def _register_process_metrics(self) -> None:
        service = self.config.service
        self.metrics.info(lifecycle_metrics.BUILD_INFO).info(
            {
                "service": service.name,
                "version": service.version,
                "python_version": platform.python_version(),
            }
        )
        state_gauge = self.metrics.gauge(lifecycle_metrics.LIFECYCLE_STATE)

        def on_state(state: State) -> None:
            for candidate in State:
                state_gauge.labels(str(candidate)).set(1 if candidate is state else 0)

        self.lifecycle.subscribe(on_state)

    def exposition(self, accept: str, accept_encoding: str) -> tuple[bytes, str, Headers]:
        """The scrape body for these request headers: (body, content type, extra headers)."""
        encoder, content_type = exposition.choose_encoder(accept)
        body = encoder(self._scrape(self.metrics.registry))
        if "gzip" in accept_encoding:
            return gzip.compress(body, compresslevel=1), content_type, [(b"content-encoding", b"gzip")]
        return body, content_type, []

    # -- shutdown ----------------------------------------------------------------------------

    def on_flush(self, hook: FlushHook) -> None:
        """Run `hook` (sync or async) in the flush step of shutdown, e.g. to export spans."""
        self._flush_hooks.append(hook)

    async def flush(self) -> None:
        """Run flush hooks, all of them under `[lifecycle].flush_timeout` together."""

        async def run_all() -> None:
            for hook in self._flush_hooks:
                try:
                    result = hook()
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("flush hook failed")

        try:
            await asyncio.wait_for(run_all(), self.config.lifecycle.flush_timeout)
        except TimeoutError:
            log.warning("flush did not finish within %ss", self.config.lifecycle.flush_timeout)


def _own_registry(registry: CollectorRegistry) -> CollectorRegistry:
    return registry


def current_runtime() -> Runtime:
    """The Runtime of this process (built by `pilothouse serve` or `attach`), for app code:
    `current_runtime().lifecycle.state`, `.lifecycle.subscribe(...)`, `.lifecycle.mark_broken(...)`.
    """
    if _current is None:
        raise RuntimeError("no Pilothouse runtime in this process (run under `pilothouse serve` or attach())")
    return _current
