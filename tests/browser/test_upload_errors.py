"""What the page says when an upload cannot be taken: not a video, too large, no connection."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import SMALL_LIMIT, log_in
from tests.support.media import make_video

pytestmark = pytest.mark.browser

#: Drops a text file on the drop zone the way a browser does when a file is dragged onto it.
DROP_TEXT_FILE = """() => {
  const data = new DataTransfer();
  data.items.add(new File(["shopping list: milk, eggs\\n"], "notes.txt", {type: "text/plain"}));
  const zone = document.getElementById("dropzone");
  for (const type of ["dragenter", "dragover", "drop"]) {
    zone.dispatchEvent(new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true}));
  }
}"""


def test_not_a_video_shows_the_415_message(page, live_gateway, user, tmp_path, artifacts):
    log_in(page, live_gateway, user)
    with page.expect_response(f"{live_gateway}/upload") as answer:
        page.evaluate(DROP_TEXT_FILE)
    assert answer.value.status == 415
    dropped = page.locator(".upload", has_text="notes.txt")
    expect(dropped.get_by_role("alert")).to_contain_text(
        "“notes.txt” is not a video or audio file, so it cannot be converted"
    )

    # A name that claims to be a video does not fool the server, which reads the bytes.
    fake = tmp_path / "fake.mp4"
    fake.write_text("this is not a video, whatever its name says\n" * 20)
    # Picked with the keyboard alone: Tab reaches the file picker, Space opens it.
    for _ in range(8):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "file-input":
            break
    expect(page.locator("#file-input")).to_be_focused()
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    with page.expect_response(f"{live_gateway}/upload") as answer:
        chooser.value.set_files(str(fake))
    assert answer.value.status == 415
    picked = page.locator(".upload", has_text="fake.mp4")
    expect(picked.get_by_role("alert")).to_contain_text("is not a video or audio file")
    expect(picked.get_by_role("button", name="Try again")).to_be_hidden()
    page.screenshot(path=artifacts / "web-page-upload-errors.png", full_page=True)

    picked.get_by_role("button", name="Dismiss").click()
    expect(picked).to_have_count(0)
    expect(dropped.get_by_role("button", name="Dismiss")).to_be_focused()
    dropped.get_by_role("button", name="Dismiss").click()
    expect(page.locator("#uploads .upload")).to_have_count(0)
    assert page.request.get(f"{live_gateway}/jobs").json()["total"] == 0


def test_too_large_shows_the_limit(page, small_gateway, user, tmp_path):
    big = tmp_path / "long film.mp4"
    big.write_bytes(b"\x00\x00\x00\x18ftypisom" + b"\x00" * (SMALL_LIMIT + 1))
    log_in(page, small_gateway.url, user)
    expect(page.locator("#file-hint")).to_contain_text("Up to 100 KB each")
    page.set_input_files("#file-input", str(big))
    expect(page.locator(".upload").get_by_role("alert")).to_have_text(
        "“long film.mp4” is too large: files can be up to 100 KB."
    )
    assert page.request.get(f"{small_gateway.url}/jobs").json()["total"] == 0


def test_lost_connection_is_reported_and_recovered(page, small_gateway, worker, user, tmp_path):
    clip = make_video(tmp_path, "mp4", name="interview.mp4")
    log_in(page, small_gateway.url, user)
    small_gateway.stop()
    try:
        page.set_input_files("#file-input", str(clip))
        upload = page.locator(".upload", has_text="interview.mp4")
        expect(upload.get_by_role("alert")).to_contain_text(
            "The connection was lost while uploading “interview.mp4”"
        )
        expect(page.locator("#connection")).to_have_text(
            "The connection to the server was lost. Retrying…"
        )
    finally:
        small_gateway.start()
    # The page notices by itself that the server is back, and the upload can be tried again.
    expect(page.locator("#connection")).to_be_hidden(timeout=20_000)
    upload.get_by_role("button", name="Try again").click()
    expect(upload).to_have_count(0)
    job = page.locator(".job", has_text="interview.mp4")
    expect(job.locator(".badge")).to_have_text("Ready", timeout=60_000)
