"""How a target runs the container, read from the artifact itself: the rendered Deployment (or
Rollout) or a compose service. Nothing is re-typed from the config, so what the smoke runs is what
the cluster or the compose host would run, and a value the artifact does not give is missing here
too.

Secrets are given the way the target gets them: Kubernetes Secret objects (the filled-in
`secrets.example.yaml`) for a pod, files under `./secrets/` and variables in the environment for
compose.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pilothouse.durations import parse_duration
from pilothouse.errors import OperationError

Obj = dict[str, Any]
WORKLOADS = ("Deployment", "Rollout", "StatefulSet")


class SmokeError(OperationError):
    """The container does not run as the artifact describes; the message says what is missing."""


@dataclass(frozen=True, slots=True)
class FileMount:
    """One file the target puts into the container (a ConfigMap or Secret key, a compose secret)."""

    target: str
    content: bytes
    mode: int = 0o444
    uid: int = 0
    gid: int = 0


@dataclass(frozen=True, slots=True)
class Tmpfs:
    """A writable scratch mount (an emptyDir, a compose tmpfs). `owned`: the pod's fsGroup makes it
    writable by the app's group, which podman's `U` option reproduces."""

    target: str
    size: str | None = None
    owned: bool = False


@dataclass(frozen=True, slots=True)
class Claim:
    """A PersistentVolumeClaim's mount: the smoke gives it a fresh, empty named volume (as a new
    claim is). `owned`: the pod's fsGroup, which the kubelet applies to the volume."""

    claim: str
    target: str
    owned: bool = False


@dataclass(frozen=True, slots=True)
class Probes:
    startup: str
    readiness: str
    liveness: str
    metrics: str


@dataclass(slots=True)
class RunSpec:
    """Everything `podman run` needs, and where it came from (for messages)."""

    source: str
    env: dict[str, str]
    files: list[FileMount]
    tmpfs: list[Tmpfs]
    app_port: int
    ops_port: int
    probes: Probes
    grace_seconds: float
    user: str | None = None
    read_only: bool = False
    cap_drop: list[str] = field(default_factory=list)
    cap_add: list[str] = field(default_factory=list)
    no_new_privileges: bool = False
    volumes: list[tuple[str, str]] = field(default_factory=list)
    """(named volume, path): a compose volume; the smoke creates a fresh one."""
    claims: list[Claim] = field(default_factory=list)
    command: list[str] | None = None
    pre_stop: list[str] | None = None
    """A preStop `exec` command: it must exist in the image, or the kubelet skips the delay."""
    init: list[RunSpec] = field(default_factory=list)
    memory_bytes: int | None = None
    """The container's memory limit (`resources.limits.memory`, compose `deploy.resources`)."""
    cpus: float | None = None
    """Its CPU limit in cores (`resources.limits.cpu`)."""


# -- Kubernetes ----------------------------------------------------------------------------------


def _secret_data(secret: Obj) -> dict[str, bytes]:
    import base64

    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    data.update({k: str(v).encode() for k, v in (secret.get("stringData") or {}).items()})
    return data


def secrets_by_name(docs: list[Obj]) -> dict[str, dict[str, bytes]]:
    """Secret objects (e.g. the filled-in secrets.example.yaml) as {name: {key: value}}."""
    return {d["metadata"]["name"]: _secret_data(d) for d in docs if d and d.get("kind") == "Secret"}


def _workload(docs: list[Obj], name: str | None) -> Obj:
    kinds = WORKLOADS if name else WORKLOADS[:2]  # unnamed: the app's, not a database StatefulSet
    found = [d for d in docs if d.get("kind") in kinds and (name is None or d["metadata"]["name"] == name)]
    if len(found) != 1:
        names = ", ".join(f"{d['kind']}/{d['metadata']['name']}" for d in docs if d.get("kind") in WORKLOADS)
        raise SmokeError(
            f"expected one workload{f' named {name}' if name else ''} in the manifests; found: {names}"
        )
    return found[0]


def _key(source: str, secrets: Mapping[str, Mapping[str, bytes]], secret: str, key: str) -> bytes:
    if secret not in secrets:
        raise SmokeError(f"Secret {secret} (for {source}) was not given to the smoke")
    if key not in secrets[secret]:
        raise SmokeError(f"Secret {secret} has no key {key!r} (for {source})")
    return secrets[secret][key]


