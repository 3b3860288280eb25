"""The container image: a multi-stage Dockerfile and its ignore file.

The builder stage makes a virtualenv from what the project declares (its pyproject.toml and/or
requirements files, whose hashes pip enforces) plus Pilothouse with the extras the config implies,
from the source `[deploy.container] pilothouse` names, never a bare package name. The final stage
copies only the venv, the app and the config: no compiler, no pip, no cache, no tests or docs, and
no RUN step (so a base without a shell, such as a distroless Python, works). It runs as a fixed
non-root UID and checks its own liveness path with Python (slim images have no curl).
"""

from __future__ import annotations

from pilothouse.config import Config
from pilothouse.config.extras import pilothouse_requirement_name
from pilothouse.generators.deploy import facts

DOCKERFILE = "Dockerfile"
DOCKERIGNORE = "Dockerfile.dockerignore"
"""BuildKit reads `<Dockerfile>.dockerignore` beside a Dockerfile that is outside the context root;
buildah and podman are given it with `--ignorefile` (`pilothouse build` does)."""
VENV = "/opt/venv"
SRC = "/src"
STATE_SEED = "/state"
"""An empty directory the builder makes; the final stage copies it to the state dir owned by the
app's uid, so a new compose volume starts writable (Docker copies a mount point's owner)."""


def base_image(config: Config) -> str:
    c = config.deploy.container
    return c.base_image or f"python:{c.python}-slim-bookworm"


def healthcheck_url(config: Config) -> str:
    return f"http://127.0.0.1:{config.ops.port}{config.probes.liveness_path}"


def healthcheck_command(config: Config) -> list[str]:
    """Exit 0 when liveness answers 2xx; urlopen raises (exit 1) on errors and non-2xx."""
    timeout = max(1, round(config.probes.check_timeout + 1))
    code = f"import urllib.request; urllib.request.urlopen('{healthcheck_url(config)}', timeout={timeout})"
    return ["python", "-c", code]


def _json_list(items: list[str]) -> str:
    return "[" + ", ".join('"' + i.replace("\\", "\\\\").replace('"', '\\"') + '"' for i in items) + "]"


def pilothouse_requirement(config: Config) -> str:
    """`pilothouse[extras]` pinned to its declared source: a version, a wheel in the context, a VCS ref."""
    source = config.deploy.container.pilothouse
    name = pilothouse_requirement_name(config)
    if source.startswith("=="):
        return f"{name}{source}"
    if source.endswith(".whl"):
        return f"{name} @ file://{SRC}/{source}"
    return f"{name} @ {source}"


TOOLS = "/opt/tools"
"""The builder's own venv: the pip that installs into the app's venv from outside, and uv when a
lock is read. The final stage never copies it, so neither pip, setuptools nor uv is in the image."""
LOCKED = "/tmp/uv-locked.txt"  # noqa: S108 - in the builder stage only
"""`uv export` of the lock: pinned versions with every hash, which puts pip in hash-checking mode."""


UV_EXPORT = (
    "--frozen",
    "--no-dev",
    "--no-editable",
    "--no-emit-project",
    "--no-emit-package",
    "pilothouse",
    "--no-header",
)
"""The lock as pinned, hashed requirements: without the dev group, the project itself (installed
after, --no-deps) and Pilothouse, which comes from its declared source as without a lock (a lock
entry for a wheel from a find-links directory has no hash, and pip's hash mode is all or nothing)."""


def uv_lock(config: Config) -> str | None:
    """The project's uv.lock (relative to the build context) when the image installs from it:
    `[deploy.container] uv_lock`, or by default when the file is there beside pyproject.toml (the
    one look at the file system here: whether the lock exists decides what the image installs)."""
    c = config.deploy.container
    if c.project is None or c.uv_lock is False:
        return None
    lock = "uv.lock" if c.project == "." else f"{c.project.rstrip('/')}/uv.lock"
    if c.uv_lock or (config.source is not None and (config.source.parent / lock).is_file()):
        return lock
    return None


def _context_inputs(config: Config) -> list[str]:
    """What of the build context the builder stage reads."""
    c = config.deploy.container
    inputs = list(c.requirements)
    if c.wheelhouse:
        inputs.append(c.wheelhouse)
    if c.pilothouse.endswith(".whl") and not (c.wheelhouse and c.pilothouse.startswith(c.wheelhouse + "/")):
        inputs.append(c.pilothouse)
    if c.project:
        inputs.append(c.project)
    return inputs


