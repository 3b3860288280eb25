"""The Kubernetes objects of one service: what `k8s/base/` holds, as plain dicts.

Probe paths and ports come from `[probes]` and `[ops]` (the runtime serves exactly these), the
grace period and preStop hook from `[lifecycle]` via `facts`, secrets only as references.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pilothouse.config import Config
from pilothouse.generators.deploy import egress, facts

Obj = dict[str, Any]

CHECKOV_SKIPS = {
    "CKV_K8S_43": "images are referenced by tag; pin a digest with the overlay's `images:` for production",
    "CKV_K8S_35": "the runtime reads the admin token (and declared app secrets) from environment variables; "
    "runtime secrets are mounted as files",
}
"""Checkov checks skipped on purpose, with the reason written into the generated manifest."""

TMP_VOLUME = "tmp"
VAULT_TOKEN_VOLUME = "vault-token"  # noqa: S105 - a volume name, not a credential
METRICS_COMPONENT = "metrics"
STATE_VOLUME = "state"


def meta(config: Config, name: str, **extra: Any) -> Obj:
    return {"name": name, "namespace": facts.namespace(config), "labels": facts.labels(config), **extra}


def skip_annotations(*checks: str) -> dict[str, str]:
    return {f"checkov.io/skip{i}": f"{check}={CHECKOV_SKIPS[check]}" for i, check in enumerate(checks, 1)}


def restricted_container_security(uid: int) -> Obj:
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsGroup": uid,
        "runAsNonRoot": True,
        "runAsUser": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_pod_security(uid: int) -> Obj:
    return {
        "fsGroup": uid,
        "runAsGroup": uid,
        "runAsNonRoot": True,
        "runAsUser": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def limit_annotations(config: Config) -> dict[str, str]:
    """The connection limits each port enforces (docs/core.md), shown on the workload."""
    limits = facts.connection_limits(config)
    return {f"pilothouse.dev/{port}-port-limits": text for port, text in limits.items()}


def resources(res: Any) -> Obj:
    return {
        "limits": {"cpu": res.cpu_limit or res.cpu, "memory": res.memory},
        "requests": {"cpu": res.cpu, "memory": res.memory},
    }


def _probe(path: str, period: int, failures: int, timeout: int) -> Obj:
    return {
        "failureThreshold": failures,
        "httpGet": {"path": path, "port": "ops"},
        "periodSeconds": period,
        "timeoutSeconds": timeout,
    }


def probes(config: Config) -> Obj:
    """Startup, liveness and readiness probes on the ops port paths the runtime serves."""
    p = config.probes
    timeout = math.ceil(p.check_timeout) + 1
    startup_period = 2
    return {
        "livenessProbe": _probe(p.liveness_path, 10, 3, timeout),
        # /ready waits for the slowest check: a shorter probe timeout fails a healthy pod.
        "readinessProbe": _probe(p.readiness_path, 5, 2, math.ceil(config.readiness_timeout) + 1),
        "startupProbe": _probe(
            p.startup_path,
            startup_period,
            math.ceil(facts.startup_window_seconds(config) / startup_period),
            timeout,
        ),
    }


def env_list(config: Config) -> list[Obj]:
    plain = [{"name": k, "value": v} for k, v in facts.plain_env(config, config.deploy.otlp_endpoint).items()]
    secret = [
        {"name": s.env, "valueFrom": {"secretKeyRef": {"key": s.key, "name": s.secret_name}}}
        for s in facts.secret_envs(config)
    ]
    return sorted(plain + secret, key=lambda e: str(e["name"]))


def _mounts_and_volumes(config: Config) -> tuple[list[Obj], list[Obj]]:
    mounts: list[Obj] = [
        {"mountPath": facts.CONFIG_DIR, "name": "config", "readOnly": True},
        {"mountPath": facts.state_dir(config), "name": STATE_VOLUME},
        {"mountPath": "/tmp", "name": TMP_VOLUME},  # noqa: S108 - an emptyDir, writable like the state
    ]
    volumes: list[Obj] = [
        {"configMap": {"name": f"{config.service.name}-config"}, "name": "config"},
        _state_volume(config),
        {"emptyDir": {"sizeLimit": "64Mi"}, "name": TMP_VOLUME},
    ]
    for m in facts.secret_mounts(config):
        mounts.append({"mountPath": m.mount_dir, "name": m.volume, "readOnly": True})
        volumes.append({"name": m.volume, "secret": {"defaultMode": 0o400, "secretName": m.secret_name}})
    token = facts.vault_token_file(config)
    if token is not None:
        # Vault's Kubernetes auth logs in with the pod's service-account token. The automatic
        # mount stays off (it would also hand the app the CA and namespace, and checkov's
        # CKV_K8S_38 refuses it); a projected token, rotated by the kubelet, is mounted where the
        # auth reads it: https://kubernetes.io/docs/concepts/storage/projected-volumes/#serviceaccounttoken
        mounts.append({"mountPath": str(token.parent), "name": VAULT_TOKEN_VOLUME, "readOnly": True})
        source = {"serviceAccountToken": {"expirationSeconds": 3600, "path": token.name}}
        volumes.append({"name": VAULT_TOKEN_VOLUME, "projected": {"sources": [source]}})
    return mounts, volumes


def state_claim_name(config: Config) -> str:
    return f"{config.service.name}-{STATE_VOLUME}"


def _state_volume(config: Config) -> Obj:
    """An emptyDir (as long as the pod lives) or, with `[deploy.state] persistent`, the claim."""
    if config.deploy.state.persistent:
        return {"name": STATE_VOLUME, "persistentVolumeClaim": {"claimName": state_claim_name(config)}}
    return {"emptyDir": {"sizeLimit": "256Mi"}, "name": STATE_VOLUME}


def state_claim(config: Config) -> Obj:
    """The PersistentVolumeClaim behind the state directory: ReadWriteOnce, the one replica's."""
    state = config.deploy.state
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": state.size}}}
    if state.storage_class:
        spec["storageClassName"] = state.storage_class
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": meta(config, state_claim_name(config)),
        "spec": spec,
    }


