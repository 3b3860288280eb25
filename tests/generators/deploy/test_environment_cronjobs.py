"""The CronJobs of `[[jobs.schedules]]` in every environment's overlay, as kustomize renders them:
in the environment's namespace, named with its prefix, mounting its Secrets and its ConfigMap,
with the environment's image tag, resources and env, exactly like the environment's Deployment
(a scheduled backup in prod must not read staging's database password)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.generators.deploy.test_consistency import one, rendered
from tests.generators.deploy.test_environments import CONFIG, _secret_refs
from tests.helpers import run_cli, write_config

JOBS = """
[deploy.environments.prod.env]
LOG_LEVEL = "warning"
[deploy.environments.staging.env]
FEATURE_X = "on"
[jobs]
url = { secret = "db.url" }
scheduler = "kubernetes"
[[jobs.schedules]]
job = "pilothouse.prune-jobs"
cron = "15 3 * * *"
[[jobs.schedules]]
job = "pilothouse.backup"
cron = "0 2 * * *"
[backup]
repository = "s3:https://s3.example.com/envshop-backups/db"
password = { secret = "backup.password" }
[backup.s3]
access_key_id = { secret = "backup.s3_key_id" }
secret_access_key = { secret = "backup.s3_secret" }
[[backup.targets]]
name = "db"
kind = "postgres"
url = { secret = "db.url" }
"""


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("env-cronjobs")
    prod = "[deploy.environments.prod]\nreplicas = 3\n"
    text = CONFIG.format(extra="").replace(prod, prod + 'tag = "1.4.2"\n')
    config = write_config(tmp, text + JOBS)
    result = run_cli("generate", "deploy", "--config", str(config), "--out", str(tmp / "deploy"), env={})
    assert result.returncode == 0, result.stderr
    return tmp / "deploy"


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_cronjobs_follow_their_environment(bundle: Path, env: str) -> None:
    docs = rendered(bundle, env)
    deployment = one(docs, "Deployment")
    app_pod = deployment["spec"]["template"]["spec"]
    app = app_pod["containers"][0]
    crons = [d for d in docs if d["kind"] == "CronJob"]
    assert sorted(c["metadata"]["name"] for c in crons) == [
        f"{env}-envshop-pilothouse-backup",
        f"{env}-envshop-pilothouse-prune-jobs",
    ]
    config_maps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    examples = bundle / "k8s" / env / "secrets.example.yaml"
    for cron in crons:
        assert cron["metadata"]["namespace"] == f"envshop-{env}"
        pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        for key in ("image", "env", "resources", "volumeMounts", "securityContext"):
            assert container[key] == app[key], (env, key)
        assert pod["volumes"] == app_pod["volumes"]
        refs = set(_secret_refs(pod))
        assert refs and all(r.startswith(f"{env}-") for r in refs), refs
        assert all(r in examples.read_text() for r in refs)  # the example Secrets provide them
        mounted = {v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v}
        assert mounted and mounted <= config_maps  # the environment's generated ConfigMap
    names = {e["name"]: e.get("value") for e in app["env"]}
    if env == "prod":
        assert app["image"].endswith(":1.4.2") and names["LOG_LEVEL"] == "warning"
        assert app["resources"]["limits"]["memory"] == "512Mi"
    else:
        assert names["FEATURE_X"] == "on" and names.get("LOG_LEVEL") != "warning"
