"""Retention of finished job records: without it the store only grows.

A finished job is deleted (with its steps and its schedule-run row) when it finished more than
`max_age` ago or is not among the newest `keep` finished jobs. Never deleted: queued and running
jobs, a schedule's last job (its concurrency policy reads it) and each schedule's last successful
job (its "last success" metric and alert read it).
"""

# ruff: noqa: S608 - statements are built from module constants and validated identifiers only.
from __future__ import annotations

from pilothouse.jobs.store.schedules import SchedulingSql

_PROTECTED = (
    "SELECT last_job_id FROM {schedules} WHERE last_job_id IS NOT NULL"
    " UNION SELECT max(r.job_id) FROM {schedule_runs} r JOIN {jobs} j ON j.id = r.job_id"
    " WHERE j.outcome IN ('ok', 'warning') GROUP BY r.schedule"
)
_CHUNK = 500


class RetentionSql(SchedulingSql):
    def prune_finished(self, max_age: float | None, keep: int | None) -> int:
        """Delete finished jobs older than `max_age` seconds or beyond the newest `keep`; how many."""
        if max_age is None and keep is None:
            return 0
        rules, params = [], []
        if max_age is not None:
            rules.append("finished_at < {now} - ?")
            params.append(max_age)
        if keep is not None:
            newest = "SELECT id FROM {jobs} WHERE state = 'finished' ORDER BY id DESC LIMIT ?"
            rules.append(f"id NOT IN ({newest})")
            params.append(keep)
        with self._tx() as run:
            doomed = [
                int(row[0])
                for row in run(
                    f"SELECT id FROM {{jobs}} WHERE state = 'finished' AND ({' OR '.join(rules)})"
                    f" AND id NOT IN ({_PROTECTED})",
                    params,
                )
            ]
            for start in range(0, len(doomed), _CHUNK):
                chunk = doomed[start : start + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                run(f"DELETE FROM {{steps}} WHERE job_id IN ({marks})", chunk)
                run(f"DELETE FROM {{schedule_runs}} WHERE job_id IN ({marks})", chunk)
                run(f"DELETE FROM {{jobs}} WHERE id IN ({marks})", chunk)
        return len(doomed)
