"""The caller's jobs: list, one job, its MP3, cancel and delete; the course's /download?fid=."""

from __future__ import annotations

import re

import gridfs
from flask import Blueprint, Response, g, jsonify, request

from app.auth.guard import jwt_required
from app.errors import ApiError
from app.gateway import files
from app.services import services
from core import jobs, mongo

bp = Blueprint("jobs", __name__)

MAX_PER_PAGE = 100


def _not_found() -> ApiError:
    return ApiError(404, "not_found", "no such job")


def _own_job(job_id: str) -> dict:
    """Return the caller's job, or 404 whether it is unknown, malformed or someone else's."""
    job = jobs.get(services().mongo, job_id, owner=g.identity.user_id)
    if job is None:
        raise _not_found()
    return job


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name, str(default))
    # ASCII digits, and few: str.isdigit() also takes "²", and int() refuses both it and
    # strings of more than 4,300 digits, which would be a 500.
    if not re.fullmatch(r"[0-9]{1,9}", raw) or not low <= int(raw) <= high:
        raise ApiError(400, "bad_request", f"{name} must be a whole number from {low} to {high}")
    return int(raw)


@bp.get("/jobs")
@jwt_required
def list_jobs() -> Response:
    """Return one page of the caller's jobs, newest first."""
    svc = services()
    page = _int_arg("page", 1, 1, 10_000)
    per_page = _int_arg("per_page", 20, 1, MAX_PER_PAGE)
    found, total = jobs.list_for(
        svc.mongo, g.identity.user_id, limit=per_page, offset=(page - 1) * per_page
    )
    return jsonify(
        jobs=[jobs.to_public(job, svc.settings.public_url) for job in found],
        page=page,
        per_page=per_page,
        total=total,
        next=f"/jobs?page={page + 1}&per_page={per_page}" if page * per_page < total else None,
    )


@bp.get("/jobs/<job_id>")
@jwt_required
def get_job(job_id: str) -> Response:
    """Return one of the caller's jobs."""
    return jsonify(jobs.to_public(_own_job(job_id), services().settings.public_url))


def _mp3_response(job: dict) -> Response:
    if job["status"] != jobs.DONE or not job.get("mp3"):
        raise ApiError(404, "not_found", "this job has no MP3 (yet)")
    try:
        grid_out = mongo.mp3s(services().mongo).open_download_stream(job["_id"])
    except gridfs.errors.NoFile:
        raise ApiError(404, "not_found", "the MP3 is gone (expired or deleted)") from None
    return files.stream(services().mongo, grid_out, filename=jobs.mp3_filename(job["filename"]))


@bp.get("/jobs/<job_id>/mp3")
@jwt_required
def get_mp3(job_id: str) -> Response:
    """Stream the MP3 of one of the caller's jobs."""
    return _mp3_response(_own_job(job_id))


@bp.get("/download")
@jwt_required
def download() -> Response:
    """Stream the MP3 whose id is `fid` (the course's route), if it is the caller's."""
    fid = request.args.get("fid", "")
    job = jobs.get(services().mongo, fid, owner=g.identity.user_id)
    if job is None:
        raise ApiError(404, "not_found", "no such file")
    return _mp3_response(job)


@bp.delete("/jobs/<job_id>")
@jwt_required
def delete_job(job_id: str) -> Response:
    """Cancel the job if it is unfinished (its ffmpeg is killed) and delete its files."""
    svc = services()
    job = _own_job(job_id)
    if job["status"] not in jobs.TERMINAL:
        # The worker sees `cancelled` at its next progress report (≤ 0.5 s) and kills ffmpeg.
        jobs.cancel(svc.mongo, job["_id"], g.identity.user_id)
    else:
        jobs.collection(svc.mongo).delete_one({"_id": job["_id"], "owner": g.identity.user_id})
    mongo.delete_file(mongo.videos(svc.mongo), job["video_id"])
    mongo.delete_file(mongo.mp3s(svc.mongo), job["_id"])
    return Response(status=204)
