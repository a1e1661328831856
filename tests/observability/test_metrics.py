"""Prometheus metrics of the gateway: on METRICS_PORT only, summed over gunicorn's workers."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.observability.conftest import LiveUser
from tests.support import servers
from tests.support.media import make_video
from tests.support.servers import ServiceProcess, wait_until

pytestmark = pytest.mark.e2e


def scrape(port: int | str) -> dict[tuple[str, tuple], float]:
    """Return every sample the metrics port serves, keyed by name and sorted labels."""
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def metrics_port(live_gateway) -> str:
    from tests.conftest import live_gateway_process

    return live_gateway_process[0].env["METRICS_PORT"]


def test_an_upload_and_its_finished_job_are_counted(
    live_gateway, metrics_port, worker, auth, mongo_db, tmp_path
):
    user = LiveUser(live_gateway, auth)
    video = make_video(tmp_path, "mp4", seconds=2)
    before = scrape(metrics_port)
    response = user.upload(video)
    assert response.status_code == 202, response.text
    job = user.wait(response.json()["job_id"])
    assert job["status"] == "done", job

    def counted() -> dict | None:
        # The jobs are counted at scrape time (and shared by scrapes for a few seconds).
        samples = scrape(metrics_port)
        done = mongo_db["jobs"].count_documents({"status": "done"})
        return samples if value(samples, "mp3_jobs", status="done") == done else None

    after = wait_until(counted, timeout=20, what="/metrics to count the finished job", every=1)
    assert value(after, "mp3_jobs", status="done") >= 1
    assert value(after, "mp3_jobs_count_up") == 1
    assert set(s[1][0][1] for s in after if s[0] == "mp3_jobs") == {
        "queued",
        "converting",
        "done",
        "failed",
        "cancelled",
    }

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("mp3_http_requests_total", method="POST", route="/upload", status="202") == 1
    assert delta("mp3_http_requests_total", method="GET", route="/jobs/<job_id>", status="200") >= 1
    assert delta("mp3_upload_size_bytes_count") == 1
    uploaded = delta("mp3_upload_bytes_total", status="202")
    # The request body: the video plus its multipart framing.
    assert video.stat().st_size < uploaded < video.stat().st_size + 1024
    assert delta("mp3_upload_size_bytes_sum") == uploaded
    assert delta("mp3_http_request_duration_seconds_count", method="POST", route="/upload") == 1


def test_requests_served_by_every_gunicorn_worker_add_up(live_gateway, metrics_port):
    before = value(
        scrape(metrics_port),
        "mp3_http_requests_total",
        method="GET",
        route="/healthz",
        status="200",
    )
    # Separate connections, so that both gunicorn worker processes take some of them.
    for _ in range(12):
        assert httpx.get(f"{live_gateway}/healthz", timeout=5).status_code == 200
    after = value(
        scrape(metrics_port),
        "mp3_http_requests_total",
        method="GET",
        route="/healthz",
        status="200",
    )
    assert after - before == 12
    missing = httpx.get(f"{live_gateway}/no-such-page", timeout=5)
    assert missing.status_code == 404
    assert (
        value(
            scrape(metrics_port),
            "mp3_http_requests_total",
            method="GET",
            route="<unmatched>",
            status="404",
        )
        >= 1
    )


def test_the_public_port_does_not_serve_metrics(live_gateway):
    response = httpx.get(f"{live_gateway}/metrics", timeout=5)
    assert response.status_code == 404
    assert "mp3_http_requests_total" not in response.text


def test_without_gunicorn_the_app_counts_in_process(client):
    from prometheus_client import REGISTRY

    labels = {"method": "GET", "route": "/healthz", "status": "200"}
    before = REGISTRY.get_sample_value("mp3_http_requests_total", labels) or 0.0
    client.get("/healthz")
    client.get("/healthz")
    assert REGISTRY.get_sample_value("mp3_http_requests_total", labels) == before + 2


def test_jobs_by_status_in_process(app, mongo_db):
    from app import metrics
    from core import jobs

    def scraped_equals_counted():  # type: ignore[no-untyped-def]
        # A job of an earlier test may change status between the scrape and the counts here;
        # a fresh registry counts afresh, so look again until nothing moved in between.
        registry = metrics.scrape_registry(lambda: mongo_db)
        scraped = {s: registry.get_sample_value("mp3_jobs", {"status": s}) for s in jobs.STATUSES}
        counted = {s: mongo_db["jobs"].count_documents({"status": s}) for s in jobs.STATUSES}
        return registry if scraped == counted else None

    registry = wait_until(scraped_equals_counted, timeout=20, what="scraped counts to match")
    assert registry.get_sample_value(
        "mp3_http_requests_total", {"method": "GET", "route": "/healthz", "status": "200"}
    )


def test_a_broker_that_refuses_the_job_counts_a_publish_failure(stack_env, run_dir, auth, tmp_path):
    # A gateway of its own whose broker does not exist: the upload is undone and answered 503.
    port, metrics = servers.free_port(), servers.free_port()
    env = {
        **stack_env,
        "GUNICORN_CMD_ARGS": "--config python:app.gunicorn_conf",
        "GUNICORN_WORKERS": "1",
        "METRICS_PORT": str(metrics),
        "CELERY_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{servers.free_port()}//",
    }
    proc = ServiceProcess(
        "gateway-no-broker",
        [str(servers.VENV_BIN / "gunicorn"), "--bind", f"127.0.0.1:{port}", "app:create_app()"],
        env,
        run_dir,
    ).start()
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert proc.proc.poll() is None, proc.log()[-3000:]
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=60, what="the gateway without a broker")
        user = LiveUser(base, auth)
        response = user.upload(make_video(tmp_path, "mp4", seconds=1))
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "queue_unavailable"
        samples = scrape(metrics)
        assert value(samples, "mp3_queue_publish_failures_total") == 1
        assert (
            value(samples, "mp3_http_requests_total", method="POST", route="/upload", status="503")
            == 1
        )
        assert value(samples, "mp3_upload_size_bytes_count") == 0
        readyz = httpx.get(f"{base}/readyz", timeout=5)
        assert readyz.status_code == 503 and "broker" in readyz.json()["error"]["message"]
    finally:
        proc.stop()