SLEEP_ACTION_SINCE = (1, 30)
"""Kubernetes runs a `sleep` preStop action itself from 1.30 (beta, on by default): the image needs
no `sleep` binary, which a minimal or distroless base does not have."""


def pre_stop(config: Config) -> Obj:
    seconds = facts.prestop_sleep_seconds(config)
    major, minor, _ = (int(p) for p in config.deploy.kubernetes_version.split("."))
    if (major, minor) >= SLEEP_ACTION_SINCE:
        return {"sleep": {"seconds": seconds}}
    return {"exec": {"command": ["sleep", str(seconds)]}}


def app_container(config: Config) -> Obj:
    mounts, _ = _mounts_and_volumes(config)
    uid = config.deploy.container.uid
    return {
        "env": env_list(config),
        "image": facts.image_ref(config),
        "imagePullPolicy": "Always",
        "lifecycle": {"preStop": pre_stop(config)},
        "name": config.service.name,
        "ports": [
            {"containerPort": config.service.port, "name": "http", "protocol": "TCP"},
            {"containerPort": config.ops.port, "name": "ops", "protocol": "TCP"},
        ],
        "resources": resources(config.deploy.resources),
        "securityContext": restricted_container_security(uid),
        "volumeMounts": mounts,
        **probes(config),
    }


def _migrations(config: Config) -> list[Obj]:
    migrations = config.deploy.migrations
    if migrations is None:
        return []
    app = app_container(config)
    return [
        {
            "command": list(migrations.command),
            "env": app["env"],
            "image": app["image"],
            "imagePullPolicy": "Always",
            "name": "migrations",
            "resources": app["resources"],
            "securityContext": app["securityContext"],
            "volumeMounts": app["volumeMounts"],
        }
    ]


def pod_template(config: Config) -> Obj:
    name = config.service.name
    _, volumes = _mounts_and_volumes(config)
    spread = [
        {
            "labelSelector": {"matchLabels": facts.labels(config)},
            "maxSkew": 1,
            "topologyKey": key,
            "whenUnsatisfiable": "ScheduleAnyway",
        }
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
    ]
    spec: Obj = {
        "automountServiceAccountToken": False,
        "containers": [app_container(config)],
        "securityContext": restricted_pod_security(config.deploy.container.uid),
        "serviceAccountName": name,
        "terminationGracePeriodSeconds": facts.grace_period_seconds(config),
        "topologySpreadConstraints": spread,
        "volumes": volumes,
    }
    init = _migrations(config)
    if init:
        spec["initContainers"] = init
    return {
        "metadata": {
            "annotations": {
                "prometheus.io/path": config.probes.metrics_path,
                "prometheus.io/port": str(config.ops.port),
                "prometheus.io/scrape": "true",
            },
            "labels": {**facts.labels(config), "app.kubernetes.io/version": config.service.version},
        },
        "spec": spec,
    }


def deployment(config: Config) -> Obj:
    name = config.service.name
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta(
            config,
            name,
            annotations={**skip_annotations("CKV_K8S_43", "CKV_K8S_35"), **limit_annotations(config)},
        ),
        "spec": {
            "replicas": config.deploy.replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": facts.labels(config)},
            "strategy": (
                {"type": "Recreate"}  # the ReadWriteOnce claim is let go before the new pod mounts it
                if config.deploy.state.persistent
                else {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}, "type": "RollingUpdate"}
            ),
            "template": pod_template(config),
        },
    }


def services(config: Config, exposed: bool) -> list[Obj]:
    name = config.service.name
    app_type = "NodePort" if exposed and config.deploy.expose == "nodeport" else "ClusterIP"
    app = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(config, name),
        "spec": {
            "ports": [{"name": "http", "port": config.service.port, "protocol": "TCP", "targetPort": "http"}],
            "selector": facts.labels(config),
            "type": app_type,
        },
    }
    metrics = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {**meta(config, f"{name}-metrics"), "labels": metrics_service_labels(config)},
        "spec": {
            "ports": [{"name": "ops", "port": config.ops.port, "protocol": "TCP", "targetPort": "ops"}],
            "selector": facts.labels(config),
            "type": "ClusterIP",
        },
    }
    return [app, metrics]


