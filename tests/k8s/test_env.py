"""The manifests set exactly the variables the code reads; Compose uses the same names."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from .manifests import (
    DOCKER,
    K8S,
    Doc,
    code_paths,
    environment,
    flower_reads,
    generated,
    image_repository,
    is_app,
    one,
    read_env_file,
    variables_read,
    workload,
    workloads,
)

pytestmark = pytest.mark.k8s

#: Modules that run only on a developer's machine under `make up`, never in a container.
DEV_ONLY_FILES = {
    "app/up.py": "the `make up` launcher, which sets the development environment itself",
    "app/mailsink.py": "the development SMTP sink that writes .eml files",
}
#: Read by the code, but only for the development defaults: in production every path that
#: would live under it (SQLite file, filesystem broker, generated JWT secret) is given instead.
DEV_ONLY_VARIABLES = {"DATA_DIR"}
#: Read by the code, and left unset on purpose.
UNSET_ON_PURPOSE = {
    # app/gunicorn_conf.py then makes a fresh folder at each start; a fixed one in the pod's /tmp
    # would survive a container restart and add the dead processes' samples to the new ones.
    "PROMETHEUS_MULTIPROC_DIR",
}
#: Read in the app containers by third-party tools rather than by our code.
THIRD_PARTY = {
    "GUNICORN_CMD_ARGS": "gunicorn: loads app.gunicorn_conf",
    "WEB_CONCURRENCY": "gunicorn: default worker count",
}
#: What the servers' images read, by image repository.
IMAGE_VARIABLES = {
    "rabbitmq": {"RABBITMQ_DEFAULT_USER", "RABBITMQ_DEFAULT_PASS"},
    "mongo": {"MONGO_INITDB_ROOT_USERNAME", "MONGO_INITDB_ROOT_PASSWORD"},
    "mysql": {"MYSQL_DATABASE", "MYSQL_USER", "MYSQL_PASSWORD", "MYSQL_ROOT_PASSWORD"},
    "axllent/mailpit": set(),
}
#: Compose service -> the Kubernetes workload that plays the same role.
COMPOSE_ROLES = {
    "gateway": "gateway",
    "worker-convert": "worker-convert",
    "worker-notify": "worker-notify",
    "flower": "flower",
    "beat": "maintenance-sweep",
    "rabbitmq": "rabbitmq",
    "mongodb": "mongodb",
    "mysql": "mysql",
}


class RecordingEnv(dict):
    """An environment that remembers which names were looked up in it."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args)
        self.read: set[str] = set()

    def get(self, key, default=None):  # type: ignore[no-untyped-def]
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key) -> bool:  # type: ignore[no-untyped-def]
        self.read.add(key)
        return super().__contains__(key)


def _load_settings(env: dict[str, str]) -> set[str]:
    """Load the service's settings from `env` as production does; return the names read."""
    from core.settings import load_settings

    recorder = RecordingEnv(env)
    settings = load_settings(recorder)
    assert settings.production, "APP_ENV is not production"
    return recorder.read


def _code_variables() -> set[str]:
    return set(variables_read(code_paths(), set(DEV_ONLY_FILES)))


def _required(env: dict[str, str]) -> set[str]:
    """Return what the code reads, the settings module's reads included, minus dev-only names."""
    return (_code_variables() | _load_settings(env)) - DEV_ONLY_VARIABLES - UNSET_ON_PURPOSE


def _allowed_for(container: Doc) -> set[str]:
    if is_app(container):
        return _code_variables() | set(THIRD_PARTY)
    return IMAGE_VARIABLES[image_repository(container["image"])]


def test_the_scan_finds_what_the_code_reads() -> None:
    """Guards the scan itself: were it to find nothing, the tests below would prove nothing."""
    found = _code_variables()
    for name in (
        "APP_ENV",
        "DATABASE_URL",
        "JWT_SECRET",
        "CONVERT_TIME_LIMIT",
        "WORKER_HEARTBEAT_FILE",
        "FFMPEG_BINARY",
        "MAX_UPLOAD_BYTES",
    ):
        assert name in found, f"the scan of {code_paths()} misses {name}"
    for name in DEV_ONLY_FILES:
        assert not name.startswith(("core/", "tasks/")), "shared code is never development-only"


def test_every_app_container_gets_every_variable_the_code_reads(docs: list[Doc]) -> None:
    for w in workloads(docs):
        for c in w.containers:
            if not is_app(c):
                continue
            env = environment(c, docs)
            missing = _required(env) - set(env)
            assert not missing, f"{w.name}/{c['name']} lacks {sorted(missing)}: add to config.env"


def test_the_manifests_set_no_variable_that_nothing_reads(docs: list[Doc]) -> None:
    for w in workloads(docs):
        for c in w.containers:
            names = set(environment(c, docs))
            unread = {n for n in names - _allowed_for(c) if not (is_app(c) and flower_reads(n))}
            assert not unread, (
                f"{w.name}/{c['name']} sets {sorted(unread)}, which no code reads (a typo, or a "
                "variable the code no longer reads)"
            )
            assert not names & DEV_ONLY_VARIABLES, f"{w.name}: sets a development-only variable"
            assert not names & UNSET_ON_PURPOSE, f"{w.name}: sets {names & UNSET_ON_PURPOSE}"


