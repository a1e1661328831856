"""Helpers for end-to-end tests: upload through the in-process gateway, wait for the outcome."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.servers import wait_until


class Jobs:
    """Upload files as a user and follow their jobs through the real worker."""

    def __init__(self, client) -> None:
        self.client = client

    def upload(self, user, path: Path, name: str | None = None, **fields: str):
        with path.open("rb") as fh:
            return self.client.post(
                "/upload",
                headers=user.headers,
                data={"file": (fh, name or path.name), **fields},
            )

    def submit(self, user, path: Path, name: str | None = None, **fields: str) -> str:
        response = self.upload(user, path, name, **fields)
        assert response.status_code == 202, response.get_json()
        return response.get_json()["job_id"]

    def get(self, user, job_id: str) -> dict:
        return self.client.get(f"/jobs/{job_id}", headers=user.headers).get_json()

    def wait(self, user, job_id: str, timeout: float = 90) -> dict:
        def ended() -> dict | None:
            job = self.get(user, job_id)
            return job if job["status"] in ("done", "failed", "cancelled") else None

        return wait_until(ended, timeout=timeout, what=f"job {job_id} to end", every=0.2)


@pytest.fixture
def jobs_api(client, worker) -> Jobs:
    return Jobs(client)