def metrics_service_labels(config: Config) -> dict[str, str]:
    """The metrics Service's labels: the selector labels plus a component, so a ServiceMonitor
    selects it and not the app Service (both carry the selector labels)."""
    return {**facts.labels(config), "app.kubernetes.io/component": METRICS_COMPONENT}


def service_monitor(config: Config) -> Obj:
    """A Prometheus Operator ServiceMonitor for the metrics Service.

    The operator names the job after the Service (`shop-metrics`, `prod-shop-metrics` under a
    name prefix) unless told otherwise; the relabeling sets `job` to `config.prometheus_job`, the
    value every generated rule and panel selects, whatever kustomize renames the Service to.
    """
    job = {"action": "replace", "replacement": config.prometheus_job, "targetLabel": "job"}
    endpoint = {"interval": "30s", "path": config.probes.metrics_path, "port": "ops", "relabelings": [job]}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": meta(config, config.service.name),
        "spec": {"endpoints": [endpoint], "selector": {"matchLabels": metrics_service_labels(config)}},
    }


def ingress(config: Config) -> Obj:
    name = config.service.name
    host = config.deploy.ingress_host(name)
    backend = {"service": {"name": name, "port": {"name": "http"}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": meta(config, name),
        "spec": {
            "ingressClassName": config.deploy.ingress_class,
            "rules": [
                {"host": host, "http": {"paths": [{"backend": backend, "path": "/", "pathType": "Prefix"}]}}
            ],
        },
    }


def autoscaling(config: Config) -> list[Obj]:
    """HPA and PDB: only when more than one replica is asked for (or a PDB is forced)."""
    deploy, name = config.deploy, config.service.name
    api, kind = facts.workload_kind(config)
    out: list[Obj] = []
    if deploy.replicas > 1:
        out.append(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": meta(config, name),
                "spec": {
                    "maxReplicas": deploy.max_replicas or deploy.replicas * 2,
                    "metrics": [
                        {
                            "resource": {
                                "name": "cpu",
                                "target": {
                                    "averageUtilization": deploy.target_cpu_utilization,
                                    "type": "Utilization",
                                },
                            },
                            "type": "Resource",
                        }
                    ],
                    "minReplicas": deploy.replicas,
                    "scaleTargetRef": {"apiVersion": api, "kind": kind, "name": name},
                },
            }
        )
    if deploy.pdb or (deploy.pdb is None and deploy.replicas > 1):
        out.append(
            {
                "apiVersion": "policy/v1",
                "kind": "PodDisruptionBudget",
                "metadata": meta(config, name),
                "spec": {"maxUnavailable": 1, "selector": {"matchLabels": facts.labels(config)}},
            }
        )
    return out


def _from_namespace(ns: str) -> Obj:
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}


def _from_service(name: str) -> Obj:
    return {"podSelector": {"matchLabels": {"app.kubernetes.io/name": name}}}


def network_policy(config: Config, exposed: bool, callers: Sequence[str]) -> Obj:
    """Who may reach this service: the ingress controller (if exposed) and its declared callers on
    the app port, the monitoring namespace on the ops port. Everything else hits the default deny.
    With `[deploy.egress] enabled`, outbound traffic is limited too (see egress.py)."""
    deploy = config.deploy
    app_from: list[Obj] = [_from_service(c) for c in sorted(callers)]
    if exposed and deploy.expose == "ingress":
        app_from.insert(0, _from_namespace(deploy.ingress_namespace))
    rules: list[Obj] = []
    if app_from or (exposed and deploy.expose == "nodeport"):
        rule: Obj = {"ports": [{"port": "http", "protocol": "TCP"}]}
        if app_from and not (exposed and deploy.expose == "nodeport"):
            rule["from"] = app_from
        rules.append(rule)
    rules.append(
        {
            "from": [_from_namespace(deploy.monitoring_namespace)],
            "ports": [{"port": "ops", "protocol": "TCP"}],
        }
    )
    spec: Obj = {
        "ingress": rules,
        "podSelector": {"matchLabels": facts.labels(config)},
        "policyTypes": ["Ingress"],
    }
    if deploy.egress.enabled:  # opt-in: only DNS and the destinations the config names
        spec["egress"] = egress.rules(config)
        spec["policyTypes"] = ["Ingress", "Egress"]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(config, config.service.name),
        "spec": spec,
    }


def service_account(config: Config) -> Obj:
    return {
        "apiVersion": "v1",
        "automountServiceAccountToken": False,
        "kind": "ServiceAccount",
        "metadata": meta(config, config.service.name),
    }


def namespace_objects(name: str, part_of: str) -> list[Obj]:
    """The namespace and its default-deny ingress policy (per namespace, not per service)."""
    labels = {"app.kubernetes.io/part-of": part_of}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"labels": labels, "name": name}},
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"labels": labels, "name": "default-deny-ingress", "namespace": name},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        },
    ]
