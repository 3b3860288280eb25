"""`[deploy] strategy = "blue-green"`: an Argo Rollouts `Rollout` in place of the Deployment.

The new version (green) starts behind the preview Service; an AnalysisTemplate asks Prometheus
for the service's own 5xx ratio, built from the catalog's HTTP histogram, before promotion.
Promotion is manual unless `[deploy.blue_green] auto_promote = true`:
`kubectl argo rollouts promote <name>` switches the active Service, `... abort <name>` goes back.
"""

from __future__ import annotations

from pilothouse.catalog.http_server import HTTP_SERVER_REQUEST_DURATION
from pilothouse.config import Config
from pilothouse.generators.deploy import facts
from pilothouse.generators.deploy.kubernetes import Obj, deployment, meta, services
from pilothouse.generators.monitoring.promql import Matcher, rate_sum

API = "argoproj.io/v1alpha1"


def preview_name(config: Config) -> str:
    return f"{config.service.name}-preview"


def analysis_name(config: Config) -> str:
    return f"{config.service.name}-error-rate"


def error_rate_query(config: Config) -> str:
    """5xx responses / all responses of this service's pods over the analysis window."""
    bg = config.deploy.blue_green
    scope = (Matcher("namespace", facts.namespace(config)), Matcher("job", config.prometheus_job))
    errors = (*scope, Matcher("http_response_status_code", "5..", "=~"))
    spec = HTTP_SERVER_REQUEST_DURATION
    failed = rate_sum(spec, errors, bg.window, (), part="count")
    total = rate_sum(spec, scope, bg.window, (), part="count")
    return f"({failed} or vector(0)) / clamp_min({total}, 1e-9)"


def rollout(config: Config) -> Obj:
    base = deployment(config)
    spec = {k: v for k, v in base["spec"].items() if k != "strategy"}
    spec["strategy"] = {
        "blueGreen": {
            "activeService": config.service.name,
            "autoPromotionEnabled": config.deploy.blue_green.auto_promote,
            "prePromotionAnalysis": {"templates": [{"templateName": analysis_name(config)}]},
            "previewService": preview_name(config),
            "scaleDownDelaySeconds": 30,
        }
    }
    return {"apiVersion": API, "kind": "Rollout", "metadata": base["metadata"], "spec": spec}


def preview_service(config: Config) -> Obj:
    app = services(config, exposed=False)[0]
    return {**app, "metadata": meta(config, preview_name(config))}


def analysis_template(config: Config) -> Obj:
    bg = config.deploy.blue_green
    return {
        "apiVersion": API,
        "kind": "AnalysisTemplate",
        "metadata": meta(config, analysis_name(config)),
        "spec": {
            "metrics": [
                {
                    "count": bg.checks,
                    "failureLimit": 0,
                    "interval": "60s",
                    "name": "error-rate",
                    "provider": {
                        "prometheus": {"address": bg.prometheus_url, "query": error_rate_query(config)}
                    },
                    "successCondition": f"result[0] <= {bg.max_error_rate}",
                }
            ]
        },
    }


def objects(config: Config) -> dict[str, list[Obj]]:
    """The files replacing `deployment.yaml` for a blue-green service."""
    return {
        "rollout.yaml": [rollout(config)],
        "rollout-preview.yaml": [preview_service(config), analysis_template(config)],
    }
