"""Retention (`keep_daily/weekly/monthly`, `restic forget --prune`) on a synthetic history made with
`restic backup --time`: exactly the snapshots restic's documented policy keeps remain.

The expected set is computed here from the policy as restic documents it: for the last N days
(ISO weeks, months) that have snapshots, the newest snapshot of each; the union of the three;
per target path (`--group-by paths`)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

from pilothouse.backup import plan
from pilothouse.backup.restic import TAG, Restic
from pilothouse.config.backup import BackupConfig
from pilothouse.config.secret_ref import SecretRef

PASSWORD = "retention-test-password-123"


def _expected(times: list[dt.datetime], daily: int, weekly: int, monthly: int) -> set[dt.datetime]:
    kept: set[dt.datetime] = set()
    for count, bucket in (
        (daily, lambda t: t.date()),
        (weekly, lambda t: t.isocalendar()[:2]),
        (monthly, lambda t: (t.year, t.month)),
    ):
        newest: dict[object, dt.datetime] = {}
        for t in sorted(times, reverse=True):
            newest.setdefault(bucket(t), t)
        kept |= set(list(newest.values())[:count])
    return kept


def test_forget_keeps_exactly_the_policy(tmp_path: Path) -> None:
    section = BackupConfig(
        repository=str(tmp_path / "repo"),
        password=SecretRef(secret="backup.password"),
        keep_daily=7,
        keep_weekly=4,
        keep_monthly=3,
    )
    restic = Restic(section, PASSWORD)
    restic.ensure_repository()
    start = dt.datetime(2026, 1, 20, 3, 0)
    times = [start + dt.timedelta(days=d) for d in range(70)]
    times.append(times[-1].replace(hour=15))  # two runs on the last day: the later one counts
    for when in times:
        restic.run(
            "backup",
            "--stdin",
            "--stdin-filename",
            "db.dump",
            "--tag",
            f"{TAG},target:db",
            "--time",
            when.strftime("%Y-%m-%d %H:%M:%S"),
            stdin=when.isoformat().encode(),
        )
    # another target's history is kept by its own count (grouped by path)
    restic.run(
        "backup",
        "--stdin",
        "--stdin-filename",
        "files.tar",
        "--tag",
        TAG,
        "--time",
        "2025-06-01 03:00:00",
        stdin=b"old",
    )
    plan.forget(restic, section)
    left = restic.snapshots()
    by_path: dict[str, set[dt.datetime]] = {}
    for snap in left:
        when = dt.datetime.fromisoformat(str(snap["time"])[:19])
        by_path.setdefault(snap["paths"][0], set()).add(when)
    expected = _expected(times, 7, 4, 3)
    assert by_path["/db.dump"] == expected
    assert len(expected) == 7 + 2 + 2  # 7 days; 2 more ISO weeks; 2 more months (the rest overlap)
    assert by_path["/files.tar"] == {dt.datetime(2025, 6, 1, 3, 0)}
    check = subprocess.run(
        ["restic", "-r", section.repository, "check"],
        capture_output=True,
        env={**os.environ, "RESTIC_PASSWORD": PASSWORD},
    )
    assert check.returncode == 0, check.stderr  # the prune left a consistent repository
