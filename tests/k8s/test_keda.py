"""The optional KEDA component: queue-depth scaling of worker-convert that cannot lose work.

kubernetes-validate has no schemas for KEDA's custom resources, so their fields are checked
here one by one, against what the rest of the manifests define.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from .manifests import (
    KEDA,
    KEDA_OVERLAY,
    NAMESPACE,
    Doc,
    connection_allowed,
    find,
    generated,
    one,
    pods,
    workload,
)

pytestmark = pytest.mark.k8s


@pytest.fixture
def keda(rendered: dict[str, list[Doc]]) -> list[Doc]:
    return rendered[KEDA_OVERLAY]


def test_keda_objects_appear_only_where_the_component_is_enabled(
    rendered: dict[str, list[Doc]],
) -> None:
    for name, docs in rendered.items():
        custom = [d for d in docs if d["apiVersion"].startswith("keda.sh/")]
        assert bool(custom) == (name == KEDA_OVERLAY), name


def test_scaled_object_scales_worker_convert_on_the_convert_queue(keda: list[Doc]) -> None:
    scaled = one(keda, "ScaledObject", "worker-convert")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["metadata"]["namespace"] == NAMESPACE
    spec = scaled["spec"]
    target = spec["scaleTargetRef"]
    assert (target.get("apiVersion", "apps/v1"), target.get("kind", "Deployment")) == (
        "apps/v1",
        "Deployment",
    )
    deployment = one(keda, "Deployment", target["name"])
    assert "replicas" not in deployment["spec"], "KEDA's HPA owns the replica count"
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    # Never zero: a queued video would otherwise wait for KEDA's next poll and a cold start.
    assert spec["minReplicaCount"] >= 1
    [trigger] = spec["triggers"]
    assert trigger["type"] == "rabbitmq"
    meta = trigger["metadata"]
    assert meta["queueName"] == "convert"
    assert meta["mode"] == "QueueLength" and float(meta["value"]) >= 1
    # Counting over the management API includes unacknowledged messages: conversions running.
    assert meta["protocol"] == "http"
    host = urlsplit(meta["host"])
    service, namespace = host.hostname.split(".")[:2]
    assert namespace == NAMESPACE
    ports = {p["port"] for p in one(keda, "Service", service)["spec"]["ports"]}
    assert host.port in ports and host.port == 15672
    assert host.password is None, "credentials belong in the TriggerAuthentication"


def test_trigger_authentication_reads_existing_secret_keys(keda: list[Doc]) -> None:
    scaled = one(keda, "ScaledObject", "worker-convert")
    [trigger] = scaled["spec"]["triggers"]
    auth = one(keda, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    secret = generated(keda, "Secret", "mp3-secrets")
    params = {}
    for ref in auth["spec"]["secretTargetRef"]:
        assert ref["name"] == secret["metadata"]["name"], "not the generated Secret's name"
        assert ref["key"] in secret["data"], ref["key"]
        params[ref["parameter"]] = ref["key"]
    assert set(params) == {"username", "password"}
    # The same user RabbitMQ was created with.
    rabbit = workload(keda, "rabbitmq").spec["containers"][0]
    keys = {v["name"]: v["valueFrom"]["secretKeyRef"]["key"] for v in rabbit["env"]}
    assert params == {
        "username": keys["RABBITMQ_DEFAULT_USER"],
        "password": keys["RABBITMQ_DEFAULT_PASS"],
    }


def test_keda_may_reach_the_management_api_and_nothing_else(keda: list[Doc]) -> None:
    policies = find(keda, "NetworkPolicy")
    peers = pods(keda)
    assert connection_allowed(policies, KEDA, peers["rabbitmq"], 15672)
    assert not connection_allowed(policies, KEDA, peers["rabbitmq"], 5672)
    assert not connection_allowed(policies, KEDA, peers["mongodb"], 27017)


def test_scale_down_waits_and_lets_conversions_finish(keda: list[Doc]) -> None:
    scaled = one(keda, "ScaledObject", "worker-convert")["spec"]
    behavior = scaled["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert behavior["stabilizationWindowSeconds"] >= 300
    grace = workload(keda, "worker-convert").spec["terminationGracePeriodSeconds"]
    limit = int(generated(keda, "ConfigMap", "mp3-config")["data"]["CONVERT_TIME_LIMIT"])
    assert grace > limit
