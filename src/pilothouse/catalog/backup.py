"""Metrics of backups and restore drills, published by every job worker from the job store."""

from pilothouse.catalog.spec import MetricSpec

BACKUP_LAST_SUCCESS = MetricSpec(
    name="pilothouse_backup_last_success_timestamp_seconds",
    type="gauge",
    help="When a target was last backed up in a complete run (manifest written); 0 if never.",
    labels=("target",),
    unit="seconds",
    multiprocess_mode="max",
)
RESTORE_TEST_FAILING = MetricSpec(
    name="pilothouse_backup_restore_test_failing",
    type="gauge",
    help="1 when the newest pilothouse.backup-restore-test run did not end ok, else 0.",
    multiprocess_mode="max",
)
RESTORE_TEST_LAST_SUCCESS = MetricSpec(
    name="pilothouse_backup_restore_test_last_success_timestamp_seconds",
    type="gauge",
    help="When a restore test last passed; 0 if never.",
    unit="seconds",
    multiprocess_mode="max",
)

SPECS = (BACKUP_LAST_SUCCESS, RESTORE_TEST_FAILING, RESTORE_TEST_LAST_SUCCESS)
