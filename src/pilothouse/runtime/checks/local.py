"""Checks of the local machine and process: disk space and freshness of a timestamp."""

from __future__ import annotations

import os
import time

from pilothouse.config.checks import DiskCheck, FreshnessCheck
from pilothouse.runtime import freshness
from pilothouse.runtime.checks.blocking import in_thread
from pilothouse.runtime.checks.result import CheckFailed, Probe


def disk_probe(cfg: DiskCheck) -> Probe:
    def statvfs() -> None:
        try:
            stats = os.statvfs(cfg.path)
        except OSError as exc:
            raise CheckFailed(f"cannot stat {cfg.path}: {exc.strerror}") from None
        free = stats.f_bavail * stats.f_frsize
        needed = cfg.threshold(stats.f_blocks * stats.f_frsize)
        if free < needed:
            raise CheckFailed(f"{free // 2**20} MiB free at {cfg.path}, need {needed // 2**20} MiB")

    return in_thread(statvfs)


def freshness_probe(cfg: FreshnessCheck) -> Probe:
    def age_of_file(path: str) -> float:
        try:
            return time.time() - os.stat(path).st_mtime
        except OSError as exc:
            raise CheckFailed(f"cannot stat {path}: {exc.strerror}") from None

    def check() -> None:
        if cfg.marker is not None:
            age = freshness.age(cfg.marker)
            if age is None:
                raise CheckFailed(f"marker '{cfg.marker}' has never been touched")
        else:
            assert cfg.file is not None
            age = age_of_file(cfg.file)
        if age > cfg.max_age:
            raise CheckFailed(f"last update {age:.0f}s ago, allowed {cfg.max_age:.0f}s")

    if cfg.marker is not None:

        async def probe() -> None:
            check()

        return probe
    return in_thread(check)
