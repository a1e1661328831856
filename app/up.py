"""`make up`: the whole stack on this machine, in the foreground, under one process manager.

Each service without its variable is started embedded: SecantusDB unless MONGODB_URI is set, the
SMTP sink of app.mailsink unless SMTP_HOST is, kombu's filesystem broker unless CELERY_BROKER_URL
is, SQLite unless DATABASE_URL is. honcho runs the gateway, a worker, Flower and those servers,
each in a process group of its own, and prints their output; Ctrl-C stops them all.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import honcho.manager
from honcho.environ import parse_procfile
from honcho.printer import Message

from app.supervisor import STOP_GRACE, Manager, wait_for
from core.settings import DEFAULT_MONGO_PORT, DEFAULT_SMTP_SINK_PORT

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: Service → (variable that moves its port, default). The defaults are fixed by DESIGN.md.
PORT_VARIABLES = {
    "gateway": ("MP3_UP_GATEWAY_PORT", 8080),
    "flower": ("MP3_UP_FLOWER_PORT", 5555),
    "metrics": ("METRICS_PORT", 9100),
    "mongodb": ("MP3_UP_MONGO_PORT", DEFAULT_MONGO_PORT),
    "mail": ("MP3_UP_SMTP_PORT", DEFAULT_SMTP_SINK_PORT),
}
DEMO_EMAIL = "demo@example.com"
BANNER = """
The MP3 converter is ready:
  web page and API  {gateway}
  Flower            {flower}
  emails            {mail} (links are logged by `mail` below)
  data              {data}
  services          {services}
{demo}From another terminal:
  mp3c login --url {gateway}
  mp3c convert video.mp4 --wait