def test_flower_gets_its_auth_and_broker_api(docs: list[Doc]) -> None:
    env = environment(workload(docs, "flower").spec["containers"][0], docs)
    assert env["FLOWER_URL_PREFIX"] == "flower"
    assert ":" in env["FLOWER_BASIC_AUTH"], "FLOWER_BASIC_AUTH is user:password"
    api = urlsplit(env["FLOWER_BROKER_API"])
    assert (api.scheme, api.hostname, api.port, api.path) == ("http", "rabbitmq", 15672, "/api/")
    for name in ("FLOWER_MAX_TASKS", "FLOWER_MAX_WORKERS"):
        assert int(env[name]) > 0, name
    for w in workloads(docs):
        if w.name != "flower":
            for c in w.containers:
                assert "FLOWER_BASIC_AUTH" not in environment(c, docs), f"{w.name} gets it"


def test_every_secret_key_is_used(docs: list[Doc]) -> None:
    secret = generated(docs, "Secret", "mp3-secrets")
    name = secret["metadata"]["name"]
    used = {
        var["valueFrom"]["secretKeyRef"]["key"]
        for w in workloads(docs)
        for c in w.containers
        for var in c.get("env", [])
        if var.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == name
    }
    unused = set(secret["data"]) - used
    assert not unused, f"secrets.env keys no pod uses: {sorted(unused)}"


def test_the_settings_load_in_production_in_every_app_container(docs: list[Doc]) -> None:
    from core.settings import load_settings

    for w in workloads(docs):
        for c in w.containers:
            if is_app(c):
                settings = load_settings(environment(c, docs))
                assert settings.convert_time_limit > 0 and settings.production


def test_the_example_secrets_agree_with_the_servers(rendered: dict[str, list[Doc]]) -> None:
    """Each URL carries the password of the server it names, at that server's Service and port."""
    docs = rendered["production"]
    example = read_env_file(K8S / "secrets.env.example")
    mysql_env = {
        v["name"]: v.get("value") for v in workload(docs, "mysql").spec["containers"][0]["env"]
    }

    def check(url: str, scheme: str, user: str, password: str, service: str) -> None:
        parts = urlsplit(url)
        assert parts.scheme == scheme, url
        assert (parts.username, parts.password) == (user, password), f"{url}: credentials"
        port = one(docs, "Service", service)["spec"]["ports"]
        assert parts.hostname == service and parts.port in {p["port"] for p in port}, url

    check(
        example["DATABASE_URL"],
        "mysql+pymysql",
        mysql_env["MYSQL_USER"],
        example["MYSQL_PASSWORD"],
        "mysql",
    )
    assert urlsplit(example["DATABASE_URL"]).path == "/" + mysql_env["MYSQL_DATABASE"]
    check(
        example["MONGODB_URI"],
        "mongodb",
        example["MONGO_INITDB_ROOT_USERNAME"],
        example["MONGO_INITDB_ROOT_PASSWORD"],
        "mongodb",
    )
    # The root user lives in the database `admin`.
    assert "authSource=admin" in urlsplit(example["MONGODB_URI"]).query
    for key, scheme in (("CELERY_BROKER_URL", "amqp"), ("FLOWER_BROKER_API", "http")):
        check(
            example[key],
            scheme,
            example["RABBITMQ_DEFAULT_USER"],
            example["RABBITMQ_DEFAULT_PASS"],
            "rabbitmq",
        )


# --- Compose ---------------------------------------------------------------------------------


def test_compose_and_kubernetes_config_files_have_the_same_names() -> None:
    k8s, compose = read_env_file(K8S / "base" / "config.env"), read_env_file(DOCKER / "config.env")
    assert set(k8s) == set(compose), (
        f"only in k8s: {set(k8s) - set(compose)}, only in docker: {set(compose) - set(k8s)}"
    )
    k8s = read_env_file(K8S / "secrets.env.example")
    compose = read_env_file(DOCKER / "secrets.env.example")
    assert set(k8s) == set(compose)


def test_compose_services_get_the_same_variables_as_their_pods(
    compose_config: dict, rendered: dict[str, list[Doc]]
) -> None:
    docs = rendered["production"]
    for service, name in COMPOSE_ROLES.items():
        in_compose = set(compose_config["services"][service].get("environment", {}))
        [container] = workload(docs, name).spec["containers"]
        in_k8s = set(environment(container, docs))
        assert in_compose == in_k8s, (
            f"{service}: only in compose {sorted(in_compose - in_k8s)}, "
            f"only in k8s {sorted(in_k8s - in_compose)}"
        )


def test_the_settings_load_in_production_in_every_compose_app_service(
    compose_config: dict,
) -> None:
    for name, service in compose_config["services"].items():
        if image_repository(service["image"]).startswith("mp3-converter/"):
            env = {k: v or "" for k, v in service["environment"].items()}
            missing = _required(env) - set(env)
            assert not missing, f"compose service {name} lacks {sorted(missing)}"
