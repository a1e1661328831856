"""Render the kustomize overlays offline and answer questions about the objects they produce."""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "k8s"
DOCKER = REPO / "docker"
OVERLAYS = ("minikube", "production")
#: The production overlay with the optional KEDA component, made in the test workspace only.
KEDA_OVERLAY = "production-keda"
NAMESPACE = "mp3"
#: The image every role of the service runs (the overlays set registry and tag).
APP_IMAGE = "mp3-converter"
KUBERNETES_VERSION = "1.30.0"

Doc = dict[str, Any]


# --- files ---------------------------------------------------------------------------------------


def read_env_file(path: Path) -> dict[str, str]:
    """Parse KEY=VALUE lines as kustomize's envs and Compose's .env do (no quotes, # comments)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path}:{number}: not KEY=VALUE: {line!r}"
        assert key not in values, f"{path}:{number}: {key} is set twice"
        values[key.strip()] = value
    return values


#: What the example secrets files mark every value to replace with.
PLACEHOLDER = re.compile(r"change-me[A-Za-z0-9-]*")


def filled_in(example: str) -> str:
    """Return the example secrets with each placeholder replaced as an operator would.

    The same placeholder gets the same random value, so a password and the URL that carries it
    still agree, as they must in a real secrets file.
    """
    chosen: dict[str, str] = {}

    def choose(match: re.Match[str]) -> str:
        return chosen.setdefault(match[0], secrets.token_urlsafe(48))

    return PLACEHOLDER.sub(choose, example)


def make_workspace(target: Path) -> Path:
    """Copy k8s/ to `target`, give every overlay filled-in secrets, add the KEDA overlay."""
    root = target / "k8s"
    shutil.copytree(K8S, root, ignore=shutil.ignore_patterns("secrets.env"))
    values = filled_in((root / "secrets.env.example").read_text())
    for overlay in OVERLAYS:
        (root / "overlays" / overlay / "secrets.env").write_text(values)
    keda = root / "overlays" / KEDA_OVERLAY
    keda.mkdir()
    # What an operator does to enable the component: production plus components/keda.
    (keda / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
        f"namespace: {NAMESPACE}\nresources:\n  - ../production\n"
        "components:\n  - ../../components/keda\n"
    )
    return root


def render(kustomize: list[str], folder: Path) -> list[Doc]:
    """Return the objects `kustomize build folder` prints."""
    done = subprocess.run([*kustomize, str(folder)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(kustomize)} {folder} failed:\n{done.stderr}"
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


# --- objects -------------------------------------------------------------------------------------


def find(docs: list[Doc], kind: str, name: str | None = None) -> list[Doc]:
    """Return the objects of `kind` (named `name`, if given)."""
    return [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def one(docs: list[Doc], kind: str, name: str) -> Doc:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def generated(docs: list[Doc], kind: str, base_name: str) -> Doc:
    """Return the ConfigMap or Secret a generator made from `base_name` (name-<hash>)."""
    found = [
        d
        for d in docs
        if d["kind"] == kind and re.fullmatch(rf"{base_name}-[a-z0-9]{{10}}", d["metadata"]["name"])
    ]
    assert len(found) == 1, f"expected one generated {kind} {base_name}-<hash>, found {found}"
    return found[0]


@dataclass
class Workload:
    """A pod template and the object that owns it."""

    kind: str
    name: str
    obj: Doc
    pod: Doc

    @property
    def spec(self) -> Doc:
        return self.pod["spec"]

    @property
    def labels(self) -> dict[str, str]:
        return self.pod["metadata"].get("labels", {})

    @property
    def containers(self) -> list[Doc]:
        return self.spec.get("initContainers", []) + self.spec["containers"]

    @property
    def runs_to_completion(self) -> bool:
        return self.kind in {"CronJob", "Job"}


def workloads(docs: list[Doc]) -> list[Workload]:
    """Return every pod template in the documents."""
    found = []
    for d in docs:
        if d["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            found.append(Workload(d["kind"], d["metadata"]["name"], d, d["spec"]["template"]))
        elif d["kind"] == "CronJob":
            pod = d["spec"]["jobTemplate"]["spec"]["template"]
            found.append(Workload(d["kind"], d["metadata"]["name"], d, pod))
    return found


def workload(docs: list[Doc], name: str) -> Workload:
    [found] = [w for w in workloads(docs) if w.name == name]
    return found


def image_repository(image: str) -> str:
    """Return `image` without its tag or digest."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name.rsplit(":", 1)[0] if ":" in last else name