def _env(
    container: Obj, config_maps: Mapping[str, Obj], secrets: Mapping[str, Mapping[str, bytes]]
) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in container.get("envFrom") or []:
        if "configMapRef" in item:
            env.update(config_maps[item["configMapRef"]["name"]].get("data") or {})
        elif "secretRef" in item:
            name = item["secretRef"]["name"]
            if name not in secrets:
                raise SmokeError(f"envFrom: Secret {name} was not given to the smoke")
            env.update({k: v.decode() for k, v in secrets[name].items()})
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item:
            env[name] = str(item["value"])
            continue
        ref = item.get("valueFrom", {})
        if "secretKeyRef" in ref:
            r = ref["secretKeyRef"]
            env[name] = _key(f"env {name}", secrets, r["name"], r["key"]).decode()
        elif "configMapKeyRef" in ref:
            r = ref["configMapKeyRef"]
            env[name] = str(config_maps[r["name"]]["data"][r["key"]])
        else:
            raise SmokeError(f"env {name}: {sorted(ref)} cannot be reproduced outside a cluster")
    return env


def _volume_files(
    volume: Obj, mount: Obj, maps: Mapping[str, Obj], secrets: Mapping[str, Mapping[str, bytes]]
) -> list[FileMount]:
    where = f"volume {volume['name']} at {mount['mountPath']}"
    if "configMap" in volume:
        name = volume["configMap"]["name"]
        if name not in maps:
            raise SmokeError(f"{where}: ConfigMap {name} is not in the manifests")
        data = {k: str(v).encode() for k, v in (maps[name].get("data") or {}).items()}
        mode = volume["configMap"].get("defaultMode", 0o644)
    else:
        name = volume["secret"]["secretName"]
        if name not in secrets:
            raise SmokeError(f"{where}: Secret {name} was not given to the smoke")
        data = dict(secrets[name])
        mode = volume["secret"].get("defaultMode", 0o644)
    items = (volume.get("configMap") or volume.get("secret") or {}).get("items")
    paths = {i["key"]: i["path"] for i in items} if items else {k: k for k in data}
    sub = mount.get("subPath")
    if sub:
        keys = [k for k, p in paths.items() if p == sub]
        if not keys:
            raise SmokeError(f"{where}: subPath {sub!r} is not a key of {name}")
        return [FileMount(mount["mountPath"], data[keys[0]], mode)]
    return [FileMount(posixpath.join(mount["mountPath"], p), data[k], mode) for k, p in paths.items()]


SERVICE_ACCOUNT_TOKEN = b"smoke-service-account-token"
"""What the smoke puts where the kubelet would project a service-account token: no API server
issues one here, so anything that logs in with it (Vault's Kubernetes auth) is given another way
by the caller; the file being there, readable by the app's user, is what is reproduced."""


def _projected_tokens(volume: Obj, mount: Obj, sc: Obj, source: str) -> list[FileMount]:
    """A projected volume of service-account tokens: each at its `path`, mode 0600 and owned by
    the pod's runAsUser, as the kubelet writes a token when the pod sets one
    (https://kubernetes.io/docs/concepts/storage/projected-volumes/#serviceaccounttoken)."""
    files = []
    for item in volume["projected"].get("sources") or []:
        token = item.get("serviceAccountToken")
        if token is None:
            what = f"projected volume {volume['name']} ({sorted(item)})"
            raise SmokeError(f"{source}: {what} cannot be reproduced by the smoke")
        uid = int(sc.get("runAsUser", 0))
        target = posixpath.join(mount["mountPath"], token["path"])
        files.append(FileMount(target, SERVICE_ACCOUNT_TOKEN, 0o600, uid, int(sc.get("runAsGroup", uid))))
    return files


def _with_fs_group(file: FileMount, fs_group: int | None) -> FileMount:
    """The kubelet gives a read-only volume's files to the pod's fsGroup, group-readable."""
    if fs_group is None:
        return file
    return FileMount(file.target, file.content, file.mode | 0o440, 0, int(fs_group))


