"""Every pod is hardened, bounded, probed and pinned; the workers outlast their conversions."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .manifests import (
    K8S,
    NAMESPACE,
    REPO,
    Doc,
    environment,
    find,
    generated,
    image_repository,
    is_app,
    one,
    quantity,
    workload,
    workloads,
)

pytestmark = pytest.mark.k8s

#: Volume types the Pod Security "restricted" profile allows.
RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def test_namespace_enforces_the_restricted_pod_security_profile(docs: list[Doc]) -> None:
    labels = one(docs, "Namespace", NAMESPACE)["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels.get(f"pod-security.kubernetes.io/{mode}") == "restricted", mode


def test_every_pod_meets_the_restricted_profile(docs: list[Doc]) -> None:
    problems = []
    for w in workloads(docs):
        pod_sc = w.spec.get("securityContext", {})
        for flag in ("hostNetwork", "hostPID", "hostIPC"):
            if w.spec.get(flag):
                problems.append(f"{w.name}: {flag}")
        for volume in w.spec.get("volumes", []):
            kinds = set(volume) - {"name"}
            if not kinds <= RESTRICTED_VOLUMES:
                problems.append(f"{w.name}: volume {volume['name']} is {kinds}")
        if w.spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{w.name}: mounts a service account token it never uses")
        for c in w.containers:
            sc = c.get("securityContext", {})
            where = f"{w.name}/{c['name']}"

            def setting(key: str, sc: dict = sc, pod_sc: dict = pod_sc) -> object:
                return sc.get(key, pod_sc.get(key))

            if setting("runAsNonRoot") is not True:
                problems.append(f"{where}: runAsNonRoot is not true")
            if setting("runAsUser") in (0, None):
                problems.append(f"{where}: no non-zero runAsUser")
            if (setting("seccompProfile") or {}).get("type") not in {"RuntimeDefault", "Localhost"}:
                problems.append(f"{where}: seccompProfile is not RuntimeDefault")
            if sc.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
            if sc.get("privileged"):
                problems.append(f"{where}: privileged")
            if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities are not dropped (drop: [ALL])")
            if set(sc.get("capabilities", {}).get("add", [])) - {"NET_BIND_SERVICE"}:
                problems.append(f"{where}: adds capabilities")
            if sc.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: the root filesystem is writable")
    assert not problems, "\n".join(problems)


def test_every_container_has_a_sized_writable_tmp(docs: list[Doc]) -> None:
    """With a read-only root, /tmp is an emptyDir, bounded so one pod cannot fill its node."""
    for w in workloads(docs):
        volumes = {v["name"]: v for v in w.spec.get("volumes", [])}
        for c in w.containers:
            [tmp] = [m for m in c.get("volumeMounts", []) if m["mountPath"] == "/tmp"] or [None]
            assert tmp, f"{w.name}/{c['name']} has no /tmp volume"
            empty_dir = volumes[tmp["name"]].get("emptyDir")
            assert empty_dir is not None and "sizeLimit" in empty_dir, (
                f"{w.name}/{c['name']}: /tmp is not an emptyDir with a sizeLimit"
            )
            storage = c["resources"].get("limits", {}).get("ephemeral-storage")
            assert storage and quantity(storage) >= quantity(empty_dir["sizeLimit"]), (
                f"{w.name}/{c['name']}: ephemeral-storage limit {storage} is below /tmp's "
                f"sizeLimit {empty_dir['sizeLimit']}"
            )


def test_every_container_has_requests_and_limits(docs: list[Doc]) -> None:
    for w in workloads(docs):
        for c in w.containers:
            res = c.get("resources", {})
            for kind in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resource in res.get(kind, {}), (
                        f"{w.name}/{c['name']} has no {resource} {kind}"
                    )
            memory = res["requests"]["memory"], res["limits"]["memory"]
            assert quantity(memory[0]) <= quantity(memory[1]), f"{w.name}: request > limit"


def test_every_long_running_container_has_liveness_and_readiness_probes(docs: list[Doc]) -> None:
    for w in workloads(docs):
        if w.runs_to_completion:
            continue  # a job's container exits by itself; there is nothing to probe
        for c in w.containers:
            for probe in ("livenessProbe", "readinessProbe"):
                assert probe in c, f"{w.name}/{c['name']} has no {probe}"


def test_the_probes_are_the_service_health_endpoints(docs: list[Doc]) -> None:
    gateway = workload(docs, "gateway").spec["containers"][0]
    assert gateway["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert gateway["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert gateway["livenessProbe"]["httpGet"]["port"] in ("http", 8080)
    flower = workload(docs, "flower").spec["containers"][0]
    assert flower["livenessProbe"]["httpGet"]["path"] == "/flower/healthcheck"
    assert flower["readinessProbe"]["httpGet"]["path"] == "/flower/healthcheck"
    for name in ("worker-convert", "worker-notify"):
        worker = workload(docs, name).spec["containers"][0]
        assert worker["livenessProbe"]["exec"]["command"] == ["python", "-m", "tasks.health"]


def test_the_health_module_the_worker_probe_runs_exists() -> None:
    assert (REPO / "tasks" / "health.py").is_file(), "the worker liveness probe runs tasks.health"


def test_every_image_is_pinned(docs: list[Doc]) -> None:
    for w in workloads(docs):
        for c in w.containers:
            image = c["image"]
            tag = image[len(image_repository(image)) :]
            assert tag.startswith(("@sha256:", ":")), f"{w.name}: image {image} has no tag"
            assert tag not in (":latest", ":"), f"{w.name}: image {image} is not pinned"
            assert not re.fullmatch(r":\d+(\.\d+)?(-\w+)?", tag) or "@" in image, (
                f"{w.name}: {image} names a moving major/minor tag, not a release"
            )


def test_base_and_overlays_write_no_latest_tag() -> None:
    for path in K8S.rglob("*.yaml"):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not re.search(r"(image:|newTag:)\s*\S*:?latest\b", line), f"{path}:{number}"


def test_the_app_roles_run_the_documented_commands(docs: list[Doc]) -> None:
    """Commands go in `args`: the image's ENTRYPOINT (tini) must stay PID 1."""
    expected = {
        "gateway": ["gunicorn", "--bind", "0.0.0.0:8080", "app:create_app()"],
        "worker-convert": ["celery", "-A", "tasks", "worker", "-Q", "convert"],
        "worker-notify": ["celery", "-A", "tasks", "worker", "-Q", "notify"],
        "flower": ["celery", "-A", "tasks", "flower"],
    }
    for name, prefix in expected.items():
        [container] = workload(docs, name).spec["containers"]
        assert is_app(container), f"{name} does not run the service's image"
        assert "command" not in container, f"{name} overrides the image's ENTRYPOINT"
        assert container["args"][: len(prefix)] == prefix, f"{name}: {container['args']}"
    convert = workload(docs, "worker-convert").spec["containers"][0]["args"]
    # One ffmpeg per pod: the pod count is the number of conversions running at once.
    assert convert[convert.index("--concurrency") + 1] == "1"


