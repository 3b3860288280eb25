"""Application metrics in a few lines: units of work, protocol commands, queue depth, pools.

    @unit_of_work("import-batch")            # counter by outcome + duration + a span
    async def import_batch(): ...

    with command("LINK") as cmd:             # duration by result code + a span
        cmd.result = link()                  # e.g. "OK", "BUSY"; "error" if it raises

    queue_depth("orders", lambda: queue.qsize())      # evaluated at scrape time
    watch_pool("db", pool)                   # psycopg_pool or SQLAlchemy: in use / max

Units nest: a unit started inside another becomes its child span, so A -> B -> C shows as three
nested spans under the request's server span. Names are metric label values: use a fixed set.
"""

from __future__ import annotations

import abc
import functools
import inspect
from collections.abc import Callable
from time import perf_counter
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

from pilothouse.catalog import app as app_metrics
from pilothouse.telemetry.context import current_request
from pilothouse.telemetry.spans import start_span
from pilothouse.telemetry.state import state

P = ParamSpec("P")
R = TypeVar("R")


class _Timed(abc.ABC):
    """A timed, traced block; usable as a (async) context manager or as a decorator."""

    __slots__ = ("_span", "_start", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._span: Any = None
        self._start = 0.0

    @abc.abstractmethod
    def _record(self, duration: float, error: BaseException | None) -> None:
        """Record one finished execution (the subclass's metrics)."""

    def _fresh(self) -> _Timed:
        return type(self)(self.name)

    def __enter__(self) -> _Timed:
        self._span = start_span(self.name)
        self._start = perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._record(perf_counter() - self._start, exc)
        if self._span is not None:
            self._span.close(exc)

    async def __aenter__(self) -> _Timed:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        """Decorate a function (sync or async): each call runs inside a fresh block."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                with self._fresh():
                    return await func(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(func)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with self._fresh():
                return func(*args, **kwargs)

        return run


class unit_of_work(_Timed):
    """A named piece of business work: executions by outcome, duration, one span."""

    __slots__ = ()

    def _record(self, duration: float, error: BaseException | None) -> None:
        state.used("unit_of_work")
        metrics = state.metrics
        outcome = "success" if error is None else "error"
        metrics.counter(app_metrics.UNIT_OF_WORK_EXECUTIONS).labels(self.name, outcome).inc()
        metrics.histogram(app_metrics.UNIT_OF_WORK_DURATION).labels(self.name).observe(duration)


class command(_Timed):
    """A protocol-level operation (LINK, READ, SEND...): duration by result code, one span.

    Set `.result` inside the block; it defaults to "ok", or "error" when the block raises.
    """

    __slots__ = ("result",)

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.result: str | None = None

    def _record(self, duration: float, error: BaseException | None) -> None:
        state.used("command")
        result = self.result or ("ok" if error is None else "error")
        if self._span is not None:
            self._span.set_attribute("pilothouse.command.result", result)
        state.metrics.histogram(app_metrics.COMMAND_DURATION).labels(self.name, result).observe(duration)


def queue_depth(name: str, depth: Callable[[], float]) -> None:
    """Export `depth()` as `pilothouse_queue_depth{queue=name}`, called at each scrape.

    Evaluated in the process that answers the scrape; with several worker processes this
    reports the supervisor's view, so bind it to a shared queue (Redis, a table), not a local one.
    """
    state.used("queue_depth")
    state.metrics.gauge(app_metrics.QUEUE_DEPTH).labels(name).set_function(depth)


def request_id() -> str | None:
    """The current request's id (its X-Request-ID, or the one generated for it), None outside a
    request or with `request_id = false`: pass it on to the services this request calls."""
    request = current_request.get()
    return request.request_id if request is not None else None


def set_correlation(value: str) -> None:
    """Tag the current request (its server span and its log lines) with a correlation value,
    e.g. a transaction id known only once the body was parsed."""
    request = current_request.get()
    if request is not None:
        request.correlation = value
    from pilothouse.telemetry.spans import current_span_set

    current_span_set(state.correlation_attribute, value)
