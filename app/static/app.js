// The MP3 converter's page: upload videos, follow their jobs, play, download and delete the MP3s.
// It talks to the gateway's JSON API with the session cookie; every request that changes
// something carries the page's CSRF token in the X-CSRF-Token header.
"use strict";

(function () {
  const POLL_MS = 1000;
  const MAX_RETRY_MS = 10000;
  const PARALLEL_UPLOADS = 2;
  const UNFINISHED = new Set(["queued", "converting"]);
  const STATUS_LABELS = {
    queued: "Waiting",
    converting: "Converting",
    done: "Ready",
    failed: "Failed",
    cancelled: "Cancelled",
  };

  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const main = document.getElementById("main");
  const maxBytes = Number(main.dataset.maxBytes) || Infinity;
  const dropzone = document.getElementById("dropzone");
  const fileInput = document.getElementById("file-input");
  const quality = document.getElementById("quality");
  const uploadList = document.getElementById("uploads");
  const jobList = document.getElementById("jobs");
  const jobsHeading = document.getElementById("jobs-heading");
  const jobsCount = document.getElementById("jobs-count");
  const jobsLoading = document.getElementById("jobs-loading");
  const jobsEmpty = document.getElementById("jobs-empty");
  const jobsMore = document.getElementById("jobs-more");
  const banner = document.getElementById("connection");
  const announcer = document.getElementById("announcer");
  const uploadTemplate = document.getElementById("upload-template");
  const jobTemplate = document.getElementById("job-template");

  // --- Formatting ------------------------------------------------------------------------------

  function formatBytes(bytes) {
    if (!Number.isFinite(bytes)) return "";
    const units = ["bytes", "KB", "MB", "GB", "TB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    const digits = unit === 0 || value >= 100 || Number.isInteger(value) ? 0 : 1;
    return `${value.toFixed(digits)} ${units[unit]}`;
  }

  function formatDuration(seconds) {
    const total = Math.round(seconds);
    const h = Math.floor(total / 3600);
    const m = Math.floor((total % 3600) / 60);
    const s = String(total % 60).padStart(2, "0");
    return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
  }

  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  const dateFormat = new Intl.DateTimeFormat(undefined, {
    day: "numeric", month: "short", hour: "2-digit", minute: "2-digit",
  });

  function formatWhen(iso) {
    const when = new Date(iso);
    if (Number.isNaN(when.getTime())) return "";
    const today = new Date().toDateString() === when.toDateString();
    return today ? `today ${timeFormat.format(when)}` : dateFormat.format(when);
  }

  document.getElementById("max-size").textContent = formatBytes(maxBytes);

  // --- Announcements and the connection banner -------------------------------------------------

  let announceTimer = null;

  function announce(message) {
    // Clearing first makes a screen reader read the message even when it repeats the last one.
    announcer.textContent = "";
    clearTimeout(announceTimer);
    announceTimer = setTimeout(() => { announcer.textContent = message; }, 50);
  }

  let connectionLost = false;
  let sessionEnded = false;

  function showBanner(kind, html) {
    banner.className = `banner banner-${kind}`;
    banner.replaceChildren(...html);
    banner.hidden = false;
  }

  function markConnectionLost() {
    if (connectionLost || sessionEnded) return;
    connectionLost = true;
    showBanner("warning", [
      "The connection to the server was lost. Retrying…",
    ]);
  }

  function markConnectionBack() {
    if (!connectionLost) return;
    connectionLost = false;
    banner.hidden = true;
    announce("Connected to the server again.");
  }

  function markSessionEnded() {
    if (sessionEnded) return;
    sessionEnded = true;
    connectionLost = false;
    stopPolling();
    const link = document.createElement("a");
    link.href = "/";
    link.textContent = "Log in again";
    showBanner("error", ["Your session has ended. ", link, " to continue."]);
    link.focus();
  }

  // --- The API ---------------------------------------------------------------------------------

  class NetworkError extends Error {}

  async function api(method, url) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") headers["X-CSRF-Token"] = csrf;
    let response;
    try {
      response = await fetch(url, { method, headers, credentials: "same-origin", cache: "no-store" });
    } catch (error) {
      throw new NetworkError(String(error));
    }
    if (response.status === 401) markSessionEnded();
    return response;
  }

  async function errorMessage(response) {
    try {
      const body = await response.json();
      return (body && body.error && body.error.message) || "";
    } catch (_error) {
      return "";
    }
  }

  // --- Jobs ------------------------------------------------------------------------------------

  const jobElements = new Map();   // job id -> <li>
  const knownStatus = new Map();   // job id -> the status last shown
  let firstRender = true;
  let pollTimer = null;
  let retryMs = POLL_MS;
  let polling = false;

  function stopPolling() {
    clearTimeout(pollTimer);
    pollTimer = null;
  }

  function schedule(ms) {
    stopPolling();
    if (!sessionEnded) pollTimer = setTimeout(refresh, ms);
  }

  let again = false;

  async function refresh() {
    if (sessionEnded) return;
    if (polling) {
      // A refresh asked for during another must still happen: that one may predate a new job.
      again = true;
      return;
    }
    polling = true;
    again = false;
    let next = null;
    try {
      next = await poll();
    } finally {
      polling = false;
    }
    if (again && !sessionEnded) next = 0;
    if (next === null) stopPolling();
    else schedule(next);
  }

  // Fetch and show the jobs; return when to poll again (in ms), or null when nothing is pending.
  async function poll() {
    let response;
    try {
      response = await api("GET", "/jobs?per_page=100");
    } catch (error) {
      if (!(error instanceof NetworkError)) throw error;
      markConnectionLost();
      retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
      return retryMs;
    }
    if (response.status === 401) return null;
    if (!response.ok) {
      // The gateway answered but could not list the jobs (a dependency is down): keep trying.
      const message = await errorMessage(response);
      connectionLost = true;
      showBanner("warning", [`The server has a problem (${message || response.status}). Retrying…`]);
      retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
      return retryMs;
    }
    let page;
    try {
      page = await response.json();
    } catch (_error) {
      markConnectionLost();
      return retryMs;
    }
    markConnectionBack();
    retryMs = POLL_MS;
    const unfinished = renderJobs(page);
    return unfinished || activeUploads > 0 || queue.length > 0 ? POLL_MS : null;
  }

  function renderJobs(page) {
    const jobs = page.jobs || [];
    const seen = new Set();
    let unfinished = false;
    let previous = null;
    for (const job of jobs) {
      seen.add(job.id);
      let item = jobElements.get(job.id);
      if (!item) {
        item = createJob(job);
        jobElements.set(job.id, item);
      }
      // Keep the list in the API's order (newest first) without rebuilding elements, so an
      // audio player that is playing is never interrupted by a refresh.
      const wanted = previous ? previous.nextSibling : jobList.firstChild;
      if (wanted !== item) jobList.insertBefore(item, wanted);
      updateJob(item, job);
      previous = item;
      if (UNFINISHED.has(job.status)) unfinished = true;
    }
    for (const [id, item] of jobElements) {
      if (!seen.has(id)) {
        item.remove();
        jobElements.delete(id);
        knownStatus.delete(id);
      }
    }
    jobsLoading.hidden = true;
    jobsEmpty.hidden = jobs.length > 0;
    const total = page.total || jobs.length;
    jobsCount.textContent = total ? `${total} ${total === 1 ? "file" : "files"}` : "";
    jobsMore.hidden = total <= jobs.length;
    jobsMore.textContent = `Showing the newest ${jobs.length} of ${total}.`;
    firstRender = false;
    return unfinished;
  }

  function createJob(job) {
    const item = jobTemplate.content.firstElementChild.cloneNode(true);
    item.dataset.jobId = job.id;
    item.querySelector(".job-name").textContent = job.filename;
    item.setAttribute("aria-label", job.filename);
    item.querySelector(".job-progress progress").setAttribute("aria-label", `Progress of ${job.filename}`);
    item.querySelector(".job-delete").addEventListener("click", () => deleteJob(job.id, item));
    return item;
  }

  function updateJob(item, job) {
    const status = job.status;
    const before = knownStatus.get(job.id);
    item.dataset.status = status;
    const badge = item.querySelector(".badge");
    badge.textContent = STATUS_LABELS[status] || status;
    badge.className = `badge badge-${status}`;

    const meta = [];
    const when = formatWhen(job.created_at);
    if (when) meta.push(`Added ${when}`);
    if (job.mp3) {
      meta.push(formatDuration(job.mp3.duration_seconds));
      meta.push(formatBytes(job.mp3.bytes));
    }
    item.querySelector(".job-meta").textContent = meta.join(" · ");

    const progressBox = item.querySelector(".job-progress");
    progressBox.hidden = !UNFINISHED.has(status);
    const bar = progressBox.querySelector("progress");
    bar.value = status === "queued" ? 0 : job.progress;
    progressBox.querySelector(".job-percent").textContent =
      status === "queued" ? "Waiting for a worker…" : `${job.progress}%`;

    const error = item.querySelector(".job-error");
    error.hidden = status !== "failed";
    error.textContent = status === "failed" ? `Could not convert: ${job.error || "unknown error"}` : "";

    const done = status === "done" && job.mp3;
    const audio = item.querySelector(".job-audio");
    const download = item.querySelector(".job-download");
    audio.hidden = !done;
    download.hidden = !done;
    if (done) {
      // The API's mp3.url carries the public host; the page always asks its own origin.
      const url = `/jobs/${encodeURIComponent(job.id)}/mp3`;
      if (audio.getAttribute("src") !== url) {
        audio.src = url;
        audio.setAttribute("aria-label", `Play ${job.filename}`);
      }
      download.href = url;
      download.setAttribute("aria-label", `Download the MP3 of ${job.filename}`);
    }
    const del = item.querySelector(".job-delete");
    del.textContent = UNFINISHED.has(status) ? "Cancel" : "Delete";
    del.setAttribute("aria-label", `${del.textContent} ${job.filename}`);

    if (!firstRender && before !== undefined && before !== status) {
      if (status === "done") announce(`${job.filename} is ready to play and download.`);
      else if (status === "failed") announce(`${job.filename} could not be converted: ${job.error}`);
      else if (status === "converting") announce(`${job.filename} is converting.`);
    }
    knownStatus.set(job.id, status);
  }

  async function deleteJob(id, item) {
    const button = item.querySelector(".job-delete");
    const name = item.querySelector(".job-name").textContent;
    const cancelling = UNFINISHED.has(item.dataset.status);
    button.disabled = true;
    let response;
    try {
      response = await api("DELETE", `/jobs/${encodeURIComponent(id)}`);
    } catch (error) {
      if (!(error instanceof NetworkError)) throw error;
      button.disabled = false;
      markConnectionLost();
      schedule(retryMs);
      announce(`Could not delete ${name}: the connection was lost.`);
      return;
    }
    if (response.status !== 204 && response.status !== 404) {
      button.disabled = false;
      if (response.status !== 401) {
        announce(`Could not delete ${name}: ${(await errorMessage(response)) || response.status}`);
      }
      return;
    }
    // Focus moves to the next file in the list, or to the list's heading, never to nowhere.
    const next = item.nextElementSibling || item.previousElementSibling;
    const audio = item.querySelector("audio");
    audio.pause();
    audio.removeAttribute("src");
    item.remove();
    jobElements.delete(id);
    knownStatus.delete(id);
    (next || jobsHeading).focus();
    announce(cancelling ? `Cancelled and deleted ${name}.` : `Deleted ${name}.`);
    refresh();
  }

  // --- Uploads ---------------------------------------------------------------------------------

  const queue = [];
  let activeUploads = 0;

  function chosenOption() {
    const [name, value] = (quality.value || "").split(":");
    return name && value ? { name, value } : null;
  }

  function addFiles(files) {
    const option = chosenOption();
    for (const file of files) {
      const upload = { file, option, xhr: null, item: null };
      upload.item = createUpload(upload);
      uploadList.appendChild(upload.item);
      if (file.size > maxBytes) {
        fail(upload, `“${file.name}” is too large: files can be up to ${formatBytes(maxBytes)}.`, false);
      } else if (file.size === 0) {
        fail(upload, `“${file.name}” is empty.`, false);
      } else {
        setUploadState(upload, "Waiting to upload…");
        queue.push(upload);
      }
    }
    const count = files.length;
    if (count) announce(count === 1 ? `Uploading ${files[0].name}.` : `Uploading ${count} files.`);
    pump();
  }

  function createUpload(upload) {
    const item = uploadTemplate.content.firstElementChild.cloneNode(true);
    item.querySelector(".upload-name").textContent = upload.file.name;
    item.querySelector(".upload-size").textContent = formatBytes(upload.file.size);
    item.querySelector("progress").setAttribute("aria-label", `Upload of ${upload.file.name}`);
    item.querySelector('[data-action="cancel"]').addEventListener("click", () => cancelUpload(upload));
    item.querySelector('[data-action="dismiss"]').addEventListener("click", () => dismissUpload(upload));
    item.querySelector('[data-action="retry"]').addEventListener("click", () => retryUpload(upload));
    return item;
  }

  function setUploadState(upload, text) {
    upload.item.querySelector(".upload-state").textContent = text;
  }

  function setButtons(upload, { cancel, retry, dismiss }) {
    upload.item.querySelector('[data-action="cancel"]').hidden = !cancel;
    upload.item.querySelector('[data-action="retry"]').hidden = !retry;
    upload.item.querySelector('[data-action="dismiss"]').hidden = !dismiss;
  }

  function fail(upload, message, canRetry) {
    upload.item.classList.add("upload-failed");
    const state = upload.item.querySelector(".upload-state");
    state.textContent = message;
    state.setAttribute("role", "alert");
    upload.item.querySelector("progress").hidden = true;
    setButtons(upload, { cancel: false, retry: canRetry, dismiss: true });
  }

  function pump() {
    while (activeUploads < PARALLEL_UPLOADS && queue.length) {
      send(queue.shift());
    }
  }

  function send(upload) {
    activeUploads += 1;
    const { file, item } = upload;
    const bar = item.querySelector("progress");
    item.classList.remove("upload-failed");
    item.classList.add("upload-active");
    bar.hidden = false;
    bar.value = 0;
    setButtons(upload, { cancel: true, retry: false, dismiss: false });
    setUploadState(upload, "Starting…");

    const form = new FormData();
    if (upload.option) form.append(upload.option.name, upload.option.value);
    form.append("file", file, file.name);

    const xhr = new XMLHttpRequest();
    upload.xhr = xhr;
    xhr.open("POST", "/upload");
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRF-Token", csrf);
    xhr.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable || !event.total) return;
      // `total` counts the multipart framing too; show the share of the file itself.
      const share = event.loaded / event.total;
      bar.value = Math.round(share * 100);
      const sent = Math.min(file.size, Math.round(share * file.size));
      setUploadState(upload, `${formatBytes(sent)} of ${formatBytes(file.size)} sent · ${bar.value}%`);
    });
    xhr.upload.addEventListener("load", () => setUploadState(upload, "Sent; the server is checking the file…"));
    xhr.addEventListener("load", () => finished(upload, xhr.status, parseBody(xhr)));
    xhr.addEventListener("error", () => finished(upload, 0, null));
    xhr.addEventListener("abort", () => finished(upload, -1, null));
    xhr.send(form);
  }

  function parseBody(xhr) {
    try {
      return JSON.parse(xhr.responseText);
    } catch (_error) {
      return null;
    }
  }

  function finished(upload, status, body) {
    activeUploads -= 1;
    upload.xhr = null;
    upload.item.classList.remove("upload-active");
    const name = upload.file.name;
    const message = (body && body.error && body.error.message) || "";
    if (status === 202) {
      upload.item.remove();
      announce(`${name} uploaded; converting.`);
      refresh();
    } else if (status === -1) {
      upload.item.remove();
      announce(`Upload of ${name} cancelled.`);
    } else if (status === 0) {
      fail(upload, `The connection was lost while uploading “${name}”. Check your network, then try again.`, true);
      markConnectionLost();
      schedule(retryMs);
    } else if (status === 413) {
      fail(upload, `“${name}” is too large: files can be up to ${formatBytes(maxBytes)}.`, false);
    } else if (status === 415) {
      fail(upload, `“${name}” is not a video or audio file, so it cannot be converted. Choose a video such as MP4, MKV, WebM or MOV.`, false);
    } else if (status === 401) {
      fail(upload, `“${name}” was not uploaded: your session has ended.`, false);
      markSessionEnded();
    } else if (status === 403) {
      fail(upload, `“${name}” was refused: this page is out of date. Reload it and try again.`, false);
    } else if (status === 503 || status === 502 || status === 504) {
      fail(upload, `The server cannot take “${name}” right now${message ? ` (${message})` : ""}. Try again in a minute.`, true);
    } else {
      fail(upload, `“${name}” was refused${message ? `: ${message}` : ` (error ${status})`}.`, false);
    }
    pump();
  }

  function cancelUpload(upload) {
    const index = queue.indexOf(upload);
    if (index >= 0) {
      queue.splice(index, 1);
      upload.item.remove();
      announce(`Upload of ${upload.file.name} cancelled.`);
    } else if (upload.xhr) {
      upload.xhr.abort();
    }
    fileInput.focus();
  }

  function dismissUpload(upload) {
    const next = upload.item.nextElementSibling || upload.item.previousElementSibling;
    upload.item.remove();
    const target = next && next.querySelector("button:not([hidden])");
    (target || fileInput).focus();
  }

  function retryUpload(upload) {
    upload.item.querySelector(".upload-state").removeAttribute("role");
    setButtons(upload, { cancel: true, retry: false, dismiss: false });
    setUploadState(upload, "Waiting to upload…");
    queue.push(upload);
    pump();
  }

  // --- The drop zone and the file picker -------------------------------------------------------

  fileInput.addEventListener("change", () => {
    addFiles(Array.from(fileInput.files || []));
    // Choosing the same file again must fire `change` again.
    fileInput.value = "";
  });

  let dragDepth = 0;
  function hasFiles(event) {
    return event.dataTransfer && Array.from(event.dataTransfer.types || []).includes("Files");
  }
  dropzone.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    dragDepth += 1;
    dropzone.classList.add("dropzone-over");
  });
  dropzone.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  dropzone.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) dropzone.classList.remove("dropzone-over");
  });
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    dragDepth = 0;
    dropzone.classList.remove("dropzone-over");
    addFiles(Array.from((event.dataTransfer && event.dataTransfer.files) || []));
  });
  // A file dropped beside the zone must not make the browser navigate away from the page.
  window.addEventListener("dragover", (event) => event.preventDefault());
  window.addEventListener("drop", (event) => event.preventDefault());

  window.addEventListener("beforeunload", (event) => {
    if (activeUploads > 0 || queue.length > 0) event.preventDefault();
  });
  window.addEventListener("online", () => refresh());
  window.addEventListener("offline", () => markConnectionLost());

  refresh();
})();
