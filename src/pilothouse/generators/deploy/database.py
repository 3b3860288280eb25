"""`[deploy.database]`: a PostgreSQL StatefulSet the service owns, reachable only from its pods."""

from __future__ import annotations

from pilothouse.config import Config
from pilothouse.generators.deploy import facts
from pilothouse.generators.deploy.kubernetes import (
    Obj,
    meta,
    resources,
    restricted_container_security,
    restricted_pod_security,
    skip_annotations,
)

PG_UID = 10999
PGDATA_DIR = "/var/lib/postgresql/data"


def db_name(config: Config) -> str:
    return f"{config.service.name}-db"


def db_labels(config: Config) -> dict[str, str]:
    return {"app.kubernetes.io/name": db_name(config), "app.kubernetes.io/part-of": facts.namespace(config)}


def host(config: Config, prefix: str = "") -> str:
    """The in-cluster DNS name the app's database URL points at (`prefix`: an overlay's namePrefix,
    which kustomize puts before the StatefulSet's and its Service's names)."""
    name = prefix + db_name(config)
    return f"{name}-0.{name}.{facts.namespace(config)}.svc"


def objects(config: Config) -> list[Obj]:
    db = config.deploy.database
    if db is None or not db.enabled:
        return []
    name = db_name(config)
    labels = db_labels(config)
    ready = {
        "exec": {
            "command": ["pg_isready", "-h", "127.0.0.1", "-p", str(db.port), "-U", db.user, "-d", db.database]
        }
    }
    container: Obj = {
        "env": [
            {"name": "PGDATA", "value": f"{PGDATA_DIR}/pgdata"},
            {"name": "POSTGRES_DB", "value": db.database},
            {
                "name": "POSTGRES_PASSWORD",
                "valueFrom": {
                    "secretKeyRef": {"key": "password", "name": facts.secret_name(config, db.secret)}
                },
            },
            {"name": "POSTGRES_USER", "value": db.user},
        ],
        "image": db.image,
        "imagePullPolicy": "Always",
        "livenessProbe": {**ready, "failureThreshold": 6, "periodSeconds": 10, "timeoutSeconds": 5},
        "name": "postgres",
        "ports": [{"containerPort": db.port, "name": "postgres", "protocol": "TCP"}],
        "readinessProbe": {**ready, "failureThreshold": 3, "periodSeconds": 5, "timeoutSeconds": 3},
        "resources": resources(db.resources),
        "securityContext": restricted_container_security(PG_UID),
        "startupProbe": {**ready, "failureThreshold": 60, "periodSeconds": 2, "timeoutSeconds": 3},
        "volumeMounts": [
            {"mountPath": PGDATA_DIR, "name": "data"},
            {"mountPath": "/var/run/postgresql", "name": "run"},
            {"mountPath": "/tmp", "name": "tmp"},  # noqa: S108 - an emptyDir
        ],
    }
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta(
            config, name, annotations=skip_annotations("CKV_K8S_43", "CKV_K8S_35"), labels=labels
        ),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "serviceName": name,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "containers": [container],
                    "securityContext": restricted_pod_security(PG_UID),
                    "serviceAccountName": config.service.name,
                    "terminationGracePeriodSeconds": 60,
                    "volumes": [{"emptyDir": {}, "name": "run"}, {"emptyDir": {}, "name": "tmp"}],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"labels": labels, "name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": db.storage}},
                    },
                }
            ],
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(config, name, labels=labels),
        "spec": {
            "clusterIP": "None",
            "ports": [{"name": "postgres", "port": db.port, "protocol": "TCP", "targetPort": "postgres"}],
            "selector": labels,
        },
    }
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(config, name, labels=labels),
        "spec": {
            "ingress": [
                {
                    "from": [{"podSelector": {"matchLabels": facts.labels(config)}}],
                    "ports": [{"port": "postgres", "protocol": "TCP"}],
                }
            ],
            "podSelector": {"matchLabels": labels},
            "policyTypes": ["Ingress"],
        },
    }
    return [statefulset, service, policy]