def _http_path(probe: Obj | None, fallback: str) -> str:
    return str(((probe or {}).get("httpGet") or {}).get("path", fallback))


def from_workload(
    docs: list[Obj], secrets: Mapping[str, Mapping[str, bytes]], name: str | None = None
) -> RunSpec:
    """The first container of the workload as the rendered manifests describe it, with its pod's
    init containers (run to completion first, as the kubelet does)."""
    workload = _workload(docs, name)
    pod = workload["spec"]["template"]["spec"]
    source = f"{workload['kind']} {workload['metadata']['name']}"
    spec = _container(docs, workload, pod["containers"][0], secrets, source)
    spec.init = [
        _container(docs, workload, c, secrets, f"{source} init container {c['name']}")
        for c in pod.get("initContainers") or []
    ]
    return spec


def _container(
    docs: list[Obj], workload: Obj, container: Obj, secrets: Mapping[str, Mapping[str, bytes]], source: str
) -> RunSpec:
    template = workload["spec"]["template"]
    pod = template["spec"]
    init = source.endswith(f"init container {container['name']}")
    maps = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "ConfigMap"}
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    pod_sc = pod.get("securityContext") or {}
    sc = {**pod_sc, **(container.get("securityContext") or {})}
    files: list[FileMount] = []
    tmpfs: list[Tmpfs] = []
    claims: list[Claim] = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None:
            raise SmokeError(f"{source}: volumeMount {mount['name']} has no volume")
        if "emptyDir" in volume:
            size = (volume["emptyDir"] or {}).get("sizeLimit")
            tmpfs.append(Tmpfs(mount["mountPath"], size, owned="fsGroup" in pod_sc))
        elif "persistentVolumeClaim" in volume:
            name = volume["persistentVolumeClaim"]["claimName"]
            claimed = {d["metadata"]["name"] for d in docs if d.get("kind") == "PersistentVolumeClaim"}
            if name not in claimed:
                raise SmokeError(
                    f"{source}: volume {mount['name']} claims {name}, which is not in the manifests"
                )
            claims.append(Claim(name, mount["mountPath"], owned="fsGroup" in pod_sc))
        elif "configMap" in volume or "secret" in volume:
            files += [
                _with_fs_group(f, pod_sc.get("fsGroup")) for f in _volume_files(volume, mount, maps, secrets)
            ]
        elif "projected" in volume:
            files += _projected_tokens(volume, mount, sc, source)
        else:
            raise SmokeError(
                f"{source}: volume {mount['name']} ({sorted(volume)}) cannot be reproduced by the smoke"
            )
    ports = {p.get("name"): int(p["containerPort"]) for p in container.get("ports") or []}
    if not init and ("ops" not in ports or "http" not in ports):
        raise SmokeError(
            f"{source}: expected container ports named 'http' and 'ops', found {sorted(map(str, ports))}"
        )
    annotations = template.get("metadata", {}).get("annotations") or {}
    user = sc.get("runAsUser")
    pre_stop = ((container.get("lifecycle") or {}).get("preStop") or {}).get("exec", {}).get("command")
    limits = (container.get("resources") or {}).get("limits") or {}
    # Imported here: the CLI imports this module in images without the deploy extra (PyYAML), which
    # the generators package needs; `pilothouse serve` must start there.
    from pilothouse.generators.deploy.quantity import cpu_cores, memory_bytes

    return RunSpec(
        source=source,
        env=_env(container, maps, secrets),
        files=files,
        tmpfs=tmpfs,
        claims=claims,
        app_port=ports.get("http", 0),
        ops_port=ports.get("ops", 0),
        probes=Probes(
            startup=_http_path(container.get("startupProbe"), "/startup"),
            readiness=_http_path(container.get("readinessProbe"), "/ready"),
            liveness=_http_path(container.get("livenessProbe"), "/health"),
            metrics=annotations.get("prometheus.io/path", "/metrics"),
        ),
        grace_seconds=float(pod.get("terminationGracePeriodSeconds", 30)),
        user=None if user is None else f"{user}:{sc.get('runAsGroup', user)}",
        read_only=bool(sc.get("readOnlyRootFilesystem")),
        cap_drop=list((sc.get("capabilities") or {}).get("drop") or []),
        cap_add=list((sc.get("capabilities") or {}).get("add") or []),
        no_new_privileges=sc.get("allowPrivilegeEscalation") is False,
        command=[*(container.get("command") or []), *(container.get("args") or [])] or None,
        pre_stop=list(pre_stop) if pre_stop else None,
        memory_bytes=memory_bytes(str(limits["memory"])) if "memory" in limits else None,
        cpus=cpu_cores(str(limits["cpu"])) if "cpu" in limits else None,
    )


