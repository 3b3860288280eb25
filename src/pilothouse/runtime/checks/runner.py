"""Readiness: run every check concurrently, each under its own timeout, at most once per TTL.

A probe storm costs one run per TTL: callers inside the TTL get the cached report, and callers
that arrive while a run is in progress await that same run (single flight).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from pilothouse.redaction import redact
from pilothouse.runtime.checks.result import Check, CheckFailed, CheckResult

ResultListener = Callable[[CheckResult], None]


@dataclass(frozen=True, slots=True)
class ReadinessReport:
    """Every check's latest result; `ok` decides 200 or 503, `status` is pass, warn or fail."""

    results: tuple[CheckResult, ...]
    checked_at: float

    @property
    def ok(self) -> bool:
        """True when every critical check passed."""
        return all(r.ok or not r.critical for r in self.results)

    @property
    def status(self) -> str:
        if not self.ok:
            return "fail"
        return "warn" if any(not r.ok for r in self.results) else "pass"


class CheckRunner:
    """Runs checks with timeouts and caches the report for `ttl` seconds."""

    def __init__(self, checks: list[Check], ttl: float, listener: ResultListener | None = None) -> None:
        self.checks = checks
        self.ttl = ttl
        self.runs = 0  # how many times the checks really ran (benchmarks and tests count this)
        self._listener = listener
        self._report: ReadinessReport | None = None
        self._inflight: asyncio.Future[ReadinessReport] | None = None

    async def report(self) -> ReadinessReport:
        """The cached report if younger than the TTL, else a fresh one (shared by callers)."""
        report = self._report
        if report is not None and time.monotonic() - report.checked_at < self.ttl:
            return report
        if self._inflight is None:
            self._inflight = asyncio.ensure_future(self._run_all())
            self._inflight.add_done_callback(self._clear_inflight)
        return await asyncio.shield(self._inflight)

    def _clear_inflight(self, _: object) -> None:
        self._inflight = None

    async def _run_all(self) -> ReadinessReport:
        self.runs += 1
        results = await asyncio.gather(*(self._run_one(c) for c in self.checks))
        self._report = ReadinessReport(tuple(results), time.monotonic())
        return self._report

    async def _run_one(self, check: Check) -> CheckResult:
        start = time.perf_counter()
        error: str | None = None
        try:
            await asyncio.wait_for(check.probe(), check.timeout)
        except TimeoutError:
            error = f"timed out after {check.timeout:g}s"
        except CheckFailed as exc:
            error = str(exc) or "failed"
        except Exception as exc:  # a buggy check must not break readiness for the others
            error = f"{type(exc).__name__}: {exc}"
        result = CheckResult(
            name=check.name,
            ok=error is None,
            critical=check.critical,
            duration_ms=(time.perf_counter() - start) * 1000,
            error=redact(error)[:300] if error else None,
        )
        if self._listener is not None:
            self._listener(result)
        return result
