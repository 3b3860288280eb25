"""systemd timers for `[[jobs.schedules]]` when `[jobs].scheduler = "systemd"`: per schedule a
`.timer` and the oneshot `.service` it starts (`pilothouse jobs run`), sandboxed like the main unit.

The cron expression becomes `OnCalendar=` through croniter's own expansion of the fields (no
second parser): each field is a list of values or `*`. Cron runs a job when the day of month OR
the weekday matches (if both are restricted); a calendar spec ANDs them, so that case becomes
two `OnCalendar=` lines, which systemd ORs. `Persistent=true` (misfire run_once) runs a missed
slot once after downtime; `RandomizedDelaySec` spreads hosts sharing a schedule.
"""

from __future__ import annotations

from pilothouse.config import Config
from pilothouse.config.schedules import ScheduleConfig
from pilothouse.durations import format_duration
from pilothouse.errors import ConfigError
from pilothouse.generators.deploy import facts, systemd

_DAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


def _field(values: list[object], width: int = 2) -> str:
    if values == ["*"]:
        return "*"
    if not all(isinstance(v, int) for v in values):
        raise ValueError(f"cannot express {values} in a systemd calendar")
    return ",".join(f"{v:0{width}d}" for v in sorted({int(str(v)) for v in values}))


def on_calendar(schedule: ScheduleConfig) -> list[str]:
    """The `OnCalendar=` values of a 5-field cron expression, in its time zone."""
    from croniter import croniter

    minute, hour, dom, month, dow = croniter(schedule.cron).expanded
    time = f"{_field(hour)}:{_field(minute)}:00"
    weekdays = "" if dow == ["*"] else ",".join(_DAYS[int(str(d)) % 7] for d in sorted(set(dow))) + " "
    date = f"*-{_field(month)}-"
    zone = f" {schedule.timezone}"
    if dom != ["*"] and weekdays:  # cron: either matches
        return [f"*-{_field(month)}-{_field(dom)} {time}{zone}", f"{weekdays}{date}* {time}{zone}"]
    return [f"{weekdays}{date}{_field(dom)} {time}{zone}"]


def unit_base(config: Config, schedule: ScheduleConfig) -> str:
    return f"{config.service.name}-{schedule.key}"


def timer(config: Config, schedule: ScheduleConfig, index: int) -> str:
    try:
        calendars = on_calendar(schedule)
    except ValueError as exc:
        raise ConfigError(
            f"{config.source}: jobs.schedules[{index}].cron: {schedule.cron!r} is invalid for "
            f"scheduler 'systemd': {exc}"
        ) from None
    lines = "".join(f"OnCalendar={c}\n" for c in calendars)
    jitter = min(schedule.deadline / 2, 60.0)
    return f"""[Unit]
Description=Schedule {schedule.key} of {config.service.name}: job {schedule.job} at '{schedule.cron}'

[Timer]
{lines}Persistent={"false" if schedule.misfire == "skip" else "true"}
RandomizedDelaySec={format_duration(jitter)}
AccuracySec=1s
Unit={unit_base(config, schedule)}.service

[Install]
WantedBy=timers.target
"""


def files(config: Config) -> dict[str, str]:
    jobs = config.jobs
    if jobs is None or jobs.scheduler != "systemd":
        return {}
    out: dict[str, str] = {}
    for index, schedule in enumerate(jobs.schedules):
        base = unit_base(config, schedule)
        out[f"systemd/{base}.timer"] = timer(config, schedule, index)
        out[f"systemd/{base}.service"] = systemd.job_unit(
            config,
            f"{base}.service",
            f"{config.service.name}: job {schedule.job} (schedule {schedule.key}, pilothouse)",
            systemd.pilothouse_command(config, *facts.scheduled_job_args(schedule)),
            writable(config, schedule.job),
        )
    return out


def writable(config: Config, job: str) -> tuple[str, ...]:
    """What a built-in job writes outside the state directory: the backup its local repository
    and Prometheus's snapshots directory (it removes each snapshot it took), the report its
    directory."""
    paths: list[str] = []
    if job == "pilothouse.backup" and config.backup is not None:
        if not config.backup.remote:
            paths.append(config.backup.repository)
        paths += [f"{t.path}/snapshots" for t in config.backup.targets if t.kind == "prometheus"]
    if job == "pilothouse.report" and config.maintenance.report_dir:
        paths.append(config.maintenance.report_dir)
    return tuple(paths)
