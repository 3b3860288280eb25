"""The scrape config the Prometheus Operator generates for a ServiceMonitor, transcribed so a real
Prometheus can apply it to the Services `kubectl kustomize` renders.

Source: prometheus-operator `pkg/prometheus/promcfg.go`, `generateServiceMonitorConfig` (read at
commit 6adcebc5076c34f4f55f8f5f7b1e528929373ac7, August 2026), in this order:
`initRelabelings` (copy `job` to `__tmp_prometheus_job_name`); one `keep` per selector matchLabel
on `__meta_kubernetes_service_label_<k>` + `labelpresent`; a `keep` on the endpoint port name;
`node`/`pod` from the endpoint address target, `namespace`, `service`, `pod`, `container` from the
meta labels; the running-pod filter; then "By default, generate a safe job name from the service
name": `job` <- `__meta_kubernetes_service_name`, overridden by `__meta_kubernetes_service_label_
<jobLabel>` when `jobLabel` is set; `endpoint` <- the port name; and last the endpoint's own
`relabelings` (`generateRelabelConfig`). The API docs say the same of `jobLabel`: "If the value of
this field is empty or if the label doesn't exist for the given Service, the job label of the
metrics defaults to the name of the associated Kubernetes Service."

What Kubernetes service discovery (role `endpoints`) would attach to each target is built from the
rendered Services and the pod the Deployment runs; the address is the locally running service.
No cluster runs here: this module stands in for the API server, Prometheus does the relabeling.
"""

from __future__ import annotations

import re
from typing import Any

Obj = dict[str, Any]


def _sanitize(name: str) -> str:
    """promcfg.go `sanitizeLabelName`: every character outside [a-zA-Z0-9_] becomes '_'."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _user_relabeling(rule: Obj) -> Obj:
    """promcfg.go `generateRelabelConfig`: the CRD's camelCase fields as Prometheus keys."""
    keys = {
        "sourceLabels": "source_labels",
        "separator": "separator",
        "targetLabel": "target_label",
        "regex": "regex",
        "modulus": "modulus",
        "replacement": "replacement",
        "action": "action",
    }
    out = {keys[k]: v for k, v in rule.items()}
    if "action" in out:
        out["action"] = str(out["action"]).lower()
    return out


def relabel_configs(monitor: Obj, endpoint_index: int = 0) -> list[Obj]:
    spec = monitor["spec"]
    ep = spec["endpoints"][endpoint_index]
    rules: list[Obj] = [{"source_labels": ["job"], "target_label": "__tmp_prometheus_job_name"}]
    for key in sorted(spec["selector"].get("matchLabels", {})):
        value = spec["selector"]["matchLabels"][key]
        rules.append(
            {
                "action": "keep",
                "regex": f"({value});true",
                "source_labels": [
                    f"__meta_kubernetes_service_label_{_sanitize(key)}",
                    f"__meta_kubernetes_service_labelpresent_{_sanitize(key)}",
                ],
            }
        )
    assert not spec["selector"].get("matchExpressions"), "not transcribed: matchExpressions"
    rules.append(
        {"action": "keep", "source_labels": ["__meta_kubernetes_endpoint_port_name"], "regex": ep["port"]}
    )
    target = [
        "__meta_kubernetes_endpoint_address_target_kind",
        "__meta_kubernetes_endpoint_address_target_name",
    ]
    rules += [
        {
            "source_labels": target,
            "separator": ";",
            "regex": "Node;(.*)",
            "replacement": "${1}",
            "target_label": "node",
        },
        {
            "source_labels": target,
            "separator": ";",
            "regex": "Pod;(.*)",
            "replacement": "${1}",
            "target_label": "pod",
        },
        {"source_labels": ["__meta_kubernetes_namespace"], "target_label": "namespace"},
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "service"},
        {"source_labels": ["__meta_kubernetes_pod_name"], "target_label": "pod"},
        {"source_labels": ["__meta_kubernetes_pod_container_name"], "target_label": "container"},
        {"action": "drop", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "(Failed|Succeeded)"},
    ]
    for label in spec.get("targetLabels", []):
        rules.append(
            {
                "source_labels": [f"__meta_kubernetes_service_label_{_sanitize(label)}"],
                "target_label": _sanitize(label),
                "regex": "(.+)",
                "replacement": "${1}",
            }
        )
    rules.append(
        {"source_labels": ["__meta_kubernetes_service_name"], "target_label": "job", "replacement": "${1}"}
    )
    if spec.get("jobLabel"):
        rules.append(
            {
                "source_labels": [f"__meta_kubernetes_service_label_{_sanitize(spec['jobLabel'])}"],
                "target_label": "job",
                "regex": "(.+)",
                "replacement": "${1}",
            }
        )
    rules.append({"target_label": "endpoint", "replacement": ep["port"]})
    rules += [_user_relabeling(r) for r in ep.get("relabelings", [])]
    return rules


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def endpoints_targets(docs: list[Obj], addresses: dict[str, str]) -> list[Obj]:
    """What role `endpoints` discovers: one target per port of every Service that has ready pods
    (those of the rendered Deployment), with the meta labels Kubernetes SD sets. `addresses`
    maps a port name to the host:port where that port really answers here."""
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    pod = f"{deployment['metadata']['name']}-5d9c7b6f4-x2x7q"
    container = deployment["spec"]["template"]["spec"]["containers"][0]["name"]
    targets = []
    for svc in docs:
        if svc["kind"] != "Service" or not _selects(svc["spec"].get("selector", {}), pod_labels):
            continue
        meta = svc["metadata"]
        for port in svc["spec"]["ports"]:
            labels = {
                "__meta_kubernetes_namespace": meta["namespace"],
                "__meta_kubernetes_service_name": meta["name"],
                "__meta_kubernetes_endpoint_port_name": port["name"],
                "__meta_kubernetes_endpoint_address_target_kind": "Pod",
                "__meta_kubernetes_endpoint_address_target_name": pod,
                "__meta_kubernetes_pod_name": pod,
                "__meta_kubernetes_pod_container_name": container,
                "__meta_kubernetes_pod_phase": "Running",
            }
            for key, value in meta.get("labels", {}).items():
                labels[f"__meta_kubernetes_service_label_{_sanitize(key)}"] = value
                labels[f"__meta_kubernetes_service_labelpresent_{_sanitize(key)}"] = "true"
            targets.append({"targets": [addresses[port["name"]]], "labels": labels})
    return targets


def scrape_config(monitor: Obj, docs: list[Obj], addresses: dict[str, str]) -> Obj:
    """The operator's scrape job for endpoint 0 of `monitor`, with the discovered targets inlined
    (`interval` left to the global one so the test need not wait 30 s between scrapes)."""
    ep = monitor["spec"]["endpoints"][0]
    meta = monitor["metadata"]
    return {
        "job_name": f"serviceMonitor/{meta['namespace']}/{meta['name']}/0",
        "honor_labels": False,
        "metrics_path": ep.get("path", "/metrics"),
        "relabel_configs": relabel_configs(monitor),
        "static_configs": endpoints_targets(docs, addresses),
    }