def _install(config: Config) -> str:
    """One RUN (hadolint DL3059). A tools venv holds pip (and uv, with a lock); the app's venv is
    made without pip or setuptools, and pip installs into it from outside (`pip --python`): first
    the requirements files (a lock with hashes is checked by pip) and the project's uv.lock
    (exported by that uv), then Pilothouse from its declared source, then the project, whose own
    `pilothouse` dependency is already satisfied and so never looked up by bare name."""
    c = config.deploy.container
    index = f" --no-index --find-links={SRC}/{c.wheelhouse}" if c.wheelhouse else ""
    pip = f"{TOOLS}/bin/pip --python {VENV}/bin/python install --no-cache-dir{index}"
    project = None if c.project is None else SRC if c.project == "." else f"{SRC}/{c.project}"
    steps = [f"python{c.python} -m venv {TOOLS}"]
    lock = uv_lock(config)
    if lock:  # the lock, exported by uv into pinned, hashed requirements; pip checks every hash
        steps += [
            f'{TOOLS}/bin/pip install --no-cache-dir{index} "uv{c.uv}"',
            f"{TOOLS}/bin/uv export {' '.join(UV_EXPORT)} --no-cache --project {project} "
            f"--output-file {LOCKED}",
        ]
    steps.append(f"python{c.python} -m venv --without-pip {VENV}")
    if c.requirements or lock:
        files = [f"{SRC}/{r}" for r in c.requirements] + ([LOCKED] if lock else [])
        steps.append(f"{pip} " + " ".join(f"-r {f}" for f in files))
    steps.append(f'{pip} "{pilothouse_requirement(config)}"')
    if project:  # with a lock its dependencies are all installed already: the project alone
        steps.append(f"{pip} {'--no-deps ' if lock else ''}{project}")
    steps.append(f"install -d -m 0700 -o {c.uid} -g {c.uid} {STATE_SEED}")
    return "RUN " + " \\\n    && ".join(steps) + "\n"


def _copy_inputs(config: Config) -> str:
    lines = []
    for path in _context_inputs(config):
        target = SRC if path == "." else f"{SRC}/{path.rstrip('/')}"
        lines.append(f"COPY {path} {target}\n")
    return "".join(lines)


def dockerfile(config: Config, location: str = "deploy") -> str:
    c = config.deploy.container
    uid = c.uid
    name = config.service.name
    copies = "".join(f"COPY {p} {facts.APP_DIR}/{p}\n" for p in facts.app_paths(config))
    start = facts.startup_window_seconds(config)
    baked = {
        k: v
        for k, v in facts.plain_env(config).items()
        if k in {"PILOTHOUSE_CONFIG", "PYTHONPATH", facts.STATE_ENV}
    }
    env = "".join(f" \\\n    {k}={v}" for k, v in baked.items())
    return f"""# Build in the directory of pilothouse.toml (the build context):
#   pilothouse build                      (docker, podman or buildah, whichever is present)
#   docker build -f {location}/Dockerfile -t {facts.image_ref(config)} .
# --build-arg BASE_IMAGE=... pins another base (or a digest); BUILDER_IMAGE must keep Python at
# the same path as BASE_IMAGE, because the venv's interpreter link points there.

ARG BASE_IMAGE={base_image(config)}
ARG BUILDER_IMAGE=${{BASE_IMAGE}}
# checkov:skip=CKV_DOCKER_7: FROM uses an ARG whose default above is tagged (checkov cannot resolve ARGs)

FROM ${{BUILDER_IMAGE}} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    PIP_NO_CACHE_DIR=1 \\
    PIP_ROOT_USER_ACTION=ignore
{_copy_inputs(config)}{_install(config)}
FROM ${{BASE_IMAGE}}
LABEL org.opencontainers.image.title="{name}" \\
      org.opencontainers.image.version="{config.service.version}" \\
      org.opencontainers.image.source="{c.source_url}"
ENV PATH={VENV}/bin:/usr/local/bin:/usr/bin:/bin \\
    PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1{env}
COPY --from=builder {VENV} {VENV}
COPY --from=builder --chown={uid}:{uid} {STATE_SEED} {facts.state_dir(config)}
{copies}COPY {facts.CONFIG_FILE} {facts.config_path()}
WORKDIR {facts.APP_DIR}
USER {uid}:{uid}
EXPOSE {config.service.port} {config.ops.port}
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout={max(2, round(config.probes.check_timeout + 2))}s \\
    --start-period={start}s --retries=3 \\
    CMD {_json_list(healthcheck_command(config))}
CMD ["pilothouse", "serve", "--config", "{facts.config_path()}"]
"""


_NEVER = ["**/__pycache__", "**/*.pyc", "**/*.sqlite3", "**/.env", "**/secrets", "**/.git", "**/.venv*"]


def dockerignore(config: Config) -> str:
    """Only what the Dockerfile copies may enter the build context (with a `project`, its whole
    directory may: its build backend decides what goes into the wheel)."""
    c = config.deploy.container
    if c.project == ".":
        lines = ["# The project is the context; only secrets, state and caches are kept out."]
        return "\n".join([*lines, *_NEVER, "**/.cache", "**/.pytest_cache", "**/.mypy_cache"]) + "\n"
    keep = [*facts.app_paths(config), facts.CONFIG_FILE, *_context_inputs(config)]
    lines = ["# Everything is excluded, then what the Dockerfile copies is let back in.", "*"]
    lines += [f"!{p}" for p in dict.fromkeys(keep)]
    lines += _NEVER
    return "\n".join(lines) + "\n"


def files(config: Config, location: str = "deploy") -> dict[str, str]:
    """`location`: where the bundle sits relative to the build context (for the build hint)."""
    return {DOCKERFILE: dockerfile(config, location), DOCKERIGNORE: dockerignore(config)}
