"""Readiness runs checks concurrently, at most once per TTL, however many probes arrive."""

from __future__ import annotations

import asyncio
import time

from pilothouse.runtime.checks import Check, CheckRunner


def counting_check(name: str, delay: float = 0.0, calls: list[str] | None = None) -> Check:
    async def probe() -> None:
        if calls is not None:
            calls.append(name)
        await asyncio.sleep(delay)

    return Check(name, "python", True, 1.0, probe)


async def test_probe_storm_costs_one_run_per_ttl() -> None:
    calls: list[str] = []
    runner = CheckRunner([counting_check(f"c{i}", 0.05, calls) for i in range(5)], ttl=0.5)
    # 200 concurrent probes while the first run is in flight: they share it (single flight).
    reports = await asyncio.gather(*(runner.report() for _ in range(200)))
    assert runner.runs == 1 and len(calls) == 5
    assert all(r is reports[0] for r in reports)
    # Inside the TTL: cached.
    await runner.report()
    assert runner.runs == 1
    await asyncio.sleep(0.55)
    await runner.report()
    assert runner.runs == 2 and len(calls) == 10


async def test_checks_run_concurrently() -> None:
    runner = CheckRunner([counting_check(f"c{i}", 0.2) for i in range(5)], ttl=1)
    start = time.monotonic()
    report = await runner.report()
    assert time.monotonic() - start < 0.6  # five 0.2 s checks, not one after the other
    assert report.ok and report.status == "pass"


async def test_a_cancelled_caller_does_not_cancel_the_shared_run() -> None:
    runner = CheckRunner([counting_check("slow", 0.2)], ttl=1)
    impatient = asyncio.ensure_future(runner.report())
    await asyncio.sleep(0.05)
    impatient.cancel()
    report = await runner.report()
    assert report.ok and runner.runs == 1
