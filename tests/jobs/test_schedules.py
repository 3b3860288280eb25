"""Schedules fired by the job worker: real worker processes sharing one store fire each slot once,
a SIGKILLed lease holder is replaced, misfire and concurrency policies, the CLI listing, and a
malformed cron expression as one config line.

Every-second cron expressions (croniter's sixth field) keep the process tests short without a
fake clock; the policy tests move a schedule's stored last fire into the past instead of waiting.
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from pilothouse.config import load_config
from pilothouse.jobs.registry import load_jobs
from pilothouse.jobs.scheduler import LEASE, Scheduler
from pilothouse.jobs.store import JobStore, open_store
from pilothouse.metrics import Metrics
from tests.helpers import run_cli
from tests.jobs.conftest import WorkerProcess, jobs_config, ledger, pg_store, wait_until
from tests.jobs.test_cli import one_error

EVERY_SECOND = """
[[jobs.schedules]]
job = "tick"
cron = "* * * * * *"
misfire = "run_all"
concurrency = "allow"
"""
"""`allow`: every slot gets its own job even while the previous one is active. Under the default
`forbid` a slot whose previous run is still active is skipped and counted as missed, by design
(`test_forbid_and_replace_when_the_previous_run_is_still_queued`): a run on a SIGKILLed
replica stays running until it is found lost, and on a loaded machine a run can outlast its
second; either skipped a slot here once (`stress-ng --cpu 2`) with nothing wrong."""


def _store(backend_keys: str, tmp_path: Path, extra: str) -> tuple[Path, JobStore]:
    path = jobs_config(tmp_path, backend_keys, extra)
    return path, open_store(load_config(path))


@pytest.fixture(params=["sqlite", "postgres"])
def backend_keys(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return ""
    return pg_store(request.getfixturevalue("postgres_url"), request.getfixturevalue("pg_schema"))


def _fired_slots(store: JobStore) -> list[float]:
    return sorted(run.fire_at for run in store.schedule_runs("tick", 10_000))


def _assert_each_slot_once(store: JobStore, directory: Path) -> list[float]:
    """Consecutive one-second slots, each with its own job, each job run exactly once."""
    runs = sorted(store.schedule_runs("tick", 10_000), key=lambda r: r.fire_at)
    slots = [r.fire_at for r in runs]
    assert slots == [slots[0] + i for i in range(len(slots))], slots  # none lost, none twice
    job_ids = [r.job_id for r in runs]
    assert len(set(job_ids)) == len(job_ids)
    assert len(store.list_jobs(None, 10_000)) == len(runs)  # no job queued outside the schedule
    ran = Counter(job_id for job_id, _, _, event in ledger(directory) if event == "ran")
    finished = {r.id for r in store.list_jobs("finished", 10_000)}
    assert all(ran[job_id] == 1 for job_id in finished), ran
    assert store.schedule_states()[0].missed == 0
    return slots


def test_two_replicas_fire_each_slot_once(
    backend_keys: str, tmp_path: Path, workers: Callable[..., WorkerProcess]
) -> None:
    path, store = _store(backend_keys, tmp_path, EVERY_SECOND)
    first, second = workers(path), workers(path)
    wait_until(lambda: len(_fired_slots(store)) >= 6, 30, "six fires")
    first.signal(signal.SIGTERM)
    second.signal(signal.SIGTERM)
    assert first.wait() == 0 and second.wait() == 0
    _assert_each_slot_once(store, tmp_path)
    assert store.lease_holder(LEASE) is None  # released on a clean stop


def test_sigkilled_lease_holder_is_replaced_without_lost_or_double_runs(
    backend_keys: str, tmp_path: Path, workers: Callable[..., WorkerProcess]
) -> None:
    path, store = _store(backend_keys, tmp_path, EVERY_SECOND)
    doomed = workers(path)
    wait_until(lambda: len(_fired_slots(store)) >= 2, 30, "the first replica to fire")
    holder = store.lease_holder(LEASE)
    assert holder is not None and f"-{doomed.proc.pid}-" in holder
    rescuer = workers(path)
    wait_until(lambda: any(f"-{rescuer.proc.pid}-" in w.id for w in store.workers()), 30, "second replica")
    assert store.lease_holder(LEASE) == holder  # the live holder keeps it
    doomed.signal(signal.SIGKILL)
    doomed.wait()
    killed_at = store.now()
    wait_until(
        lambda: sum(f"-{rescuer.proc.pid}-" in r.fired_by for r in store.schedule_runs("tick", 10_000)) >= 3,
        30,
        "the second replica to take the lease and fire",
    )
    rescuer.signal(signal.SIGTERM)
    assert rescuer.wait() == 0
    slots = _assert_each_slot_once(store, tmp_path)
    # the slots of the lease's last second were caught up by the rescuer (misfire run_all)
    runs = store.schedule_runs("tick", 10_000)
    by_rescuer = [r.fire_at for r in runs if f"-{rescuer.proc.pid}-" in r.fired_by]
    assert min(by_rescuer) <= killed_at + 1 and max(slots) >= killed_at


def _policy_store(tmp_path: Path, schedule: str) -> tuple[JobStore, Scheduler]:
    path = jobs_config(tmp_path, "", schedule)
    config = load_config(path)
    assert config.jobs is not None
    store = open_store(config)
    scheduler = Scheduler(store, load_jobs(config), config.jobs, Metrics(), "test-owner")
    return store, scheduler


def _rewind(store: JobStore, hours: float) -> None:
    """As if the service had been down `hours` (a test clock): the stored schedule times move back."""
    import sqlite3

    shift = hours * 3600
    with sqlite3.connect(Path(store.description)) as conn:
        conn.execute(
            "UPDATE job_schedules SET last_fire = last_fire - ?, created_at = created_at - ?", (shift, shift)
        )
        conn.execute("UPDATE job_schedule_runs SET fire_at = fire_at - ?", (shift,))


HOURLY = """
[[jobs.schedules]]
job = "slow"
cron = "0 * * * *"
params = {{ seconds = 0.01 }}
misfire = "{misfire}"
misfire_grace = "6h"
concurrency = "{concurrency}"
"""


@pytest.mark.parametrize(
    ("misfire", "queued", "missed"),
    [("run_once", 1, 4), ("run_all", 5, 0), ("skip", 0, 5)],
)
def test_misfire_policy_after_downtime(tmp_path: Path, misfire: str, queued: int, missed: int) -> None:
    store, scheduler = _policy_store(tmp_path, HOURLY.format(misfire=misfire, concurrency="allow"))
    assert scheduler.tick() == []  # first sight: nothing is back-filled
    _rewind(store, 5)  # five hourly slots passed while nobody ran
    scheduler.tick()
    assert store.counts()["queued"] == queued
    assert store.schedule_states()[0].missed == missed
    assert scheduler.tick() == []  # handled once: a second tick (or a restart) queues nothing


def test_forbid_and_replace_when_the_previous_run_is_still_queued(tmp_path: Path) -> None:
    store, scheduler = _policy_store(tmp_path, HOURLY.format(misfire="run_once", concurrency="forbid"))
    scheduler.tick()
    _rewind(store, 1)
    assert [f.outcome for f in scheduler.tick()] == ["fired"]
    _rewind(store, 1)
    assert [f.outcome for f in scheduler.tick()] == ["forbidden"]  # the first run is still queued
    assert (store.counts()["queued"], store.schedule_states()[0].missed) == (1, 1)

    replace_dir = tmp_path / "replace"
    replace_dir.mkdir()
    store, scheduler = _policy_store(replace_dir, HOURLY.format(misfire="run_once", concurrency="replace"))
    scheduler.tick()
    _rewind(store, 1)
    first = scheduler.tick()[0].job_id
    _rewind(store, 1)
    second = scheduler.tick()[0].job_id
    assert first is not None and second is not None
    old, new = store.get(first), store.get(second)
    assert old is not None and new is not None
    assert (old.outcome, old.error, new.state) == ("cancelled", "replaced by a newer scheduled run", "queued")


def test_lease_is_exclusive_until_it_expires(tmp_path: Path) -> None:
    store, _ = _policy_store(tmp_path, HOURLY.format(misfire="run_once", concurrency="forbid"))
    assert store.acquire_lease("x", "a", 0.3) and store.acquire_lease("x", "a", 0.3)  # renewable
    assert not store.acquire_lease("x", "b", 0.3)
    wait_until(lambda: store.acquire_lease("x", "b", 30), 5, "the lease to expire")
    assert store.lease_holder("x") == "b"
    fired = store.fire_schedule("s", expected_last=0, slot=1, owner="a", lease="x", missed=0, job=None)
    assert fired == ("not-holder", None)  # a stale holder cannot fire


def test_schedules_cli_lists_next_fire_times(tmp_path: Path) -> None:
    path = jobs_config(
        tmp_path,
        "",
        HOURLY.format(misfire="run_once", concurrency="forbid").replace(
            'cron = "0 * * * *"', 'cron = "30 2 * * *"\ntimezone = "Asia/Kolkata"'
        ),
    )
    result = run_cli("jobs", "schedules", "--count", "2", "-c", str(path), "--format", "json")
    assert result.returncode == 0, result.stderr
    (shown,) = json.loads(result.stdout)
    first, second = shown["next"]
    assert second - first == 86400 and first % 86400 == (2 * 3600 + 30 * 60 - 5.5 * 3600) % 86400
    text = run_cli("jobs", "schedules", "-c", str(path)).stdout
    assert "T02:30:00+05:30" in text


@pytest.mark.parametrize(
    ("schedule", "fragments"),
    [
        ('job = "tick"\ncron = "61 * * * *"', ("schedules[0].cron: '61 * * * *' is invalid: not a cron",)),
        ('job = "tick"\ncron = "* * *"', ("jobs.schedules[0].cron: '* * *' is invalid",)),
        ('job = "tick"\ncron = "0 3 * * *"\ntimezone = "Mars/Olympus"', ("jobs.schedules[0].timezone",)),
        ('job = "nope"\ncron = "0 3 * * *"', ("jobs.schedules[0].job: 'nope' is invalid: unknown job",)),
        ('job = "slow"\ncron = "0 3 * * *"\nparams = { secs = 1 }', ("jobs.schedules[0].params",)),
    ],
)
def test_bad_schedule_is_one_config_line(tmp_path: Path, schedule: str, fragments: tuple[str, ...]) -> None:
    path = jobs_config(tmp_path, "", f"[[jobs.schedules]]\n{schedule}\n")
    one_error(run_cli("jobs", "schedules", "-c", str(path)), 2, str(path), *fragments)


def test_generated_runners_refuse_what_they_cannot_do(tmp_path: Path) -> None:
    path = jobs_config(tmp_path, 'scheduler = "kubernetes"', EVERY_SECOND)
    one_error(run_cli("jobs", "schedules", "-c", str(path)), 2, "has a seconds field")
