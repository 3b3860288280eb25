"""Backing up and restoring each kind of target, with the integrity facts the manifest records.

PostgreSQL is dumped inside one REPEATABLE READ transaction whose snapshot `pg_dump --snapshot`
shares, so the row counts and content checksums recorded beside the dump describe exactly the
dumped data. The dump streams from pg_dump through this process (sha256 and size on the way)
into `restic backup --stdin`: no temporary file holds the data.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from pilothouse.backup.restic import Restic
from pilothouse.errors import OperationError
from pilothouse.jobs.context import Cancelled

CHUNK = 1 << 20
Entry = dict[str, Any]


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A conninfo without the password, and the password in PGPASSWORD (never on a command line)."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    info = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    password = info.pop("password", None)
    return make_conninfo(**info), ({"PGPASSWORD": password} if password else {})


def table_sums(url: str, schema: str | None = None, conn: Any = None) -> dict[str, dict[str, Any]]:
    """Row count and an order-independent md5 of the contents of every table (or `schema`'s)."""
    import psycopg

    own = conn is None
    conn = conn or psycopg.connect(url, autocommit=True)
    try:
        where = "table_schema = %s" if schema else "table_schema NOT IN ('pg_catalog', 'information_schema')"
        tables = conn.execute(
            f"SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"  # noqa: S608
            f" AND {where} ORDER BY 1, 2",
            (schema,) if schema else (),
        ).fetchall()
        sums = {}
        for table_schema, table in tables:
            quoted = f'"{table_schema}"."{table}"'
            rows, digest = conn.execute(
                f"SELECT count(*), coalesce(md5(string_agg(md5(t::text), ',' ORDER BY md5(t::text))), '')"  # noqa: S608
                f" FROM {quoted} t"
            ).fetchone()
            sums[f"{table_schema}.{table}"] = {"rows": int(rows), "md5": str(digest)}
        return sums
    finally:
        if own:
            conn.close()


def _summary(out: IO[bytes]) -> dict[str, Any]:
    out.seek(0)
    for line in reversed(out.read().decode(errors="replace").splitlines()):
        if '"message_type":"summary"' in line.replace(" ", ""):
            found: dict[str, Any] = json.loads(line)
            return found
    raise OperationError("backup: restic backup printed no summary")


def stream(
    restic: Restic,
    producer: list[str],
    env: dict[str, str],
    filename: str,
    tags: str,
    cancelled: Callable[[], bool],
) -> Entry:
    """`producer | restic backup --stdin`, hashing on the way; a cancel ends both (no snapshot)."""
    started = time.monotonic()
    with (
        tempfile.TemporaryFile() as p_err,
        tempfile.TemporaryFile() as r_out,
        tempfile.TemporaryFile() as r_err,
    ):
        try:
            source = subprocess.Popen(
                producer,
                stdout=subprocess.PIPE,
                stderr=p_err,
                env={**os.environ, **env},
                start_new_session=True,
            )
        except FileNotFoundError:
            raise OperationError(f"backup: {producer[0]} not found") from None
        try:
            sink = subprocess.Popen(
                restic.argv("backup", "--stdin", "--stdin-filename", filename, "--tag", tags, "--json"),
                env=restic.env,
                stdin=subprocess.PIPE,
                stdout=r_out,
                stderr=r_err,
                start_new_session=True,
            )
        except FileNotFoundError:
            source.kill()
            raise restic.missing() from None
        sha, size = hashlib.sha256(), 0
        assert source.stdout is not None and sink.stdin is not None
        try:
            while chunk := source.stdout.read(CHUNK):
                if cancelled():
                    raise Cancelled("cancelled during the backup")
                sha.update(chunk)
                size += len(chunk)
                sink.stdin.write(chunk)
            if source.wait() != 0:
                p_err.seek(0)
                raise OperationError(
                    f"backup: {producer[0]} failed: "
                    f"{p_err.read().decode(errors='replace').strip().splitlines()[-1:]}"
                )
            sink.stdin.close()
            if sink.wait() != 0:
                r_err.seek(0)
                raise restic.failure("backup", sink.returncode, r_err.read())
        except BaseException:
            for proc in (source, sink):  # restic writes a snapshot only after a complete stream
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            raise
        summary = _summary(r_out)
    return {
        "snapshot": summary["snapshot_id"],
        "bytes": size,
        "sha256": sha.hexdigest(),
        "seconds": round(time.monotonic() - started, 3),
    }


def backup_postgres(
    restic: Restic, name: str, url: str, tags: str, cancelled: Callable[[], bool], schema: str | None = None
) -> Entry:
    import psycopg

    conninfo, env = _libpq(url)
    with psycopg.connect(url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]  # type: ignore[index]
        tables = table_sums(url, schema, conn)
        argv = [
            "pg_dump",
            "--format=custom",
            f"--snapshot={snapshot}",
            "--no-owner",
            *(["--schema", schema] if schema else []),
            "--dbname",
            conninfo,
        ]
        entry = stream(restic, argv, env, f"{name}.dump", tags, cancelled)
    return {**entry, "tables": tables}


def restore_postgres(restic: Restic, entry: Entry, name: str, url: str) -> None:
    """`restic dump | pg_restore --clean` into the database `url` names."""
    conninfo, env = _libpq(url)
    with tempfile.TemporaryFile() as err:
        dump = restic.popen("dump", entry["snapshot"], f"/{name}.dump")
        restore = subprocess.Popen(
            ["pg_restore", "--no-owner", "--clean", "--if-exists", "--exit-on-error", "--dbname", conninfo],
            stdin=dump.stdout,
            stderr=err,
            env={**os.environ, **env},
        )
        assert dump.stdout is not None
        dump.stdout.close()
        code = restore.wait()
        dump.wait()
        if dump.returncode != 0:
            raise restic.failure("dump", dump.returncode, dump.stderr.read() if dump.stderr else b"")
        if code != 0:
            err.seek(0)
            raise OperationError(f"restore: pg_restore failed: {err.read().decode(errors='replace').strip()}")


def tree_digest(*roots: Path) -> str:
    """sha256 over (relative path, content sha256) of every file under `roots`, in order."""
    sha = hashlib.sha256()
    for root in roots:
        files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
        for path in files:
            sha.update(f"{path.relative_to(root.parent if root.is_file() else root)}\0".encode())
            sha.update(hashlib.sha256(path.read_bytes()).digest())
    return sha.hexdigest()


def restic_backup(
    restic: Restic, args: list[str], tags: str, cancelled: Callable[[], bool], partial_ok: bool = False
) -> dict[str, Any]:
    """`restic backup ARGS`, ended on a cancel (restic writes no snapshot then); its summary.
    `partial_ok`: exit code 3 (a source file vanished while read, a snapshot still written) is fine."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            restic.argv("backup", *args, "--tag", tags, "--json"),
            env=restic.env,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        while proc.poll() is None:  # a cancel (drain, SIGTERM) ends restic: it writes no snapshot
            if cancelled():
                proc.kill()
                proc.wait()
                raise Cancelled("cancelled during the backup")
            time.sleep(0.1)
        if proc.returncode != 0 and not (partial_ok and proc.returncode == 3):
            err.seek(0)
            raise restic.failure("backup", proc.returncode, err.read())
        return _summary(out)


def backup_paths(restic: Restic, paths: list[Path], tags: str, cancelled: Callable[[], bool]) -> Entry:
    started = time.monotonic()
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise OperationError(f"backup: {missing[0]} does not exist")
    summary = restic_backup(restic, [str(p) for p in paths], tags, cancelled)
    return {
        "snapshot": summary["snapshot_id"],
        "bytes": int(summary.get("total_bytes_processed", 0)),
        "added": int(summary.get("data_added", 0)),
        "sha256": tree_digest(*paths),
        "paths": [str(p) for p in paths],
        "seconds": round(time.monotonic() - started, 3),
    }


def backup_logs(restic: Restic, root: Path, pattern: str, tags: str, cancelled: Callable[[], bool]) -> Entry:
    """The files of a log directory matching `pattern`, with each one's facts (see logs.py)."""
    from pilothouse.backup import logs

    started = time.monotonic()
    found = logs.files(root, pattern)
    facts = logs.before(root, found)
    with tempfile.TemporaryDirectory(prefix="pilothouse-logs-") as scratch:
        listed = logs.files_from([root / rel for rel in facts] or [root], Path(scratch) / "files")
        summary = restic_backup(restic, ["--files-from-verbatim", str(listed)], tags, cancelled, True)
    files = logs.after(root, facts)
    digest = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
    return {
        "snapshot": summary["snapshot_id"],
        "bytes": int(summary.get("total_bytes_processed", 0)),
        "added": int(summary.get("data_added", 0)),
        "sha256": digest,
        "paths": [str(root)],
        "files": files,
        "seconds": round(time.monotonic() - started, 3),
    }


def backup_prometheus(
    restic: Restic, url: str, data_dir: Path, tags: str, cancelled: Callable[[], bool]
) -> Entry:
    """A TSDB snapshot through the admin API, backed up as files, then removed (see tsdb.py)."""
    from pilothouse.backup import tsdb

    started = time.monotonic()
    snapshot = tsdb.take_snapshot(url, data_dir)
    try:
        facts = tsdb.facts(url, snapshot)
        digest = tree_digest(snapshot)
        summary = restic_backup(restic, [str(snapshot)], tags, cancelled)
    finally:
        left = tsdb.remove_snapshot(snapshot)
    entry: Entry = {
        "snapshot": summary["snapshot_id"],
        "bytes": int(summary.get("total_bytes_processed", 0)),
        "added": int(summary.get("data_added", 0)),
        "sha256": digest,
        "paths": [str(snapshot)],
        "tsdb": facts,
        "seconds": round(time.monotonic() - started, 3),
    }
    if left:
        entry["left_behind"] = left
    return entry


def restore_paths(restic: Restic, entry: Entry, into: Path) -> list[Path]:
    """Restore under `into` (absolute paths are kept below it; `/` puts them back in place)."""
    restic.run("restore", entry["snapshot"], "--target", str(into))
    return [into / p.lstrip("/") for p in entry["paths"]]


def sqlite_bytes(path: Path) -> bytes:
    """A consistent copy of a live SQLite database, in memory (the online backup API)."""
    source = sqlite3.connect(path)
    memory = sqlite3.connect(":memory:")
    try:
        source.backup(memory)
        data = bytearray(memory.serialize())
        data[18:20] = b"\x01\x01"  # rollback-journal format: the copy opens anywhere (WAL needs a file)
        return bytes(data)
    finally:
        source.close()
        memory.close()
