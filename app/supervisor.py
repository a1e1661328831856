"""The process manager under `make up`: honcho, stopping services before the servers they use."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time

import honcho.manager

#: Seconds the processes get to stop after Ctrl-C before their groups are killed.
STOP_GRACE = 20


class Manager(honcho.manager.Manager):
    """honcho's manager, stopping the services before the servers they use, leaders first."""

    #: Stopped only once the others have: a worker that is cancelling still writes to MongoDB.
    servers = ("mongodb", "mail")

    def _killall(self, force: bool = False) -> None:
        if force:
            # SIGKILL goes to whole groups, so that nothing is left behind.
            self._signal(self._processes, signal.SIGKILL, group=True)
            return
        # The leader alone gets SIGTERM: gunicorn and celery then stop their own children.
        services = {n: p for n, p in self._processes.items() if n not in self.servers}
        self._signal(services, signal.SIGTERM)
        threading.Thread(target=self._stop_servers, args=(services,), daemon=True).start()

    def _stop_servers(self, services: dict) -> None:
        deadline = time.monotonic() + STOP_GRACE / 2
        while any("returncode" not in p for p in services.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        self._signal(
            {n: p for n, p in self._processes.items() if n in self.servers}, signal.SIGTERM
        )

    @staticmethod
    def _signal(processes: dict, signum: int, group: bool = False) -> None:
        for proc in processes.values():
            if "pid" in proc and "returncode" not in proc:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    (os.killpg if group else os.kill)(proc["pid"], signum)


def wait_for(addresses: list[str], timeout: float = 60) -> bool:
    """Wait until every host:port accepts connections; return whether they all did in time."""
    deadline = time.monotonic() + timeout
    for host, _, port in (address.rpartition(":") for address in addresses):
        while True:
            with contextlib.suppress(OSError), socket.create_connection((host, int(port)), 1):
                break
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
    return True
