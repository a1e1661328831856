"""NetworkPolicies allow the design's flows and nothing else, evaluated by the API's rules."""

from __future__ import annotations

import pytest

from .manifests import (
    INGRESS_NGINX,
    INTERNET,
    KEDA,
    KEDA_OVERLAY,
    KUBE_DNS,
    OTHER_TENANT,
    PROMETHEUS,
    Doc,
    Peer,
    connection_allowed,
    find,
    pods,
)

pytestmark = pytest.mark.k8s

APP_PODS = ("gateway", "worker-convert", "worker-notify", "flower", "maintenance-sweep")

ALLOWED = [
    ("ingress-nginx", "gateway", 8080),
    ("ingress-nginx", "flower", 5555),
    ("prometheus", "gateway", 9100),
    ("gateway", "mysql", 3306),
    ("gateway", "mongodb", 27017),
    ("gateway", "rabbitmq", 5672),
    ("worker-convert", "mongodb", 27017),
    ("worker-convert", "rabbitmq", 5672),
    ("worker-notify", "mongodb", 27017),
    ("worker-notify", "rabbitmq", 5672),
    ("flower", "rabbitmq", 5672),
    ("flower", "rabbitmq", 15672),
    ("maintenance-sweep", "rabbitmq", 5672),
]

DENIED = [
    ("ingress-nginx", "gateway", 9100),  # metrics stay inside
    ("ingress-nginx", "rabbitmq", 15672),
    ("ingress-nginx", "mongodb", 27017),
    ("ingress-nginx", "worker-convert", 8080),
    ("other", "gateway", 8080),  # another namespace's pods
    ("other", "mysql", 3306),
    ("gateway", "internet", 587),  # only notify workers send mail
    ("gateway", "internet", 443),
    ("gateway", "flower", 5555),
    ("worker-convert", "internet", 587),
    ("worker-convert", "internet", 443),  # ffmpeg never fetches anything
    ("worker-convert", "mysql", 3306),  # workers need no SQL
    ("worker-notify", "mysql", 3306),
    ("flower", "mongodb", 27017),
    ("flower", "mysql", 3306),
    ("flower", "internet", 443),
    ("maintenance-sweep", "mongodb", 27017),
    ("worker-convert", "gateway", 8080),
    ("gateway", "rabbitmq", 15672),  # the management API is Flower's (and KEDA's)
    ("keda-operator", "rabbitmq", 15672),  # only with the KEDA component
]


def _peers(docs: list[Doc]) -> dict[str, Peer]:
    return {
        **pods(docs),
        "ingress-nginx": INGRESS_NGINX,
        "kube-dns": KUBE_DNS,
        "prometheus": PROMETHEUS,
        "keda-operator": KEDA,
        "other": OTHER_TENANT,
        "internet": INTERNET,
    }


def test_default_deny_isolates_every_pod(docs: list[Doc]) -> None:
    [deny] = find(docs, "NetworkPolicy", "default-deny")
    assert deny["spec"]["podSelector"] == {}
    assert sorted(deny["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    assert "ingress" not in deny["spec"] and "egress" not in deny["spec"]


@pytest.mark.parametrize(("source", "target", "port"), ALLOWED)
def test_the_design_flows_are_allowed(docs: list[Doc], source: str, target: str, port: int) -> None:
    peers = _peers(docs)
    policies = find(docs, "NetworkPolicy")
    assert connection_allowed(policies, peers[source], peers[target], port), (
        f"{source} cannot reach {target}:{port}"
    )


@pytest.mark.parametrize(("source", "target", "port"), DENIED)
def test_other_flows_are_denied(
    docs: list[Doc], overlay: str, source: str, target: str, port: int
) -> None:
    if (source, overlay) == ("keda-operator", KEDA_OVERLAY):
        return  # allowed there on purpose: tests/k8s/test_keda.py
    peers = _peers(docs)
    policies = find(docs, "NetworkPolicy")
    assert not connection_allowed(policies, peers[source], peers[target], port), (
        f"{source} can reach {target}:{port}"
    )


def test_every_pod_resolves_names(docs: list[Doc]) -> None:
    peers = _peers(docs)
    policies = find(docs, "NetworkPolicy")
    for name, pod in pods(docs).items():
        for protocol in ("UDP", "TCP"):
            assert connection_allowed(policies, pod, peers["kube-dns"], 53, protocol), (
                f"{name} cannot reach the cluster DNS over {protocol}"
            )
        assert not connection_allowed(policies, pod, peers["internet"], 53, "UDP"), (
            f"{name} can query any DNS server on the internet"
        )


def test_notify_workers_reach_the_mail_server(docs: list[Doc], overlay: str) -> None:
    peers = _peers(docs)
    policies = find(docs, "NetworkPolicy")
    notify = peers["worker-notify"]
    if overlay == "minikube":
        assert connection_allowed(policies, notify, peers["mailpit"], 1025)
        assert not connection_allowed(policies, notify, INTERNET, 587), "minikube mails out"
        for name in APP_PODS:
            if name != "worker-notify":
                assert not connection_allowed(policies, peers[name], peers["mailpit"], 1025), name
    else:
        for port in (25, 465, 587):
            assert connection_allowed(policies, notify, INTERNET, port), port
