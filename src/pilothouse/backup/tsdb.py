"""Prometheus's TSDB as a backup target.

Backup: a snapshot through the admin API (`POST /api/v1/admin/tsdb/snapshot`; Prometheus runs
with `--web.enable-admin-api`), which hard-links the persisted blocks and writes the head as a
block under `<--storage.tsdb.path>/snapshots/<name>`; that directory is backed up as files and
then removed (its hard links would keep deleted blocks on disk). The manifest records the
snapshot's blocks (each block's meta.json: time range, series, samples; their files are
checksummed) and, asked of the live Prometheus over the snapshot's time range, how many series it
holds there.

Restore test: the restored snapshot opened by a real Prometheus (`[backup].prometheus`) on a
loopback port, asked the same series count (an equal answer) and the target's own `query` over
the snapshot's time range (an answer expected).
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from pilothouse.errors import OperationError

SNAPSHOT = "/api/v1/admin/tsdb/snapshot"
# Series with samples in the window, in one query (`last_over_time` keeps the metric name, where
# `count_over_time` drops it and two metrics' series would collide).
SERIES = 'count(last_over_time({{__name__=~".+"}}[{range}s]))'
START_TIMEOUT = 120.0


def take_snapshot(url: str, data_dir: Path) -> Path:
    """Ask Prometheus for a snapshot; the directory it wrote (as this host sees it)."""
    try:
        reply = httpx.post(url.rstrip("/") + SNAPSHOT, timeout=600)
    except httpx.HTTPError as exc:
        raise OperationError(f"backup: Prometheus at {url}: snapshot request failed: {exc}") from None
    try:
        body = reply.json()
    except ValueError:
        body = {}
    if reply.status_code != 200 or body.get("status") != "success":
        reason = body.get("error") or f"HTTP {reply.status_code}"
        hint = " (start Prometheus with --web.enable-admin-api)" if "disabled" in str(reason) else ""
        raise OperationError(f"backup: Prometheus at {url}: snapshot refused: {reason}{hint}")
    snapshot = data_dir / "snapshots" / str(body["data"]["name"])
    if not snapshot.is_dir():
        raise OperationError(
            f"backup: Prometheus wrote snapshot {body['data']['name']}, but {snapshot} is not there "
            "(is `path` its --storage.tsdb.path as this host sees it?)"
        )
    return snapshot


def blocks(snapshot: Path) -> list[dict[str, Any]]:
    """Each block of a snapshot from its meta.json: id, time range (ms), series and samples."""
    found = []
    for meta in sorted(snapshot.glob("*/meta.json")):
        data = json.loads(meta.read_text())
        stats = data.get("stats", {})
        found.append(
            {
                "ulid": data["ulid"],
                "min_time": int(data["minTime"]),
                "max_time": int(data["maxTime"]),
                "series": int(stats.get("numSeries", 0)),
                "samples": int(stats.get("numSamples", 0)),
            }
        )
    return found


def window(found: list[dict[str, Any]]) -> tuple[float, int] | None:
    """(evaluation time in seconds, range in seconds) covering every block; None when empty.
    A block's maxTime is exclusive, and a range selector is open on the left."""
    if not found:
        return None
    end_ms = max(b["max_time"] for b in found) - 1
    start_ms = min(b["min_time"] for b in found)
    return end_ms / 1000, math.ceil((end_ms - start_ms) / 1000) + 1