def is_app(container: Doc) -> bool:
    return image_repository(container["image"]).rsplit("/", 1)[-1] == APP_IMAGE


def decoded(secret: Doc) -> dict[str, str]:
    values = {k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()}
    values.update(secret.get("stringData", {}))
    return values


def environment(container: Doc, docs: list[Doc]) -> dict[str, str]:
    """Return the environment Kubernetes gives the container (later entries win, as there)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            data = one(docs, "ConfigMap", source["configMapRef"]["name"]).get("data", {})
        else:
            data = decoded(one(docs, "Secret", source["secretRef"]["name"]))
        env.update({prefix + k: v for k, v in data.items()})
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        ref = var.get("valueFrom", {})
        if "secretKeyRef" in ref:
            data = decoded(one(docs, "Secret", ref["secretKeyRef"]["name"]))
            env[var["name"]] = data[ref["secretKeyRef"]["key"]]
        elif "configMapKeyRef" in ref:
            data = one(docs, "ConfigMap", ref["configMapKeyRef"]["name"])["data"]
            env[var["name"]] = data[ref["configMapKeyRef"]["key"]]
        else:
            env[var["name"]] = ""  # fieldRef / resourceFieldRef: set at run time
    return env


# --- sizes and durations -------------------------------------------------------------------------

_NGINX_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_K8S_UNITS = {
    "": 1,
    "Ki": 1024,
    "Mi": 1024**2,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "k": 1000,
    "M": 1000**2,
    "G": 1000**3,
    "T": 1000**4,
}


def nginx_size(value: str) -> int:
    """Return the bytes of an nginx size such as `2048m` (k, m, g are powers of 1024)."""
    match = re.fullmatch(r"(\d+)([kKmMgG]?)", value.strip())
    assert match, f"not an nginx size: {value!r}"
    return int(match[1]) * _NGINX_UNITS[match[2].lower()]


def quantity(value: str | int) -> int:
    """Return the bytes of a Kubernetes quantity such as `6Gi` or `512M`."""
    match = re.fullmatch(r"(\d+)([KMGT]i|[kMGT])?", str(value))
    assert match, f"not a byte quantity: {value!r}"
    return int(match[1]) * _K8S_UNITS[match[2] or ""]


# --- Ingress -------------------------------------------------------------------------------------


def ingress_route(ingress: Doc, host: str, path: str) -> tuple[str, object] | None:
    """Return (service, port) that the Ingress sends `path` on `host` to, by the API's rules.

    Exact paths match the whole path; Prefix paths match whole `/`-separated elements; the
    longest match wins, and Exact wins a tie (networking.k8s.io/v1 HTTPIngressPath).
    """
    best: tuple[int, int, Doc] | None = None
    elements = [e for e in path.split("/") if e]
    for rule in ingress["spec"]["rules"]:
        if rule.get("host", host) != host:
            continue
        for item in rule["http"]["paths"]:
            kind, want = item["pathType"], item["path"]
            assert kind in {"Exact", "Prefix"}, f"{want}: pathType {kind} has no defined meaning"
            if kind == "Exact":
                matched = path == want
            else:
                prefix = [e for e in want.split("/") if e]
                matched = elements[: len(prefix)] == prefix
            if matched:
                score = (len(want.rstrip("/")), kind == "Exact")
                if best is None or score > best[:2]:
                    best = (*score, item)
    if best is None:
        return None
    service = best[2]["backend"]["service"]
    port = service["port"].get("name") or service["port"].get("number")
    return service["name"], port


# --- NetworkPolicy -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Peer:
    """One end of a connection: a pod (namespace and labels) or an address outside the cluster."""

    name: str
    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    ip: str | None = None


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Return whether a label selector selects `labels` (an empty selector selects all)."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        present = key in labels
        if not {
            "In": present and labels.get(key) in values,
            "NotIn": not present or labels[key] not in values,
            "Exists": present,
            "DoesNotExist": not present,
        }[op]:
            return False
    return True


def _peer_matches(rule_peer: Doc, peer: Peer, policy_namespace: str) -> bool:
    if "ipBlock" in rule_peer:
        # ipBlock is meant for addresses outside the cluster; pods are matched by selectors.
        if peer.ip is None:
            return False
        address = ipaddress.ip_address(peer.ip)
        block = rule_peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(e) for e in block.get("except", [])
        )
    if peer.namespace is None:
        return False
    if "namespaceSelector" in rule_peer:
        if not selects(rule_peer["namespaceSelector"], peer.namespace_labels):
            return False
    elif peer.namespace != policy_namespace:
        return False
    return "podSelector" not in rule_peer or selects(rule_peer["podSelector"], peer.labels)


def _port_matches(ports: list[Doc] | None, port: int, protocol: str) -> bool:
    if not ports:
        return True
    for item in ports:
        wanted = item.get("port")
        assert wanted is None or isinstance(wanted, int), (
            f"named port {wanted!r} in a NetworkPolicy: use the number (the tests model numbers)"
        )
        if item.get("protocol", "TCP") != protocol:
            continue
        if wanted is None or wanted <= port <= item.get("endPort", wanted):
            return True
    return False


def _admits(
    policies: list[Doc], pod: Peer, direction: str, other: Peer, port: int, protocol: str
) -> bool:
    applicable = []
    for policy in policies:
        spec = policy["spec"]
        types = spec.get("policyTypes") or (
            ["Ingress", "Egress"] if "egress" in spec else ["Ingress"]
        )
        if (
            policy["metadata"].get("namespace") == pod.namespace
            and direction in types
            and selects(spec["podSelector"], pod.labels)
        ):
            applicable.append(policy)
    if not applicable:
        return True  # a pod no policy selects is not isolated
    key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in applicable:
        for rule in policy["spec"].get(key) or []:
            peers = rule.get(peers_key)
            namespace = policy["metadata"].get("namespace", "")
            if (not peers or any(_peer_matches(p, other, namespace) for p in peers)) and (
                _port_matches(rule.get("ports"), port, protocol)
            ):
                return True
    return False


def connection_allowed(
    policies: list[Doc], source: Peer, target: Peer, port: int, protocol: str = "TCP"
) -> bool:
    """Return whether the policies let `source` open a connection to `target` on `port`."""
    egress = source.namespace is None or _admits(policies, source, "Egress", target, port, protocol)
    ingress = target.namespace is None or _admits(
        policies, target, "Ingress", source, port, protocol
    )
    return egress and ingress


# Pods and addresses outside the namespace, as the clusters this runs on label them.
INGRESS_NGINX = Peer(
    "ingress-nginx",
    "ingress-nginx",
    {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"},
    {"kubernetes.io/metadata.name": "ingress-nginx"},
)
KUBE_DNS = Peer(
    "kube-dns",
    "kube-system",
    {"k8s-app": "kube-dns"},
    {"kubernetes.io/metadata.name": "kube-system"},
)
PROMETHEUS = Peer(
    "prometheus",
    "monitoring",
    {"app.kubernetes.io/name": "prometheus"},
    {"kubernetes.io/metadata.name": "monitoring"},
)
KEDA = Peer(
    "keda-operator", "keda", {"app": "keda-operator"}, {"kubernetes.io/metadata.name": "keda"}
)
OTHER_TENANT = Peer(
    "other",
    "other",
    {"app.kubernetes.io/name": "gateway"},
    {"kubernetes.io/metadata.name": "other"},
)
#: An address on the internet (TEST-NET-3): the SMTP relay, or anything else outside.
INTERNET = Peer("internet", ip="203.0.113.25")


def pods(docs: list[Doc]) -> dict[str, Peer]:
    """Return a Peer for each workload of the namespace, by workload name."""
    [namespace] = find(docs, "Namespace")
    ns_labels = {
        **namespace["metadata"].get("labels", {}),
        "kubernetes.io/metadata.name": namespace["metadata"]["name"],
    }
    return {
        w.name: Peer(w.name, w.obj["metadata"]["namespace"], w.labels, ns_labels)
        for w in workloads(docs)
    }


# --- source code ---------------------------------------------------------------------------------

_NAME = r"""["']([A-Z][A-Z0-9_]*)["']"""
_READS = [
    # os.environ.get("X"), os.environ["X"], env.get("X"), os.getenv("X"), environ.setdefault("X")
    re.compile(r"\benv(?:iron)?\s*(?:\.get\(|\.setdefault\(|\.pop\(|\[)\s*" + _NAME),
    re.compile(r"\bgetenv\(\s*" + _NAME),
    # helpers that take the environment and a name: _get(env, "X", ...), _url("X", env, ...)
    re.compile(r"\b\w+\(\s*(?:env|environ)\s*,\s*" + _NAME),
    re.compile(r"\b\w+\(\s*" + _NAME + r"\s*,\s*(?:env|environ)\b"),
]


def variables_read(paths: list[Path], skip: set[str] = frozenset()) -> dict[str, list[str]]:
    """Return each environment variable the Python files under `paths` read, with where.

    Files whose path relative to the repository is in `skip` are not read.
    """
    found: dict[str, list[str]] = {}
    files = [
        p for path in paths for p in ([path] if path.is_file() else sorted(path.rglob("*.py")))
    ]
    for file in files:
        if str(file.relative_to(REPO)) in skip:
            continue
        for number, line in enumerate(file.read_text().splitlines(), 1):
            for pattern in _READS:
                for name in pattern.findall(line):
                    found.setdefault(name, []).append(f"{file.relative_to(REPO)}:{number}")
    return found


def code_paths() -> list[Path]:
    """Return the code that runs in the containers (the `mp3c` client runs elsewhere)."""
    return [REPO / "app", REPO / "core", REPO / "tasks", REPO / "celeryconfig.py"]


def flower_reads(name: str) -> bool:
    """Return whether Flower takes `name` as an option (FLOWER_ + one of its option names)."""
    from flower.options import default_options

    prefix = "FLOWER_"
    return name.startswith(prefix) and name[len(prefix) :].lower() in default_options


def tool_env() -> dict[str, str]:
    """Return a clean environment for the tools: Compose would take JWT_SECRET and the like from
    this process's environment (which other tests fill) before the env file under test."""
    keep = ("PATH", "HOME", "TMPDIR", "XDG_CACHE_HOME", "MP3_TOOLS_CACHE")
    env = {k: v for k, v in os.environ.items() if k in keep or k.startswith("DOCKER_")}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    return env


def compose_config_run(
    compose: list[str], env_file: Path | str, *args: str, check: bool = False
) -> subprocess.CompletedProcess:
    """Run `compose -f docker/compose.yaml --env-file ENV config ARGS` in a clean environment."""
    argv = [*compose, "-f", str(DOCKER / "compose.yaml"), "--env-file", str(env_file), "config"]
    return subprocess.run(
        [*argv, *args], capture_output=True, text=True, check=check, env=tool_env()
    )


def go_duration(value: str) -> float:
    """Return the seconds of a Go duration as Compose prints it (`30m0s`, `1h0m0s`, `90s`)."""
    match = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", value)
    assert match and value, f"not a duration: {value!r}"
    hours, minutes, seconds = (float(g or 0) for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def git_files(*args: str) -> list[str]:
    """Return the paths `git ls-files ARGS` prints in the repository."""
    done = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", *args], capture_output=True, text=True, check=True
    )
    return done.stdout.splitlines()
