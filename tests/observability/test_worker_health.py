"""The worker's liveness signal: a heartbeat file it touches, read by `python -m tasks.health`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import servers
from tests.support.servers import wait_until

pytestmark = pytest.mark.integration


def health(heartbeat: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WORKER_HEARTBEAT_FILE": str(heartbeat)}
    return subprocess.run(
        [sys.executable, "-m", "tasks.health", *args],
        env=env,
        cwd=servers.ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_fresh_heartbeat_is_healthy(tmp_path):
    beat = tmp_path / "beat"
    beat.touch()
    result = health(beat)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("healthy")


def test_a_stale_heartbeat_is_unhealthy(tmp_path):
    beat = tmp_path / "beat"
    beat.touch()
    old = time.time() - 120
    os.utime(beat, (old, old))
    result = health(beat)
    assert result.returncode == 1
    assert re.match(r"unhealthy: last heartbeat 1[2-9]\d s ago \(limit 60 s\)", result.stdout)
    # The limit can be given: 300 s tolerates it.
    assert health(beat, "300").returncode == 0


def test_a_missing_heartbeat_is_unhealthy(tmp_path):
    result = health(tmp_path / "never-written")
    assert result.returncode == 1
    assert "no heartbeat file" in result.stdout


def test_the_real_worker_keeps_touching_its_heartbeat(worker, stack_env):
    from tasks.signals import HEARTBEAT_EVERY

    beat = Path(stack_env["WORKER_HEARTBEAT_FILE"])
    wait_until(beat.exists, timeout=30, what="the worker's first heartbeat")
    first = beat.stat().st_mtime
    wait_until(
        lambda: beat.stat().st_mtime > first,
        timeout=HEARTBEAT_EVERY + 10,
        what="the worker to touch its heartbeat again",
    )
    assert health(beat).returncode == 0
    assert health(beat, str(HEARTBEAT_EVERY + 5)).returncode == 0
