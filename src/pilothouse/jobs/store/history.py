"""Questions about finished runs that metrics are published from (every worker reads the store, so
the answer does not depend on which process ran the job: a worker, `pilothouse jobs run`, a
CronJob)."""

from __future__ import annotations

from pilothouse.jobs.store.retention import RetentionSql


class HistorySql(RetentionSql):
    def step_successes(self, job: str, complete_step: str) -> dict[str, float]:
        """Per step of `job`: when it last ended ok or warning in a run whose `complete_step` also
        ended ok (a backup target counts only in a run whose manifest was written)."""
        rows = self._query(
            "SELECT s.name, max(s.finished_at) FROM {steps} s JOIN {jobs} j ON j.id = s.job_id"
            " WHERE j.name = ? AND s.outcome IN ('ok', 'warning') AND EXISTS (SELECT 1 FROM {steps} m"
            "  WHERE m.job_id = s.job_id AND m.attempt = s.attempt AND m.name = ? AND m.outcome = 'ok')"
            " GROUP BY s.name",
            (job, complete_step),
        )
        return {str(name): float(at) for name, at in rows if at is not None}

    def last_finished(self, job: str) -> tuple[str, float] | None:
        """Outcome and finish time of the newest finished run of `job`."""
        rows = self._query(
            "SELECT outcome, finished_at FROM {jobs} WHERE name = ? AND state = 'finished'"
            " ORDER BY finished_at DESC LIMIT 1",
            (job,),
        )
        return (str(rows[0][0]), float(rows[0][1])) if rows else None

    def latest_step_outcomes(self, job: str) -> dict[str, str]:
        """Per step of `job`: the outcome it ended with in its newest finished run."""
        rows = self._query(
            "SELECT s.name, s.outcome FROM {steps} s JOIN {jobs} j ON j.id = s.job_id"
            " WHERE j.name = ? AND s.finished_at IS NOT NULL ORDER BY s.finished_at, s.job_id",
            (job,),
        )
        return {str(name): str(outcome) for name, outcome in rows}
