"""A multi-service stack: one kustomization, one namespace, only the gateway exposed.

Each service keeps its own base directory (`k8s/base/<service>/`), generated exactly as a single
service would be; NetworkPolicies let a service be reached only by the services that declare
they call it (`[deploy] calls`), and each service that declares a database gets its own.
"""

from __future__ import annotations

import posixpath

from pilothouse.config.stack import Stack, load_stack
from pilothouse.errors import ConfigError
from pilothouse.generators.deploy import container, facts, kustomize
from pilothouse.generators.deploy import kubernetes as k8s
from pilothouse.generators.yaml import dump, dump_all

__all__ = ["generate_stack", "load_stack"]


def callers(stack: Stack, name: str) -> list[str]:
    return sorted(c.service.name for c, _ in stack.services if name in c.deploy.calls)


def generate_stack(
    stack: Stack, environment: str | None = None, bundle_dir: str = "deploy"
) -> dict[str, str]:
    """The stack's files; `bundle_dir` is the bundle's path relative to the stack file's directory
    (each service's directory, beside it, is that service's image build context)."""
    configs = [c for c, _ in stack.services]
    environments = sorted({e for c in configs for e in c.deploy.environments})
    if environment is not None and environment not in environments:
        raise ConfigError(f"--env {environment}: no service of stack {stack.name!r} defines it")
    files: dict[str, str] = {
        "k8s/base/namespace.yaml": dump_all(k8s.namespace_objects(stack.namespace, stack.name)),
    }
    for config, text in stack.services:
        name = config.service.name
        objects = kustomize.service_objects(
            config, exposed=name == stack.gateway, callers=callers(stack, name)
        )
        for file, objs in objects.items():
            files[f"k8s/base/{name}/{file}"] = dump_all(objs)
        files[f"k8s/base/{name}/{facts.CONFIG_FILE}"] = text
        location = posixpath.relpath(posixpath.join(bundle_dir, "containers", name), name)
        for rel, body in container.files(config, location).items():
            files[f"containers/{name}/{rel}"] = body
        for rel, body in kustomize.service_kustomization(config, sorted(objects)).items():
            files[f"k8s/base/{name}/{rel}"] = body
    files["k8s/base/kustomization.yaml"] = dump(
        {
            "apiVersion": "kustomize.config.k8s.io/v1beta1",
            "kind": "Kustomization",
            "resources": ["namespace.yaml", *(c.service.name for c in configs)],
        }
    )
    for env in environments:
        if environment in (None, env):
            for rel, text in kustomize.overlay(configs, env, prefix=False, exposed=[stack.gateway]).items():
                files[f"k8s/{env}/{rel}"] = text
    files[f"k8s/{kustomize.SECRET_EXAMPLE}"] = kustomize.secret_example(configs)
    return dict(sorted(files.items()))