Ctrl-C stops everything.
"""
#: Seconds a service gets to stop after the first one has stopped, before it is killed.


class UpError(RuntimeError):
    """`make up` cannot start; the message is the one line the user sees."""


@dataclass
class Plan:
    """What `make up` runs: the processes, their environment, and the ports they take."""

    data_dir: Path
    env: dict[str, str]
    processes: dict[str, str]  # name → shell command, from app/Procfile
    ports: dict[str, tuple[str, int]] = field(default_factory=dict)  # name → (host, port)
    services: list[str] = field(default_factory=list)  # what backs the stack, for the banner

    def url(self, name: str, path: str = "") -> str:
        return f"http://localhost:{self.ports[name][1]}{path}"


def _port(environ: dict[str, str], name: str) -> int:
    variable, default = PORT_VARIABLES[name]
    raw = environ.get(variable, "").strip() or str(default)
    lowest = 0 if name == "metrics" else 1  # METRICS_PORT=0 turns the metrics off.
    if not raw.isdigit() or not lowest <= int(raw) < 65536:
        raise UpError(f"{variable} must be a port number, not {raw!r}")
    return int(raw)


def plan(environ: dict[str, str] | None = None) -> Plan:
    """Decide the processes and the environment of the stack from the given environment."""
    environ = dict(os.environ if environ is None else environ)
    data = Path(environ.get("DATA_DIR") or "./var").expanduser().resolve()
    ports = {name: _port(environ, name) for name in PORT_VARIABLES}
    env = {
        **environ,
        "DATA_DIR": str(data),
        "PATH": f"{BIN}{os.pathsep}{environ.get('PATH', '')}",  # This venv's commands first.
        "APP_ENV": environ.get("APP_ENV") or "development",
        "PUBLIC_URL": environ.get("PUBLIC_URL") or f"http://localhost:{ports['gateway']}",
        "WORKER_HEARTBEAT_FILE": environ.get("WORKER_HEARTBEAT_FILE") or str(data / "heartbeat"),
        "MP3_UP_GATEWAY_PORT": str(ports["gateway"]),
        "METRICS_PORT": str(ports["metrics"]),
        "METRICS_ADDRESS": environ.get("METRICS_ADDRESS") or "127.0.0.1",
        "MP3_UP_WAIT_FOR": "",
        "PYTHONUNBUFFERED": "1",  # Lines reach honcho through pipes, as they are written.
    }
    procfile = parse_procfile((Path(__file__).with_name("Procfile")).read_text())
    stack = Plan(data_dir=data, env=env, processes=dict(procfile.processes))
    stack.ports["gateway"] = ("0.0.0.0", ports["gateway"])  # noqa: S104 - as the fixed command
    stack.ports["flower"] = (environ.get("FLOWER_ADDRESS") or "127.0.0.1", ports["flower"])
    if ports["metrics"]:
        stack.ports["metrics"] = (env["METRICS_ADDRESS"], ports["metrics"])
    if environ.get("MONGODB_URI"):
        del stack.processes["mongodb"]
        stack.services.append("MongoDB from MONGODB_URI")
    else:
        stack.ports["mongodb"] = ("127.0.0.1", ports["mongodb"])
        env["MONGODB_URI"] = f"mongodb://127.0.0.1:{ports['mongodb']}/mp3?directConnection=true"
        env.update(
            MP3_UP_MONGO_PORT=str(ports["mongodb"]), MP3_UP_WAIT_FOR=f"127.0.0.1:{ports['mongodb']}"
        )
        stack.services.append(f"MongoDB-wire server (SecantusDB) on 127.0.0.1:{ports['mongodb']}")
    if environ.get("SMTP_HOST"):
        del stack.processes["mail"]
        stack.services.append("SMTP relay from SMTP_HOST")
    else:
        stack.ports["mail"] = ("127.0.0.1", ports["mail"])
        env.update(SMTP_HOST="127.0.0.1", SMTP_PORT=str(ports["mail"]), SMTP_STARTTLS="false")
        env.pop("SMTP_USERNAME", None)
        stack.services.append(f"SMTP sink on 127.0.0.1:{ports['mail']}")
    stack.services.append(
        "broker from CELERY_BROKER_URL"
        if environ.get("CELERY_BROKER_URL")
        else f"filesystem broker in {data / 'broker'}"
    )
    stack.services.append(
        "SQL database from DATABASE_URL"
        if environ.get("DATABASE_URL")
        else f"SQLite in {data / 'users.db'}"
    )
    return stack


def process_env(stack: Plan, name: str) -> dict[str, str]:
    """Return the environment of one process of the stack."""
    env = dict(stack.env)
    if name == "gateway":
        env.setdefault("GUNICORN_CMD_ARGS", "--config python:app.gunicorn_conf")
    elif name == "worker":
        # Stop at once on Ctrl-C: running conversions are cancelled and their messages requeued
        # (late acks), so they start again with the next `make up` instead of holding this one.
        env["REMAP_SIGTERM"] = "SIGQUIT"
    elif name == "flower":
        host, port = stack.ports["flower"]
        env.update(
            FLOWER_URL_PREFIX=env.get("FLOWER_URL_PREFIX") or "flower",
            FLOWER_PORT=str(port),
            FLOWER_ADDRESS=host,
        )
    return env


def check_ports(stack: Plan) -> None:
    """Raise UpError naming the first port that is taken already."""
    seen: dict[int, str] = {}
    for name, (host, port) in stack.ports.items():
        if port in seen:
            raise UpError(f"port {port} is given to both {seen[port]} and {name}")
        seen[port] = name
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                raise UpError(
                    f"port {port} ({name}) is already in use: stop what listens there, "
                    f"or run with {PORT_VARIABLES[name][0]}=<another port>"
                ) from None


def prepare(stack: Plan) -> None:
    """Check the settings, create the folders, tidy the broker, and migrate the users' schema."""
    from sqlalchemy.exc import SQLAlchemyError

    from app import db
    from core.settings import SettingsError, load_settings

    try:
        for folder in ("broker", "broker-control", "mail", "mongo"):
            (stack.data_dir / folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UpError(f"DATA_DIR={stack.data_dir} cannot be used: {exc.strerror}") from None
    try:
        # Loading once here also creates DATA_DIR/jwt_secret before several processes race to.
        settings = load_settings(stack.env)
    except SettingsError as exc:
        raise UpError(f"configuration error: {exc}") from None
    # The filesystem broker keeps bindings in files: queues of the event and control consumers of
    # a previous run would still receive, unread, a file per event. Nothing runs yet, so the
    # transient queues go; `convert` and `notify` stay, with their messages.
    for name in ("celeryev", "celery.pidbox", "reply.celery.pidbox"):
        (stack.data_dir / "broker-control" / f"{name}.exchange").unlink(missing_ok=True)
    for message in (stack.data_dir / "broker").glob("*.msg"):
        queue = message.name.partition(".")[2].removesuffix(".msg")
        if queue.startswith("celeryev.") or queue.endswith(".pidbox"):
            message.unlink(missing_ok=True)
    try:
        # Once here, rather than by two gunicorn workers at the same moment.
        db.migrate(db.make_engine(settings.database_url))
    except SQLAlchemyError as exc:
        raise UpError(f"the SQL database cannot be used: {exc.__class__.__name__}: {exc}") from None


def demo_user(stack: Plan) -> list[str]:
    """Create the demo user at the first start; return the banner's lines about it."""
    from app import db
    from app.auth.users import UserError, create_user, find_user
    from core.settings import load_settings

    marker = stack.data_dir / "demo-user"
    sessions = db.session_factory(db.make_engine(load_settings(stack.env).database_url))
    if marker.exists():
        # Created once only: a demo user deleted on purpose stays deleted.
        found = find_user(sessions, DEMO_EMAIL) is not None
        return [f"  log in as {DEMO_EMAIL} (password shown at the first start)"] if found else []
    password = secrets.token_urlsafe(12)
    try:
        create_user(sessions, DEMO_EMAIL, password)
    except UserError:
        marker.write_text(DEMO_EMAIL + "\n")
        return [f"  log in as {DEMO_EMAIL} (it existed already; password unchanged)"]
    marker.write_text(DEMO_EMAIL + "\n")
    return [
        f"  log in as {DEMO_EMAIL} with the password {password}",
        "  (shown this once only; more users: flask --app app users create EMAIL)",
    ]


def announce(stack: Plan, say, timeout: float = 180) -> None:  # type: ignore[no-untyped-def]
    """Wait until /readyz answers 200, then print the URLs and the demo login once."""
    import httpx

    readyz = f"http://127.0.0.1:{stack.ports['gateway'][1]}/readyz"
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(readyz, timeout=3).status_code == 200:
                break
        if time.monotonic() > deadline:
            say(f"not ready after {timeout:g} s: {readyz} says why")
            return
        time.sleep(0.5)
    wait_for([f"127.0.0.1:{stack.ports['flower'][1]}"], timeout=30)
    say(BANNER.format(
        gateway=stack.url("gateway"), flower=stack.url("flower", "/flower/"),
        mail=stack.data_dir / "mail", data=stack.data_dir, services="; ".join(stack.services),
        demo="".join(f"{line}\n" for line in demo_user(stack)),
    ))  # fmt: skip


def run(stack: Plan) -> int:
    """Run every process until Ctrl-C, or until one of them stops; return the exit status."""
    honcho.manager.KILL_WAIT = STOP_GRACE  # honcho reads its grace period from this global.
    manager = Manager()
    for name, command in stack.processes.items():
        manager.add_process(name, command, env=process_env(stack, name), cwd=str(ROOT))

    def say(text: str) -> None:
        # Through honcho's queue, so these lines never cut into the services' lines.
        for line in text.split("\n"):
            manager.events.put(Message("line", line + "\n", datetime.now(), "up", None))

    def watch() -> None:
        try:
            announce(stack, say)
        except Exception as exc:  # A failed banner must not take the running stack down.
            say(f"could not finish starting: {exc.__class__.__name__}: {exc}")

    # A closed terminal (SIGHUP) stops the stack as Ctrl-C does, instead of orphaning it.
    signal.signal(signal.SIGHUP, lambda *_: os.kill(os.getpid(), signal.SIGTERM))
    threading.Thread(target=watch, name="announce", daemon=True).start()
    try:
        manager.loop()
    finally:
        for proc in manager._processes.values():
            with contextlib.suppress(ProcessLookupError, PermissionError, KeyError):
                os.killpg(proc["pid"], signal.SIGKILL)  # Whatever a stopped leader left behind.
    # Stopped as asked (Ctrl-C, SIGTERM): a success, not make's "Error 130".
    return 0 if manager.returncode in (130, 143) else manager.returncode or 0


def main(argv: list[str] | None = None) -> int:
    """Run the stack; as `--wait-for HOST:PORT... -- COMMAND`, run COMMAND once they listen."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--wait-for"] and "--" in argv:
        addresses, command = argv[1 : argv.index("--")], argv[argv.index("--") + 1 :]
        if not wait_for(addresses):
            print(f"gave up waiting for {' '.join(addresses)}", file=sys.stderr)
            return 1
        os.execvp(command[0], command)  # noqa: S606 - the command comes from app/Procfile
    try:
        stack = plan()
        check_ports(stack)
        prepare(stack)
    except UpError as exc:
        print(f"make up: {exc}", file=sys.stderr)
        return 1
    return run(stack)


if __name__ == "__main__":
    sys.exit(main())