def _celery_limits(env: dict[str, str]) -> tuple[int, int]:
    """Return celeryconfig's (task_time_limit, task_soft_time_limit) under `env`."""
    code = "import celeryconfig as c; print(c.task_time_limit, c.task_soft_time_limit)"
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, (
        f"celeryconfig does not load with the pod's environment:\n{done.stderr}"
    )
    hard, soft = done.stdout.split()
    return int(float(hard)), int(float(soft))


def test_workers_get_to_finish_a_conversion_before_they_are_killed(docs: list[Doc]) -> None:
    """Scale-down and rollouts send SIGTERM: Celery then finishes the running task, if it may."""
    config = generated(docs, "ConfigMap", "mp3-config")["data"]
    limit = int(config["CONVERT_TIME_LIMIT"])
    pod = workload(docs, "worker-convert")
    grace = pod.spec["terminationGracePeriodSeconds"]
    assert grace > limit, f"grace {grace} s <= CONVERT_TIME_LIMIT {limit} s"
    hard, _ = _celery_limits(environment(pod.spec["containers"][0], docs))
    assert grace > hard, f"grace {grace} s <= Celery's task_time_limit {hard} s"


def test_rabbitmq_does_not_time_out_a_running_conversion(docs: list[Doc]) -> None:
    """With late acks, a message stays unacknowledged while ffmpeg runs (consumer_timeout)."""
    conf = generated(docs, "ConfigMap", "rabbitmq-config")["data"]["10-mp3.conf"]
    [timeout_ms] = re.findall(r"^consumer_timeout\s*=\s*(\d+)\s*$", conf, flags=re.M)
    pod = workload(docs, "worker-convert")
    hard, _ = _celery_limits(environment(pod.spec["containers"][0], docs))
    assert int(timeout_ms) > hard * 1000, f"consumer_timeout {timeout_ms} ms <= {hard} s"
    plugins = generated(docs, "ConfigMap", "rabbitmq-config")["data"]["enabled_plugins"]
    assert "rabbitmq_management" in plugins, "Flower's broker view needs the management plugin"
    rabbit = workload(docs, "rabbitmq").spec["containers"][0]
    mounts = {m["mountPath"] for m in rabbit["volumeMounts"]}
    assert {"/etc/rabbitmq/conf.d", "/etc/rabbitmq/enabled_plugins"} <= mounts


def test_every_app_pod_runs_as_the_image_user(docs: list[Doc]) -> None:
    for w in workloads(docs):
        if all(is_app(c) for c in w.containers):
            assert w.spec["securityContext"]["runAsUser"] == 10001, w.name


def test_databases_keep_their_data_on_volumes(docs: list[Doc]) -> None:
    for sts in find(docs, "StatefulSet"):
        for claim in sts["spec"]["volumeClaimTemplates"]:
            size = claim["spec"]["resources"]["requests"]["storage"]
            assert quantity(size) >= 1024**3, f"{sts['metadata']['name']}: {size}"