def instant(url: str, query: str, at: float) -> list[dict[str, Any]]:
    try:
        reply = httpx.get(url.rstrip("/") + "/api/v1/query", params={"query": query, "time": at}, timeout=300)
        body = reply.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise OperationError(f"Prometheus at {url}: query {query!r} failed: {exc}") from None
    if body.get("status") != "success":
        raise OperationError(f"Prometheus at {url}: query {query!r}: {body.get('error', reply.status_code)}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def over_window(url: str, query: str, expected: dict[str, Any]) -> list[dict[str, Any]]:
    """`query` at the snapshot's newest sample, else as a range query over its time range (the
    backup's data may be old; the steps of a long range can miss recent short-lived series)."""
    end = expected.get("at", time.time())
    newest = instant(url, query, end)
    if newest:
        return newest
    seconds = expected.get("range", 300)
    step = max(15, math.ceil(seconds / 10_000))
    params = {"query": query, "start": end - seconds, "end": end, "step": step}
    try:
        body = httpx.get(url.rstrip("/") + "/api/v1/query_range", params=params, timeout=300).json()
    except (httpx.HTTPError, ValueError) as exc:
        raise OperationError(f"Prometheus at {url}: query {query!r} failed: {exc}") from None
    if body.get("status") != "success":
        raise OperationError(f"Prometheus at {url}: query {query!r}: {body.get('error')}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def series(url: str, at: float, seconds: int) -> int:
    """How many series have samples in the `seconds` before `at`."""
    result = instant(url, SERIES.format(range=seconds), at)
    return int(float(result[0]["value"][1])) if result else 0


def facts(url: str, snapshot: Path) -> dict[str, Any]:
    """What a restore is checked against: the blocks, and series and samples in their window."""
    found = blocks(snapshot)
    span = window(found)
    out: dict[str, Any] = {"blocks": found, "series": 0, "samples": 0}
    if span is not None:
        at, seconds = span
        out |= {
            "at": at,
            "range": seconds,
            "series": series(url, at, seconds),
            "samples": sum(b["samples"] for b in found),
        }
    return out


def remove_snapshot(snapshot: Path) -> str | None:
    """Remove the snapshot directory; why not, when it could not be removed."""
    try:
        shutil.rmtree(snapshot)
    except OSError as exc:
        return f"{snapshot}: {exc.strerror or exc}"
    return None


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def opened(binary: str, data: Path, scratch: Path) -> Iterator[str]:
    """A Prometheus serving `data` (nothing scraped, no retention deleting old blocks) on a
    loopback port; its URL. A port taken between the pick and the bind is picked again."""
    config = scratch / "prometheus.yml"
    config.write_text("global: {}\n")
    log_path = scratch / "prometheus.log"
    for _ in range(5):
        port = _port()
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={data}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        with log_path.open("wb") as log:
            try:
                proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
            except FileNotFoundError:
                raise OperationError(
                    f"restore-test: Prometheus binary {binary!r} not found (install the Debian package "
                    "'prometheus', or set [backup].prometheus)"
                ) from None
        url = f"http://127.0.0.1:{port}"
        try:
            if _ready(proc, url):
                yield url
                return
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        text = log_path.read_text(errors="replace")
        if "address already in use" not in text:
            last = [line for line in text.splitlines() if line.strip()][-1:] or [f"exit {proc.returncode}"]
            raise OperationError(f"restore-test: Prometheus did not open the restored TSDB: {last[0]}")
    raise OperationError("restore-test: no free loopback port for Prometheus after 5 tries")


def _ready(proc: subprocess.Popen[bytes], url: str) -> bool:
    """True once Prometheus answers /-/ready; False when it exits first."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/-/ready", timeout=2).status_code == 200:
                return True
        time.sleep(0.1)
    raise OperationError(f"restore-test: Prometheus not ready within {START_TIMEOUT:.0f}s")


def check(binary: str, restored: Path, scratch: Path, expected: dict[str, Any], query: str | None) -> str:
    """Open the restored snapshot and compare; what was checked."""
    with opened(binary, restored, scratch) as url:
        if "at" in expected:
            got = series(url, expected["at"], expected["range"])
            if got != expected["series"]:
                before = expected["series"]
                raise OperationError(
                    f"restore-test: Prometheus answers {got} series after restore, {before} before"
                )
        answered = ""
        if query:
            result = over_window(url, query, expected)
            if not result:
                raise OperationError(f"restore-test: query {query!r} has no answer after restore")
            answered = f", query answered ({len(result)} series)"
    return (
        f"Prometheus opened it: {expected['series']} series equal "
        f"({expected['samples']} samples in {len(expected['blocks'])} block(s)){answered}"
    )


def answering(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url.rstrip("/") + "/-/ready", timeout=2).status_code == 200
    return False
