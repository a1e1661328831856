"""Upload → Celery conversion on a real worker → email → download, for each kind of video."""

from __future__ import annotations

import subprocess

import pytest
from bson import ObjectId

from tests.support import stored
from tests.support.media import FFMPEG, audio_codec_of, duration_of, make_video
from tests.support.servers import wait_until

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("kind", ["mp4", "mkv-mp3", "webm-vp9-opus", "webm-vp8-vorbis", "mov"])
def test_each_container_converts_to_an_mp3_of_the_same_length(
    kind, jobs_api, auth, client, smtp_server, mongo_db, tmp_path
):
    user = auth.login()
    video = make_video(tmp_path, kind, seconds=3)
    job_id = jobs_api.submit(user, video, name=f"holiday {kind}{video.suffix}")
    job = jobs_api.wait(user, job_id)
    assert job["status"] == "done", job
    assert job["progress"] == 100 and job["error"] is None
    assert job["mp3"]["url"] == f"http://mp3.example.test/jobs/{job_id}/mp3"

    response = client.get(f"/jobs/{job_id}/mp3", headers=user.headers)
    assert response.status_code == 200
    assert response.mimetype == "audio/mpeg"
    assert f"holiday%20{kind}.mp3" in response.headers["Content-Disposition"]
    mp3 = tmp_path / "out.mp3"
    mp3.write_bytes(response.data)
    assert len(response.data) == job["mp3"]["bytes"]
    assert audio_codec_of(mp3) == "mp3"
    assert abs(duration_of(mp3) - duration_of(video)) <= 0.1
    assert abs(job["mp3"]["duration_seconds"] - duration_of(video)) <= 0.1

    # The API gives the id as a string; GridFS stores an ObjectId.
    mp3_file = mongo_db["mp3s.files"].find_one({"_id": ObjectId(job["mp3"]["id"])})
    assert mp3_file["metadata"]["copied"] is (kind == "mkv-mp3"), "MP3 audio must be stream-copied"

    [email] = wait_until(lambda: smtp_server.inbox.for_job(job_id), timeout=30, what="the email")
    # The source video is deleted once the email is out; the MP3 stays.
    wait_until(
        lambda: stored.video_gone(mongo_db, mp3_file["_id"]),
        timeout=30,
        what="the video to be deleted",
    )
    assert mongo_db["mp3s.files"].count_documents({"_id": mp3_file["_id"]}) == 1
    assert email["To"] == user.email
    text = email.get_body(("plain",)).get_content()
    assert f"http://mp3.example.test/jobs/{job_id}/mp3" in text
    assert f"holiday {kind}{video.suffix}" in text
    html = email.get_body(("html",)).get_content()
    assert f'href="http://mp3.example.test/jobs/{job_id}/mp3"' in html
    # The link works: the same path on the gateway gives the MP3.
    assert client.get(f"/jobs/{job_id}/mp3", headers=user.headers).data == response.data


def test_bitrate_and_quality_are_honoured(jobs_api, auth, client, tmp_path):
    user = auth.login()
    video = make_video(tmp_path, "mkv-mp3", seconds=3)
    cbr = jobs_api.wait(user, jobs_api.submit(user, video, bitrate="64"))
    vbr = jobs_api.wait(user, jobs_api.submit(user, video, quality="0"))
    assert cbr["status"] == vbr["status"] == "done"
    # 64 kbit/s for 3 s is about 24 kB; VBR at quality 0 of a pure tone is bigger than that.
    assert 20_000 < cbr["mp3"]["bytes"] < 30_000
    assert vbr["mp3"]["bytes"] > cbr["mp3"]["bytes"]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"bitrate": "8"}, "bitrate"),
        ({"bitrate": "abc"}, "bitrate"),
        ({"quality": "10"}, "quality"),
        ({"bitrate": "128", "quality": "2"}, "either"),
    ],
)
def test_bad_options_are_refused(fields, message, jobs_api, auth, mongo_db, tmp_path):
    user = auth.login()
    before = stored.videos(mongo_db)
    response = jobs_api.upload(user, make_video(tmp_path, "mp4", seconds=1), **fields)
    assert response.status_code == 400
    assert message in response.get_json()["error"]["message"]
    stored.assert_no_new_videos(mongo_db, before)


def _truncated_mp4(tmp_path):
    video = make_video(tmp_path, "mp4", seconds=3)
    data = video.read_bytes()
    # ffmpeg writes the MP4 index (moov) at the end: cutting the file loses it.
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    return cut


def _cut_faststart_mp4(tmp_path):
    # Index first, media data cut: ffmpeg reads what is there, ends with exit code 0 and an MP3
    # a third short. The person must hear that the file is damaged, not get the short MP3.
    video = make_video(tmp_path, "mp4", seconds=3)
    faststart = tmp_path / "faststart.mp4"
    copy = ["-c", "copy", "-movflags", "faststart", str(faststart)]
    subprocess.run([FFMPEG, "-v", "error", "-y", "-i", str(video), *copy], check=True)
    data = faststart.read_bytes()
    cut = tmp_path / "cut-faststart.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    return cut


def _fake_mp4(tmp_path):
    # A header that looks like MP4 (so the upload is accepted) followed by text.
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"this is not a video at all\n" * 200)
    return fake


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda d: make_video(d, "mp4", audio=False), "no audio track"),
        (_fake_mp4, "not a media file"),
        (_truncated_mp4, "truncated"),
        (_cut_faststart_mp4, "truncated"),
    ],
)
def test_unconvertible_videos_fail_with_a_reason_in_the_job_and_the_email(
    make, reason, jobs_api, auth, smtp_server, tmp_path
):
    user = auth.login()
    job_id = jobs_api.submit(user, make(tmp_path))
    job = jobs_api.wait(user, job_id)
    assert job["status"] == "failed"
    assert reason in job["error"]
    assert job["mp3"] is None
    [email] = wait_until(lambda: smtp_server.inbox.for_job(job_id), timeout=30, what="the email")
    assert "could not convert" in email["Subject"].lower() or "could not" in email["Subject"]
    assert reason in email.get_body(("plain",)).get_content()


def test_a_text_file_renamed_mp4_is_refused_at_upload(jobs_api, auth, mongo_db, tmp_path):
    user = auth.login()
    text = tmp_path / "notes.mp4"
    text.write_text("shopping list: eggs, milk\n" * 100)
    before = stored.videos(mongo_db)
    response = jobs_api.upload(user, text)
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "unsupported_media_type"
    stored.assert_no_new_videos(mongo_db, before)
    assert mongo_db["jobs"].count_documents({"owner_email": user.email}) == 0


def test_sound_that_stops_before_the_picture_converts_whatever_the_title_says(
    jobs_api, auth, tmp_path
):
    # The container lasts 4 s and its audio 2 s, and the title holds ffmpeg's own words for a
    # damaged file: neither is a sign of damage.
    video = tmp_path / "short-sound.mp4"
    picture = ["-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=4"]
    sound = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2"]
    codecs = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"]
    title = ["-metadata", "title=partial file; End of file; Invalid data found"]
    subprocess.run(
        [FFMPEG, "-v", "error", "-y", *picture, *sound, *codecs, *title, str(video)], check=True
    )
    user = auth.login()
    job = jobs_api.wait(user, jobs_api.submit(user, video))
    assert job["status"] == "done", job
    assert abs(job["mp3"]["duration_seconds"] - 2) <= 0.1
