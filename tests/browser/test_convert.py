"""The whole journey in a real browser: log in, upload, watch, play, download, delete."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.conftest import log_in
from tests.support.media import duration_of, make_video

pytestmark = pytest.mark.browser

#: Records every value an upload's progress bar takes, to prove it moves with the bytes sent.
WATCH_UPLOAD_PROGRESS = """() => {
  window.uploadProgress = [];
  new MutationObserver((changes) => {
    for (const change of changes) {
      const bar = change.target;
      if (bar instanceof HTMLProgressElement) window.uploadProgress.push(bar.value);
    }
  }).observe(document.getElementById("uploads"),
             {subtree: true, attributes: true, attributeFilter: ["value"]});
}"""

#: Resolves with the audio element's duration once its metadata is loaded.
AUDIO_DURATION = """(audio) => new Promise((resolve, reject) => {
  if (audio.readyState >= 1) return resolve(audio.duration);
  audio.addEventListener("loadedmetadata", () => resolve(audio.duration), {once: true});
  audio.addEventListener("error", () => reject(new Error("audio error " + audio.error.code)),
                         {once: true});
})"""

#: Plays the audio element to its end; resolves with where playback stopped.
PLAY_TO_END = """(audio) => new Promise((resolve, reject) => {
  audio.addEventListener("ended", () => resolve(audio.currentTime), {once: true});
  audio.addEventListener("error", () => reject(new Error("audio error " + audio.error.code)),
                         {once: true});
  audio.play().catch(reject);
})"""


def test_convert_play_download_delete(
    page, context, live_gateway, worker, user, tmp_path, artifacts
):
    clip = make_video(tmp_path, "mp4", name="holiday clip.mp4")
    silent = make_video(tmp_path, "mp4", audio=False, name="no sound.mp4")
    log_in(page, live_gateway, user)
    expect(page.locator("#jobs-empty")).to_be_visible()

    # Slow the upload down so the bar has to pass through values between 0 and 100.
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": 40_000,
        },
    )
    page.evaluate(WATCH_UPLOAD_PROGRESS)
    page.get_by_label("Audio quality").select_option("bitrate:128")
    page.set_input_files("#file-input", [str(clip), str(silent)])

    uploads = page.locator("#uploads .upload")
    expect(uploads.first).to_contain_text("sent")
    page.screenshot(path=artifacts / "web-page-uploading.png", full_page=True)
    expect(uploads).to_have_count(0, timeout=30_000)
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 0,
            "downloadThroughput": -1,
            "uploadThroughput": -1,
        },
    )
    progress = page.evaluate("window.uploadProgress")
    assert 100 in progress, progress
    assert any(0 < value < 100 for value in progress), progress

    done = page.locator(".job", has_text="holiday clip.mp4")
    failed = page.locator(".job", has_text="no sound.mp4")
    expect(done.locator(".badge")).to_have_text("Ready", timeout=60_000)
    expect(failed.locator(".badge")).to_have_text("Failed", timeout=60_000)
    expect(failed.locator(".job-error")).to_contain_text("no audio track")
    expect(failed.locator("audio")).to_be_hidden()
    expect(done.locator(".job-progress")).to_be_hidden()
    expect(page.locator("#announcer")).not_to_be_empty()

    token = user.token(live_gateway)
    api = httpx.Client(
        base_url=live_gateway, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    job_id = done.get_attribute("data-job-id")
    job = api.get(f"/jobs/{job_id}").json()
    assert job["status"] == "done", job
    # 128 kbit/s for 3 s is 48 kB: the quality chosen on the page reached the encoder.
    assert 40_000 < job["mp3"]["bytes"] < 60_000, job

    audio = done.locator("audio")
    source_seconds = duration_of(clip)
    assert abs(audio.evaluate(AUDIO_DURATION) - source_seconds) < 0.2
    stopped_at = audio.evaluate(PLAY_TO_END)
    assert abs(stopped_at - source_seconds) < 0.2

    page.screenshot(path=artifacts / "web-page.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    # On a phone-sized screen nothing sticks out sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=artifacts / "web-page-phone.png", full_page=True)
    page.set_viewport_size({"width": 1100, "height": 900})
    page.emulate_media(color_scheme="dark")
    page.wait_for_timeout(400)  # Let the colour transitions finish.
    page.screenshot(path=artifacts / "web-page-dark.png", full_page=True)
    page.emulate_media(color_scheme="light")

    with page.expect_download() as info:
        done.get_by_role("link", name="Download the MP3 of holiday clip.mp4").click()
    download = info.value
    assert download.suggested_filename == "holiday clip.mp3"
    expected = api.get(f"/jobs/{job_id}/mp3")
    assert expected.status_code == 200
    assert download.path().read_bytes() == expected.content

    done.get_by_role("button", name="Delete holiday clip.mp4").click()
    expect(done).to_have_count(0)
    # Focus moves to the next file in the list instead of getting lost with the deleted one.
    expect(failed).to_be_focused()
    assert api.get(f"/jobs/{job_id}").status_code == 404
    failed.get_by_role("button", name="Delete no sound.mp4").click()
    expect(page.locator("#jobs-empty")).to_be_visible()
    expect(page.get_by_role("heading", name="Your MP3s")).to_be_focused()
    assert api.get("/jobs").json()["total"] == 0
    api.close()
