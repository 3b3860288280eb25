"""Kubernetes CronJobs for `[[jobs.schedules]]` when `[jobs].scheduler = "kubernetes"`.

Each pod is the Deployment's pod with its container running `pilothouse jobs run` instead of
`serve`: same image, config, environment, secrets, resources and security contexts (taken from
kubernetes.py, not restated). The pods carry their own `app.kubernetes.io/name`, so the app's
Service never routes requests to them. Schedule, time zone, concurrency policy and the starting
deadline come from the same `ScheduleConfig` the worker scheduler and systemd timers read.
"""

from __future__ import annotations

from typing import Any

from pilothouse.config import Config
from pilothouse.config.schedules import ScheduleConfig
from pilothouse.errors import ConfigError
from pilothouse.generators.deploy import facts
from pilothouse.generators.deploy import kubernetes as k8s

Obj = dict[str, Any]
MAX_NAME = 52  # a CronJob's name gets an 11-character suffix for its Jobs (63 is the limit)
HISTORY = 3


def name(config: Config, schedule: ScheduleConfig) -> str:
    return f"{config.service.name}-{schedule.key}"


def pod_labels(config: Config, schedule: ScheduleConfig) -> dict[str, str]:
    return {
        "app.kubernetes.io/component": "scheduled-job",
        "app.kubernetes.io/name": name(config, schedule),
        "app.kubernetes.io/part-of": facts.namespace(config),
    }


def cron_job(config: Config, schedule: ScheduleConfig, index: int) -> Obj:
    cron_name = name(config, schedule)
    if len(cron_name) > MAX_NAME:
        raise ConfigError(
            f"{config.source}: jobs.schedules[{index}]: CronJob name {cron_name!r} is longer than "
            f"{MAX_NAME} characters; set a shorter `name`"
        )
    template = k8s.pod_template(config)
    app = template["spec"]["containers"][0]
    container = {
        "command": ["pilothouse", *facts.scheduled_job_args(schedule), "--config", facts.config_path()],
        "env": app["env"],
        "image": app["image"],
        "imagePullPolicy": app["imagePullPolicy"],
        "name": "job",
        "resources": app["resources"],
        "securityContext": app["securityContext"],
        "volumeMounts": app["volumeMounts"],
    }
    keep = (
        "automountServiceAccountToken",
        "securityContext",
        "serviceAccountName",
        "terminationGracePeriodSeconds",
        "volumes",
    )
    pod_spec = {k: template["spec"][k] for k in keep} | {"containers": [container], "restartPolicy": "Never"}
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": k8s.meta(config, cron_name, annotations=k8s.skip_annotations("CKV_K8S_43", "CKV_K8S_35")),
        "spec": {
            "concurrencyPolicy": schedule.concurrency.capitalize(),
            "failedJobsHistoryLimit": HISTORY,
            "jobTemplate": {
                "spec": {
                    # a pilothouse job retries its own steps; a pod retry would rerun it whole
                    "backoffLimit": 0,
                    "template": {"metadata": {"labels": pod_labels(config, schedule)}, "spec": pod_spec},
                }
            },
            "schedule": schedule.cron,
            "startingDeadlineSeconds": int(schedule.deadline),
            "successfulJobsHistoryLimit": HISTORY,
            "suspend": False,
            "timeZone": schedule.timezone,
        },
    }


def objects(config: Config) -> list[Obj]:
    jobs = config.jobs
    if jobs is None or jobs.scheduler != "kubernetes":
        return []
    return [cron_job(config, schedule, index) for index, schedule in enumerate(jobs.schedules)]
