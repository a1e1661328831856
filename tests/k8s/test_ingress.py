"""The Ingress: `/` to the gateway, `/flower` to Flower, never Flower's metrics; 2 GiB uploads."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from .manifests import Doc, generated, ingress_route, nginx_size, one

pytestmark = pytest.mark.k8s

ANNOTATION = "nginx.ingress.kubernetes.io/"


def _ingress(docs: list[Doc]) -> tuple[Doc, str]:
    ingress = one(docs, "Ingress", "mp3")
    [rule] = ingress["spec"]["rules"]
    return ingress, rule["host"]


def test_nginx_size_units() -> None:
    assert nginx_size("2048m") == 2 * 1024**3
    assert nginx_size("2g") == 2 * 1024**3
    assert nginx_size("512k") == 512 * 1024
    assert nginx_size("100") == 100
    with pytest.raises(AssertionError):
        nginx_size("2GB")


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/", "gateway"),
        ("/login", "gateway"),
        ("/upload", "gateway"),
        ("/jobs/0123/mp3", "gateway"),
        ("/healthz", "gateway"),
        ("/flowers", "gateway"),
        ("/flower", "flower"),
        ("/flower/", "flower"),
        ("/flower/tasks", "flower"),
        ("/flower/api/workers", "flower"),
        ("/flower/static/css/flower.css", "flower"),
    ],
)
def test_paths_reach_their_service(docs: list[Doc], path: str, service: str) -> None:
    ingress, host = _ingress(docs)
    route = ingress_route(ingress, host, path)
    assert route is not None and route[0] == service, f"{path} goes to {route}"


@pytest.mark.parametrize(
    "path",
    ["/flower/metrics", "/flower/metrics/", "/flower/metrics/x", "/flower/healthcheck"],
)
def test_flower_metrics_are_not_routed_to_flower(docs: list[Doc], path: str) -> None:
    """Flower answers /flower/metrics without its password: it must not face the internet."""
    ingress, host = _ingress(docs)
    route = ingress_route(ingress, host, path)
    assert route is not None and route[0] != "flower", f"{path} reaches Flower: {route}"


def test_backends_are_the_http_ports_only(docs: list[Doc]) -> None:
    """The gateway's metrics port (9100) is for Prometheus inside the cluster, not the Ingress."""
    ingress, _ = _ingress(docs)
    for rule in ingress["spec"]["rules"]:
        for item in rule["http"]["paths"]:
            backend = item["backend"]["service"]
            service = one(docs, "Service", backend["name"])
            [port] = [
                p
                for p in service["spec"]["ports"]
                if p.get("name") == backend["port"].get("name")
                or p["port"] == backend["port"].get("number")
            ]
            assert port.get("name") == "http", f"{item['path']} -> {backend}"
            assert port["port"] != 9100


def test_body_limit_is_the_gateways_file_limit(docs: list[Doc]) -> None:
    """nginx limits the whole multipart body: MAX_UPLOAD_BYTES of file plus the framing."""
    from app.gateway.upload import FRAMING_BYTES

    ingress, _ = _ingress(docs)
    annotations = ingress["metadata"]["annotations"]
    limit = nginx_size(annotations[ANNOTATION + "proxy-body-size"])
    file_limit = int(generated(docs, "ConfigMap", "mp3-config")["data"]["MAX_UPLOAD_BYTES"])
    assert limit == file_limit + FRAMING_BYTES, (
        f"nginx refuses bodies over {limit} bytes; the gateway takes files up to {file_limit} "
        f"bytes plus {FRAMING_BYTES} bytes of multipart framing"
    )


def test_uploads_stream_through_with_room_for_large_files(docs: list[Doc]) -> None:
    ingress, _ = _ingress(docs)
    annotations = ingress["metadata"]["annotations"]
    assert annotations[ANNOTATION + "proxy-request-buffering"] == "off"
    for name in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(annotations[ANNOTATION + name]) >= 300, name


def test_tls_for_the_host_and_email_links_point_to_it(docs: list[Doc]) -> None:
    ingress, host = _ingress(docs)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    [tls] = ingress["spec"]["tls"]
    assert tls["hosts"] == [host] and tls["secretName"]
    public = urlsplit(generated(docs, "ConfigMap", "mp3-config")["data"]["PUBLIC_URL"])
    assert (public.scheme, public.hostname) == ("https", host), (
        f"PUBLIC_URL {public.geturl()} does not point at the Ingress https://{host}"
    )
