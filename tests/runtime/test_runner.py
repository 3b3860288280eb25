"""Readiness runs checks concurrently, at most once per TTL, however many probes arrive."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

import pytest

from pilothouse.runtime.checks import Check, CheckRunner
from pilothouse.runtime.checks import runner as runner_module


def counting_check(name: str, delay: float = 0.0, calls: list[str] | None = None) -> Check:
    async def probe() -> None:
        if calls is not None:
            calls.append(name)
        await asyncio.sleep(delay)

    return Check(name, "python", True, 1.0, probe)


async def test_probe_storm_costs_one_run_per_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    now = [1000.0]  # the runner's clock, moved by the test: "inside the TTL" holds however slow
    clock = SimpleNamespace(monotonic=lambda: now[0], perf_counter=time.perf_counter)
    monkeypatch.setattr(runner_module, "time", clock)  # the runner's only: asyncio keeps real time
    runner = CheckRunner([counting_check(f"c{i}", 0.05, calls) for i in range(5)], ttl=0.5)
    # 200 concurrent probes while the first run is in flight: they share it (single flight).
    reports = await asyncio.gather(*(runner.report() for _ in range(200)))
    assert runner.runs == 1 and len(calls) == 5
    assert all(r is reports[0] for r in reports)
    # Inside the TTL: cached.
    now[0] += 0.49
    await runner.report()
    assert runner.runs == 1
    now[0] += 0.02
    await runner.report()
    assert runner.runs == 2 and len(calls) == 10


async def test_checks_run_concurrently() -> None:
    started, everyone = 0, asyncio.Event()

    async def rendezvous() -> None:  # passes only once all five run at the same time
        nonlocal started
        started += 1
        if started == 5:
            everyone.set()
        await everyone.wait()

    runner = CheckRunner([Check(f"c{i}", "python", True, 5.0, rendezvous) for i in range(5)], ttl=1)
    report = await runner.report()
    assert report.ok and report.status == "pass"  # one after the other, the first would time out


async def test_a_cancelled_caller_does_not_cancel_the_shared_run() -> None:
    runner = CheckRunner([counting_check("slow", 0.2)], ttl=1)
    impatient = asyncio.ensure_future(runner.report())
    await asyncio.sleep(0.05)
    impatient.cancel()
    report = await runner.report()
    assert report.ok and runner.runs == 1
