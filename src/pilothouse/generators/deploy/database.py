"""`[deploy.database]`: a PostgreSQL StatefulSet the service owns, reachable only from its pods."""

from __future__ import annotations

from pilothouse.config import Config
from pilothouse.config.deploy import DatabaseConfig
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


def objects(config: Config) -> list[Obj]:
    """The StatefulSet, its headless Service and the NetworkPolicy; none without a database."""
    db = config.deploy.database
    if db is None or not db.enabled:
        return []
    return [statefulset(config, db), service(config, db), network_policy(config)]


def _ready(db: DatabaseConfig) -> Obj:
    """The probe command: `pg_isready` against the server inside the pod."""
    return {
        "exec": {
            "command": ["pg_isready", "-h", "127.0.0.1", "-p", str(db.port), "-U", db.user, "-d", db.database]
        }
    }


def container(config: Config, db: DatabaseConfig) -> Obj:
    ready = _ready(db)
    return {
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


def statefulset(config: Config, db: DatabaseConfig) -> Obj:
    name = facts.database_name(config)
    labels = facts.database_labels(config)
    return {
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
                    "containers": [container(config, db)],
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


def service(config: Config, db: DatabaseConfig) -> Obj:
    """Headless: the StatefulSet's pod is reached by name."""
    labels = facts.database_labels(config)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(config, facts.database_name(config), labels=labels),
        "spec": {
            "clusterIP": "None",
            "ports": [{"name": "postgres", "port": db.port, "protocol": "TCP", "targetPort": "postgres"}],
            "selector": labels,
        },
    }


def network_policy(config: Config) -> Obj:
    """Only the service's own pods reach the database."""
    labels = facts.database_labels(config)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(config, facts.database_name(config), labels=labels),
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