# -- Compose -------------------------------------------------------------------------------------

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(text: str, variables: Mapping[str, str], where: str) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR:?error}` against `variables`."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        value = variables.get(name)
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise SmokeError(f"{where}: environment variable {name} is not set ({arg})")
        if op in (":-", "-") and (value is None or (op == ":-" and value == "")):
            return arg
        return value or ""

    return _INTERPOLATION.sub(replace, text)


def from_compose(
    document: Obj,
    service: str,
    compose_dir: Path,
    variables: Mapping[str, str],
    ports: tuple[int, int],
    probes: Probes,
) -> RunSpec:
    """A compose service as compose would run it. Compose does not name the ops port or the probe
    paths, so `ports` (app, ops) and `probes` come from the service's config."""
    svc = document["services"].get(service)
    if svc is None:
        raise SmokeError(f"compose: no service {service!r} (found {', '.join(document['services'])})")
    source = f"compose service {service}"
    raw_env = svc.get("environment") or {}
    if isinstance(raw_env, list):
        raw_env = dict(item.split("=", 1) for item in raw_env)
    env = {k: interpolate(str(v), variables, source) for k, v in raw_env.items()}
    files: list[FileMount] = []
    top = document.get("secrets") or {}
    for item in svc.get("secrets") or []:
        entry = {"source": item} if isinstance(item, str) else item
        name = entry["source"]
        path = compose_dir / top[name]["file"]
        if not path.is_file():
            raise SmokeError(f"{source}: secret {name} reads {path}, which does not exist")
        target = entry.get("target", f"/run/secrets/{name}")
        uid, gid = int(entry.get("uid", 0)), int(entry.get("gid", 0))
        files.append(FileMount(target, path.read_bytes(), int(entry.get("mode", 0o444)), uid, gid))
    tmpfs_items = svc.get("tmpfs") or []
    tmpfs = [Tmpfs(t) for t in ([tmpfs_items] if isinstance(tmpfs_items, str) else tmpfs_items)]
    volumes: list[tuple[str, str]] = []
    for item in svc.get("volumes") or []:
        parts = str(item).split(":")
        if parts[0].startswith((".", "/")):
            host = (compose_dir / parts[0]).resolve()
            files.append(FileMount(parts[1], host.read_bytes(), 0o444))
        else:
            volumes.append((parts[0], parts[1]))
    security = svc.get("security_opt") or []
    limits = ((svc.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    return RunSpec(
        source=source,
        env=env,
        files=files,
        tmpfs=tmpfs,
        app_port=ports[0],
        ops_port=ports[1],
        probes=probes,
        grace_seconds=parse_duration(svc.get("stop_grace_period", "10s")),
        user=svc.get("user"),
        read_only=bool(svc.get("read_only")),
        cap_drop=list(svc.get("cap_drop") or []),
        cap_add=list(svc.get("cap_add") or []),
        no_new_privileges=any(
            s.startswith("no-new-privileges") and not s.endswith("false") for s in security
        ),
        volumes=volumes,
        command=svc.get("command"),
        memory_bytes=_compose_bytes(limits["memory"]) if "memory" in limits else None,
        cpus=float(limits["cpus"]) if "cpus" in limits else None,
    )


def _compose_bytes(value: object) -> int:
    """Compose's byte values: a number of bytes or '256m'-style units (binary, as compose reads them)."""
    text = str(value).strip().lower()
    units = {"b": 1, "k": 2**10, "kb": 2**10, "m": 2**20, "mb": 2**20, "g": 2**30, "gb": 2**30}
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text)
    if match is None or match.group(2) not in {"", *units}:
        raise SmokeError(f"compose: memory limit {value!r} is not a byte value")
    return int(float(match.group(1)) * units.get(match.group(2), 1))
