"""Every overlay renders, validates strictly against Kubernetes 1.30, and names only what exists."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest

from .manifests import (
    KUBERNETES_VERSION,
    NAMESPACE,
    Doc,
    find,
    generated,
    one,
    selects,
    workloads,
)

pytestmark = pytest.mark.k8s

#: Kinds without a namespace.
CLUSTER_SCOPED = {"Namespace"}
#: Custom resources that kubernetes-validate has no schema for; tests/k8s/test_keda.py checks
#: them field by field instead.
CUSTOM_API_GROUPS = ("keda.sh/",)


def test_overlay_renders_the_whole_service(docs: list[Doc]) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for expected in [
        ("Namespace", NAMESPACE),
        ("Deployment", "gateway"),
        ("Service", "gateway"),
        ("HorizontalPodAutoscaler", "gateway"),
        ("Deployment", "worker-convert"),
        ("Deployment", "worker-notify"),
        ("Deployment", "flower"),
        ("Service", "flower"),
        ("StatefulSet", "rabbitmq"),
        ("StatefulSet", "mongodb"),
        ("StatefulSet", "mysql"),
        ("Ingress", "mp3"),
        ("NetworkPolicy", "default-deny"),
        ("CronJob", "maintenance-sweep"),
    ]:
        assert expected in kinds, f"{expected} is missing from the rendered overlay"
    generated(docs, "ConfigMap", "mp3-config")
    generated(docs, "Secret", "mp3-secrets")


def test_every_object_is_in_the_namespace(docs: list[Doc]) -> None:
    wrong = [
        f"{d['kind']}/{d['metadata']['name']}: {d['metadata'].get('namespace')}"
        for d in docs
        if d["kind"] not in CLUSTER_SCOPED and d["metadata"].get("namespace") != NAMESPACE
    ]
    assert not wrong, f"objects outside the namespace {NAMESPACE}: {wrong}"


def test_every_object_validates_strictly_against_kubernetes_1_30(docs: list[Doc]) -> None:
    errors = []
    for doc in docs:
        if doc["apiVersion"].startswith(CUSTOM_API_GROUPS):
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            errors.append(f"{doc['kind']}/{doc['metadata']['name']} at {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(exc.message)
    assert not errors, "\n".join(errors)


def _check_ref(
    docs: list[Doc],
    kind: str,
    name: str,
    keys: list[str],
    where: str,
    problems: list[str],
    optional: bool = False,
) -> None:
    found = find(docs, kind, name)
    if not found:
        if not optional:
            problems.append(f"{where}: {kind} {name} does not exist")
        return
    data = set(found[0].get("data", {})) | set(found[0].get("stringData", {}))
    problems.extend(f"{where}: {kind} {name} has no key {key}" for key in keys if key not in data)


def test_every_configmap_and_secret_reference_resolves(docs: list[Doc]) -> None:
    """A dangling reference leaves the pod in CreateContainerConfigError."""
    problems: list[str] = []
    for w in workloads(docs):
        for c in w.containers:
            where = f"{w.kind}/{w.name}/{c['name']}"
            for source in c.get("envFrom", []):
                for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    if key in source:
                        _check_ref(
                            docs,
                            kind,
                            source[key]["name"],
                            [],
                            where,
                            problems,
                            source[key].get("optional", False),
                        )
            for var in c.get("env", []):
                ref = var.get("valueFrom", {})
                for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                    if key in ref:
                        _check_ref(
                            docs,
                            kind,
                            ref[key]["name"],
                            [ref[key]["key"]],
                            f"{where} env {var['name']}",
                            problems,
                            ref[key].get("optional", False),
                        )
        for volume in w.spec.get("volumes", []):
            for key, kind, name_key in (
                ("configMap", "ConfigMap", "name"),
                ("secret", "Secret", "secretName"),
            ):
                if key in volume:
                    keys = [item["key"] for item in volume[key].get("items", [])]
                    _check_ref(
                        docs,
                        kind,
                        volume[key][name_key],
                        keys,
                        f"{w.kind}/{w.name} volume {volume['name']}",
                        problems,
                        volume[key].get("optional", False),
                    )
    assert not problems, "\n".join(problems)


def _pods_selected(docs: list[Doc], selector: dict) -> list:
    return [w for w in workloads(docs) if selects(selector, w.labels)]


def test_every_service_selects_pods_that_have_its_ports(docs: list[Doc]) -> None:
    for service in find(docs, "Service"):
        name = service["metadata"]["name"]
        selected = _pods_selected(docs, {"matchLabels": service["spec"]["selector"]})
        assert len(selected) == 1, f"Service {name} selects {[w.name for w in selected]}"
        port_names = {p.get("name") for c in selected[0].containers for p in c.get("ports", [])}
        port_numbers = {
            p["containerPort"] for c in selected[0].containers for p in c.get("ports", [])
        }
        for port in service["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            assert target in port_names | port_numbers, (
                f"Service {name} port {port['port']} targets {target!r}, which {selected[0].name} "
                "does not expose"
            )


def test_statefulsets_have_headless_services_and_volumes(docs: list[Doc]) -> None:
    for sts in find(docs, "StatefulSet"):
        name = sts["metadata"]["name"]
        service = one(docs, "Service", sts["spec"]["serviceName"])
        assert service["spec"].get("clusterIP") == "None", f"{name}: its Service is not headless"
        claims = sts["spec"].get("volumeClaimTemplates", [])
        assert claims, f"{name} keeps its data in the pod only"
        mounted = {
            m["name"]
            for c in sts["spec"]["template"]["spec"]["containers"]
            for m in c.get("volumeMounts", [])
        }
        for claim in claims:
            assert claim["metadata"]["name"] in mounted, f"{name}: claim not mounted"


def test_autoscalers_and_disruption_budgets_target_real_workloads(docs: list[Doc]) -> None:
    for hpa in find(docs, "HorizontalPodAutoscaler"):
        ref = hpa["spec"]["scaleTargetRef"]
        target = one(docs, ref["kind"], ref["name"])
        # A replica count in the manifest would be reset by every `kubectl apply`.
        assert "replicas" not in target["spec"], (
            f"{ref['name']} sets replicas although HPA {hpa['metadata']['name']} owns them"
        )
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    for pdb in find(docs, "PodDisruptionBudget"):
        selected = _pods_selected(docs, pdb["spec"]["selector"])
        assert selected, f"PDB {pdb['metadata']['name']} selects no pods"
        # maxUnavailable 0 (or minAvailable = replicas) would block every node drain.
        assert pdb["spec"].get("maxUnavailable", 1) != 0, pdb["metadata"]["name"]


def test_an_overlay_without_its_secrets_file_fails_naming_it(
    kustomize: list[str], workspace: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "k8s"
    shutil.copytree(workspace, copy)
    (copy / "overlays" / "minikube" / "secrets.env").unlink()
    done = subprocess.run(
        [*kustomize, str(copy / "overlays" / "minikube")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode != 0, "rendered without secrets.env: the Secret would be missing"
    assert "secrets.env" in done.stderr, done.stderr
