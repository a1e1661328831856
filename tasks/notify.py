"""The `notify` task: email the owner once per finished job, the link or the reason.

It runs after `convert` in the chain, and as the chain's error callback when the conversion
failed. Whichever runs first claims the job's notification; every later run finds it claimed.
After the email it deletes the finished job's video, which `convert` leaves for it.
"""

from __future__ import annotations

import random
import smtplib

from bson import ObjectId
from celery import shared_task
from celery.utils.log import get_task_logger
from pymongo.database import Database
from pymongo.errors import PyMongoError

from core import jobs
from tasks import mail
from tasks.context import db, settings
from tasks.convert import remove_converted_video

log = get_task_logger(__name__)

MAX_RETRIES = 12
#: Backoff cap: with 12 retries, SMTP may be away for about an hour before the email is given up.
BACKOFF_MAX = 300
#: A claim older than this was left by a worker that died while sending.
STALE_SECONDS = 120

TRANSIENT = (
    smtplib.SMTPServerDisconnected,
    smtplib.SMTPConnectError,
    ConnectionError,
    TimeoutError,
    OSError,
)


def _is_permanent(exc: Exception) -> bool:
    # 5xx answers (unknown recipient, rejected message) will not change by trying again.
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code >= 500
    return False


def backoff(retries: int) -> float:
    """Return the wait before retry number `retries`: doubling, capped, with full jitter."""
    return random.uniform(1, min(BACKOFF_MAX, 2 ** (retries + 1)))


@shared_task(bind=True, name="tasks.notify.notify", acks_late=True, max_retries=MAX_RETRIES)
def notify(self, job_id: str, *_args: object) -> str:
    """Email the owner how the job ended, unless that email went already."""
    database = db()
    oid = jobs.parse_id(job_id)
    try:
        _email(self, database, oid)
    finally:
        # Whatever became of the email (sent, given up, to be retried, sent by an earlier run),
        # the finished job's video goes now: the email, not the clean-up, is what the user waits
        # for. A failure here is left to the maintenance sweep rather than hiding the outcome.
        try:
            remove_converted_video(database, oid)
        except PyMongoError as exc:
            log.warning("video not deleted", extra={"job_id": job_id, "error": str(exc)})
    return job_id


def _email(task, database: Database, oid: ObjectId) -> None:
    job_id = str(oid)
    job = jobs.claim_notification(database, oid, stale_seconds=STALE_SECONDS)
    if job is None:
        log.info("no email to send", extra={"job_id": job_id})
        return
    try:
        mail.send(mail.compose(job, settings()), settings())
    except (smtplib.SMTPException, *TRANSIENT) as exc:
        if _is_permanent(exc) or task.request.retries >= MAX_RETRIES:
            jobs.set_notification(database, oid, "failed", error=str(exc))
            log.error("email failed for good", extra={"job_id": job_id, "error": str(exc)})
            return
        jobs.set_notification(database, oid, "retrying", error=str(exc))
        log.warning("email deferred", extra={"job_id": job_id, "error": str(exc)})
        raise task.retry(exc=exc, countdown=backoff(task.request.retries)) from None
    jobs.set_notification(database, oid, "sent")
    log.info("emailed", extra={"job_id": job_id, "outcome": job["status"]})
