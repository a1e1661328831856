"""Flower as `celery -A tasks flower`: prefix, redirect, auth, static files, tasks and queues."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.observability.conftest import flower_argv, flower_env
from tests.support import servers
from tests.support.media import make_video
from tests.support.servers import wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def converted(flower, app, worker, smtp_server, tmp_path_factory) -> str:
    """Convert one video through the in-process gateway and the real worker; return the job id."""
    from tests.conftest import AuthActions

    client = app.test_client()
    user = AuthActions(app, client).login()
    video = make_video(tmp_path_factory.mktemp("flower"), "mp4", seconds=2)
    with video.open("rb") as fh:
        response = client.post("/upload", headers=user.headers, data={"file": (fh, "clip.mp4")})
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["job_id"]

    def ended() -> dict | None:
        job = client.get(f"/jobs/{job_id}", headers=user.headers).get_json()
        return job if job["status"] in ("done", "failed") else None

    job = wait_until(ended, timeout=90, what="the conversion to end", every=0.25)
    assert job["status"] == "done", job
    wait_until(lambda: smtp_server.inbox.for_job(job_id), timeout=30, what="the email")
    return job_id


def test_api_tasks_lists_the_jobs_convert_and_notify_tasks_with_their_states(flower, converted):
    convert, notify = f"{converted}-convert", f"{converted}-notify"

    def both_succeeded() -> dict | None:
        tasks = flower.get("/api/tasks").json()
        done = all(tasks.get(t, {}).get("state") == "SUCCESS" for t in (convert, notify))
        return tasks if done else None

    tasks = wait_until(both_succeeded, timeout=30, what="Flower to show both tasks succeeded")
    assert tasks[convert]["name"] == "tasks.convert.convert"
    assert tasks[notify]["name"] == "tasks.notify.notify"
    assert tasks[convert]["worker"].startswith("worker@")
    # The chain links them: notify runs after convert, in the same chain.
    assert tasks[notify]["parent_id"] == convert
    # The conversion's progress events end at 100 once it succeeded; notify reports none.
    assert tasks[convert]["progress"] == 100
    assert tasks[notify]["progress"] is None

    info = flower.get(f"/api/task/info/{convert}").json()
    assert info["state"] == "SUCCESS" and info["progress"] == 100
    page = flower.get(f"/task/{convert}")
    assert page.status_code == 200
    assert re.search(r"<dt>Progress</dt>\s*<dd>\s*100\s*</dd>", page.text), page.text[-3000:]
    filtered = flower.get(
        "/api/tasks", params={"taskname": "tasks.convert.convert", "state": "SUCCESS"}
    ).json()
    assert convert in filtered and notify not in filtered


def test_the_tasks_page_shows_a_progress_column(flower):
    page = flower.get("/tasks")
    assert page.status_code == 200
    assert '<th data-column="progress">Progress</th>' in page.text


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/tasks",
        "/workers",
        "/broker",
        "/api/tasks",
        "/api/workers",
        "/api/queues/length",
        "/api/task/types",
    ],
)
def test_without_credentials_every_page_and_api_is_401(flower, path):
    assert flower.get(path, auth=False).status_code == 401
    wrong = flower.get(path, auth=False, headers={"Authorization": "Basic b3BlcmF0b3I6bm8="})
    assert wrong.status_code == 401


def test_the_prefix_without_its_slash_redirects_to_the_front_page(flower):
    response = flower.get("", auth=False, follow_redirects=False)
    assert response.status_code == 301
    assert response.headers["Location"] == "/flower/"
    with_query = flower.get("?refresh=1", auth=False, follow_redirects=False)
    assert with_query.headers["Location"] == "/flower/?refresh=1"
    # Followed (with credentials), it lands on the front page.
    assert flower.get("", follow_redirects=True).status_code == 200


def test_every_static_asset_of_the_front_page_loads_under_the_prefix(flower):
    page = flower.get("/")
    assert page.status_code == 200
    assets = set(re.findall(r'(?:src|href)="(/[^"]+\.(?:js|css|ico)[^"]*)"', page.text))
    assert len(assets) >= 8, assets
    for asset in assets:
        assert asset.startswith("/flower/static/"), asset
        response = flower.get(asset.removeprefix("/flower"), auth=False)
        assert response.status_code == 200, asset
        assert response.content


def test_queue_lengths_come_from_the_management_api_for_convert_and_notify(flower):
    def both() -> dict | None:
        # RabbitMQ's management plugin lists a new queue at once but gives its message count
        # only with its first statistics, up to 5 s later.
        queues = {q["name"]: q for q in flower.get("/api/queues/length").json()["active_queues"]}
        counted = {"convert", "notify"} <= {n for n, q in queues.items() if "messages" in q}
        return queues if counted else None

    queues = wait_until(both, timeout=30, what="Flower to report both queues' lengths")
    assert all(isinstance(queues[name]["messages"], int) for name in ("convert", "notify"))
    assert "convert" in flower.get("/broker").text


def test_metrics_and_healthcheck_answer_without_credentials_for_in_cluster_use(flower, converted):
    # Both are unauthenticated by Flower's design: the Ingress must never route them publicly.
    assert flower.get("/healthcheck", auth=False).text == "OK"
    metrics = flower.get("/metrics", auth=False)
    assert metrics.status_code == 200
    assert any(
        line.startswith("flower_events_total{")
        and 'type="task-succeeded"' in line
        and 'task="tasks.convert.convert"' in line
        for line in metrics.text.splitlines()
    )


def test_flower_refuses_to_start_unauthenticated_in_production(stack_env):
    env = flower_env(stack_env, APP_ENV="production")
    del env["FLOWER_BASIC_AUTH"]
    result = subprocess.run(
        flower_argv(servers.free_port()),
        env=env,
        cwd=servers.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "FLOWER_BASIC_AUTH" in result.stderr + result.stdout
