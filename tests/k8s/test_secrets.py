"""No secret value is in the repository: Secrets come from uncommitted env files."""

from __future__ import annotations

import re
import subprocess
from urllib.parse import urlsplit

import pytest
import yaml

from .manifests import DOCKER, K8S, PLACEHOLDER, REPO, git_files, read_env_file

pytestmark = pytest.mark.k8s

SECRET_NAME = re.compile(r"PASS|PASSWORD|SECRET|TOKEN|_AUTH$|_KEY$")


def _repository_files(*patterns: str) -> list[str]:
    """Files git tracks or would add (not ignored) that match the patterns."""
    return sorted(set(git_files("--cached", "--others", "--exclude-standard", *patterns)))


def _ignored(path: str) -> bool:
    done = subprocess.run(
        ["git", "-C", str(REPO), "check-ignore", "-q", "--no-index", path], check=False
    )
    return done.returncode == 0


def test_no_secret_object_with_values_is_in_the_repository() -> None:
    found = []
    for path in _repository_files("*.yaml", "*.yml"):
        try:
            docs = list(yaml.safe_load_all((REPO / path).read_text()))
        except yaml.YAMLError:
            continue  # not Kubernetes YAML (e.g. templated); nothing to check
        for doc in docs:
            if (
                isinstance(doc, dict)
                and doc.get("kind") == "Secret"
                and (doc.get("data") or doc.get("stringData"))
            ):
                found.append(path)
    assert not found, f"Secrets with values are committed: {found}"


def test_secret_generators_read_only_ignored_files() -> None:
    kustomizations = [p for p in _repository_files("k8s/*") if p.endswith("kustomization.yaml")]
    sources = []
    for path in kustomizations:
        doc = yaml.safe_load((REPO / path).read_text())
        for generator in doc.get("secretGenerator", []):
            assert not generator.get("literals"), f"{path}: secret literals in the repository"
            for source in generator.get("envs", []) + generator.get("files", []):
                sources.append(str((REPO / path).parent.joinpath(source).relative_to(REPO)))
    assert sources, "no secretGenerator found: where does the Secret come from?"
    tracked = set(git_files())
    for source in [*sources, "docker/.env"]:
        assert source not in tracked, f"{source} is committed"
        assert _ignored(source), f"{source} is not git-ignored: it would be committed by mistake"


def test_the_example_secrets_hold_only_placeholders() -> None:
    for example in (K8S / "secrets.env.example", DOCKER / "secrets.env.example"):
        for key, value in read_env_file(example).items():
            password = urlsplit(value).password if "://" in value else None
            if password is not None:
                assert PLACEHOLDER.fullmatch(password), f"{example.name}: {key} has a password"
            elif SECRET_NAME.search(key):
                assert not value or PLACEHOLDER.search(value), f"{example.name}: {key} is set"


def test_no_secret_goes_into_the_configmap() -> None:
    for config in (K8S / "base" / "config.env", DOCKER / "config.env"):
        for key, value in read_env_file(config).items():
            assert not SECRET_NAME.search(key), f"{config}: {key} belongs in the Secret"
            assert "://" not in value or not urlsplit(value).password, f"{config}: {key}"
