"""Compose the emails a job's owner receives, and send them over SMTP."""

from __future__ import annotations

import html
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

from core.settings import Settings


def _size(num: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if num < 1000 or unit == "GB":
            return f"{num:.0f} {unit}" if unit == "bytes" else f"{num:.1f} {unit}"
        num /= 1000
    return f"{num} bytes"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def compose(job: dict, settings: Settings) -> EmailMessage:
    """Return the email telling the owner how their job ended: the link, or the reason."""
    job_id = str(job["_id"])
    message = EmailMessage()
    message["From"] = settings.mail_from
    message["To"] = job["owner_email"]
    message["X-MP3-Job"] = job_id
    # One Message-ID per job outcome: should a crash make the email go twice, mail clients and
    # servers see the same message and show it once.
    message["Message-ID"] = make_msgid(idstring=f"{job_id}.{job['status']}", domain="mp3-converter")
    name = job["filename"]
    if job["status"] == "done":
        mp3 = job["mp3"]
        link = f"{settings.public_url}/jobs/{job_id}/mp3"
        message["Subject"] = f"Your MP3 is ready: {name}"
        text = (
            f"Your video {name} has been converted to MP3.\n\n"
            f"Duration: {_duration(mp3['duration_seconds'])}\nSize: {_size(mp3['bytes'])}\n\n"
            f"Download it here (log in first):\n{link}\n"
        )
        body = (
            f"<p>Your video <b>{html.escape(name)}</b> has been converted to MP3.</p>"
            f"<p>Duration: {_duration(mp3['duration_seconds'])}<br>Size: {_size(mp3['bytes'])}</p>"
            f'<p><a href="{html.escape(link)}">Download {html.escape(name)} as MP3</a></p>'
        )
    else:
        reason = job.get("error") or "the conversion failed"
        message["Subject"] = f"We could not convert {name}"
        text = f"Your video {name} could not be converted to MP3.\n\nReason: {reason}\n"
        body = (
            f"<p>Your video <b>{html.escape(name)}</b> could not be converted to MP3.</p>"
            f"<p>Reason: {html.escape(reason)}</p>"
        )
    message.set_content(text)
    message.add_alternative(f"<!doctype html><html><body>{body}</body></html>", subtype="html")
    return message


def send(message: EmailMessage, settings: Settings, *, timeout: float = 20) -> None:
    """Send the message through the configured SMTP server."""
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password or "")
        smtp.send_message(message)
