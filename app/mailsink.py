"""The local SMTP sink of `make up`: every email becomes an .eml file, and its links a log line.

`python -m app.mailsink [--host H] [--port P] [--dir D]` accepts any message for any recipient
(it never relays), writes it to `$DATA_DIR/mail/<time>-<id>.eml` and logs whom it was for and the
links it carries, so the download link of a finished job is in the terminal of `make up`.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
import uuid
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller

from core.settings import DEFAULT_SMTP_SINK_PORT

LINK = re.compile(r"https?://[^\s<>\"']+")


def links_in(message: EmailMessage) -> list[str]:
    """Return the distinct links of the message's plain-text body, in order."""
    part = message.get_body(preferencelist=("plain", "html"))
    text = part.get_content() if part is not None else ""
    return list(dict.fromkeys(LINK.findall(text)))


class MailDir:
    """An aiosmtpd handler that keeps each message as a file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def save(self, raw: bytes) -> tuple[Path, EmailMessage]:
        """Write one message atomically and return its path and the parsed message."""
        message = message_from_bytes(raw, policy=policy.default)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        ident = re.sub(r"[^A-Za-z0-9]", "", message.get("X-MP3-Job", "")) or uuid.uuid4().hex[:12]
        path = self.folder / f"{stamp}-{ident}.eml"
        partial = path.with_suffix(".eml.part")
        partial.write_bytes(raw)
        os.replace(partial, path)  # A reader never sees half an email.
        return path, message  # type: ignore[return-value]

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd's hook name
        path, message = self.save(envelope.original_content)
        recipients = ", ".join(envelope.rcpt_tos)
        line = f"mail for {recipients}: {message.get('Subject', '(no subject)')} (saved {path})"
        for link in links_in(message):
            line += f"\n  link: {link}"
        print(line, flush=True)
        return "250 Message accepted"


def serve(host: str, port: int, folder: Path) -> None:
    """Accept mail until SIGINT or SIGTERM."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    controller = Controller(MailDir(folder), hostname=host, port=port)
    try:
        controller.start()
    except OSError as exc:
        sys.exit(f"mailsink: cannot listen on {host}:{port}: {exc.strerror or exc}")
    print(f"SMTP sink on {host}:{port}, writing emails to {folder}", flush=True)
    try:
        stop.wait()
    finally:
        controller.stop()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the sink."""
    summary = (__doc__ or "").split("\n")[0]
    parser = argparse.ArgumentParser(prog="python -m app.mailsink", description=summary)
    parser.add_argument("--host", default="127.0.0.1")
    default_port = int(os.environ.get("SMTP_PORT") or DEFAULT_SMTP_SINK_PORT)
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument("--dir", type=Path, default=None, help="default: $DATA_DIR/mail")
    args = parser.parse_args(argv)
    folder = args.dir or Path(os.environ.get("DATA_DIR", "./var")).expanduser().resolve() / "mail"
    serve(args.host, args.port, folder)


if __name__ == "__main__":
    main()
