"""Turn a run's results (bench/out/results.json) into bench/RESULTS.md and the realtime chart."""

from __future__ import annotations

import shutil
from pathlib import Path

from bench.inputs import OUT
from bench.procs import MB, median

HERE = Path(__file__).resolve().parent
FINDINGS = HERE / "FINDINGS.md"

PATHS = {
    "bare": "(a) bare ffmpeg",
    "course": "(b) moviepy (course)",
    "service": "(c) service",
    "bare-reencode": "(a') bare ffmpeg, forced re-encode",
    "service-reencode": "(c') service, forced re-encode (`quality=4`)",
}
MAIN_INPUTS = ("short", "long", "long-mp3", "mkv", "clip")


def med(results: dict, key: str, path: str, field: str) -> float:
    return median(r[field] for r in results["paths"].get(key, {}).get(path, []) if field in r)


def _s(x: float) -> str:
    return "-" if x != x else (f"{x:.3f}" if x < 10 else f"{x:.2f}")


def _mb(x: float) -> str:
    return "-" if x != x or not x else f"{x / MB:.0f}"


def _ratio(x: float) -> str:
    return "-" if x != x else f"{x:.2f}x"


def _load(results: dict) -> float:
    return median(
        r["load1"]
        for paths in results["paths"].values()
        for runs in paths.values()
        for r in runs
        if "load1" in r
    )


def targets(results: dict) -> list[tuple[str, str, str, bool]]:
    """Return (target, limit, measured, passed) for every target of the issue."""
    rows: list[tuple[str, str, str, bool]] = []
    p = results["paths"]

    def r(key: str, a: str, b: str, field: str) -> float:
        return med(results, key, a, field) / med(results, key, b, field)

    def runs(key: str, a: str, b: str, field: str) -> str:
        # Runs of (a), (b) and (c) are interleaved: run i of each saw about the same neighbours.
        pairs = zip(p[key][a], p[key][b], strict=False)
        return " (runs: " + ", ".join(f"{x[field] / y[field]:.2f}" for x, y in pairs) + ")"

    label = {k: v["label"] for k, v in results["inputs"].items()}
    for field, what in (
        ("wall", "end-to-end time (upload answered → MP3 stored)"),
        ("cpu", "worker CPU per job (whole process tree)"),
    ):
        for key in ("short", "long"):
            x = r(key, "service", "bare", field)
            rows.append(
                (
                    f"{what} / bare ffmpeg, {label[key]}",
                    "≤ 1.10x",
                    _ratio(x) + runs(key, "service", "bare", field),
                    x <= 1.10,
                )
            )
    x = r("long", "course", "service", "cpu")
    rows.append(
        (
            f"CPU of moviepy (b) / service (c), {label['long']}",
            "≥ 1.40x",
            _ratio(x) + runs("long", "course", "service", "cpu"),
            x >= 1.40,
        )
    )
    series = results["rss_series"]
    hwm = max((s["pool_hwm"] for s in series), default=0)
    rows.append(
        (
            "worker peak RSS: the pool process that runs the conversion (VmHWM)",
            "≤ 100 MB",
            f"{hwm / MB:.1f} MB",
            hwm <= 100 * MB,
        )
    )
    if len(series) >= 2:
        # A leak raises the RSS from one run of a job to the next: each input's runs follow one
        # another in the series. Between inputs the RSS moves with the allocator's layout, under
        # the peak, by a few MB either way (bench/FINDINGS.md, fifth pass); the peak itself must
        # stop growing once the largest job has run.
        repeats: dict[str, list[int]] = {}
        for s in series:
            repeats.setdefault(s["input"], []).append(s["pool_rss"])
        grown = {k: v[-1] - v[0] for k, v in repeats.items() if len(v) > 1}
        worst = max(grown, key=grown.__getitem__)
        first = next((i for i, s in enumerate(series) if s["input"] == "long"), 0)
        peak_growth = series[-1]["pool_hwm"] - series[first]["pool_hwm"]
        rows.append(
            (
                "worker memory growth (pool process): RSS from the first to the last run of each "
                f"input (the most: {label[worst]}); peak after job {first + 1} (first "
                f"{label['long']}) → after job {len(series)}",
                "not growing (≤ 2 MB; peak ≤ 5 MB)",
                f"{grown[worst] / MB:+.1f} MB; peak {peak_growth / MB:+.1f} MB",
                grown[worst] <= 2 * MB and peak_growth <= 5 * MB,
            )
        )
    copy, enc = (
        med(results, "long-mp3", "service", "wall"),
        med(results, "long-mp3", "service-reencode", "wall"),
    )
    bare_x = med(results, "long-mp3", "bare-reencode", "wall") / med(
        results, "long-mp3", "bare", "wall"
    )
    # What the job cannot go below: the whole video read out of GridFS (bench/streaming.py,
    # the 600 s MP4 of the same size), which ffmpeg's stream copy overlaps but cannot skip.
    step_copy, step_enc = (
        med(results, "long-mp3", path, "ffmpeg_store_s") for path in ("service", "service-reencode")
    )
    floor = med(results, "stream-long", "sequential", "copy_s") if "stream-long" in p else None
    bound = (
        f"; copying a video of that size out of GridFS alone takes {floor:.2f} s, which caps "
        f"the job ratio at {_ratio(enc / floor)}"
        if floor
        else ""
    )
    rows.append(
        (
            f"MP3 audio stream-copied: re-encode / copy job time, {label['long-mp3']}",
            "≥ 15x",
            f"{_ratio(enc / copy)} (bare ffmpeg: {_ratio(bare_x)}; the conversion step "
            f"(copy out of GridFS and ffmpeg, overlapping, + MP3 stored): "
            f"{_ratio(step_enc / step_copy)}{bound})",
            enc / copy >= 15,
        )
    )
    up = med(results, "upload", "service", "mbps") / med(results, "upload", "raw", "mbps")
    rows.append(
        (
            "upload throughput: HTTP upload / raw `GridFSBucket.upload_from_stream`",
            "≥ 0.70x",
            _ratio(up),
            up >= 0.70,
        )
    )
    down = med(results, "download", "service", "mbps") / med(results, "download", "raw", "mbps")
    rows.append(
        (
            "download throughput: `GET /jobs/<id>/mp3` / raw GridFS read",
            "≥ 0.80x",
            _ratio(down),
            down >= 0.80,
        )
    )
    big = results.get("big_upload")
    if big:
        rows.append(
            (
                f"gateway RSS growth during a {big['bytes'] / 1024**3:.2g} GiB upload "
                "(all gunicorn processes)",
                "≤ 64 MB",
                f"{big['tree_growth'] / MB:.1f} MB",
                big["tree_growth"] <= 64 * MB,
            )
        )
    over = med(results, "clip", "service", "wall") - med(results, "clip", "bare", "wall")
    rows.append(
        (
            f"per-job overhead, {label['clip']} (job time - bare ffmpeg time)",
            "≤ 300 ms",
            f"{over * 1000:.0f} ms",
            over <= 0.300,
        )
    )
    if "parallel" in p:
        par = med(results, "parallel", "service", "throughput") / med(
            results, "parallel", "bare", "throughput"
        )
        rows.append(
            (
                "throughput of two workers / two bare ffmpeg in parallel",
                "≥ 0.85x",
                _ratio(par),
                par >= 0.85,
            )
        )
    return rows


def chart(results: dict, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in MAIN_INPUTS if k in results["paths"] and k != "clip"]
    series = [
        ("bare", "(a) bare ffmpeg", "wall"),
        ("course", "(b) moviepy (course)", "wall"),
        ("service", "(c) service: upload answered → MP3 stored", "wall"),
        ("service", "(c) service: upload begun → MP3 stored", "total"),
    ]
    from matplotlib.ticker import FuncFormatter

    cpu_series = [
        ("bare", "(a) bare ffmpeg", "cpu"),
        ("course", "(b) moviepy (course)", "cpu"),
        ("service", "(c) service: the worker's process tree", "cpu"),
    ]
    fig, axes = plt.subplots(2, 1, figsize=(10, 9))
    for ax, rows, ylabel in (
        (axes[0], series, "realtime factor: media seconds per wall second"),
        (axes[1], cpu_series, "media seconds per CPU second"),
    ):
        width = 0.8 / len(rows)
        for i, (path, name, field) in enumerate(rows):
            values = [results["inputs"][k]["seconds"] / med(results, k, path, field) for k in keys]
            bars = ax.bar(
                [x + (i - (len(rows) - 1) / 2) * width for x in range(len(keys))],
                values,
                width,
                label=name,
            )
            ax.bar_label(bars, labels=[f"{v:.0f}" for v in values], fontsize=7, padding=1)
        ax.set_xticks(range(len(keys)), [results["inputs"][k]["label"] for k in keys], fontsize=8)
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_ylabel(ylabel + " (log)", fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3, which="both")
    m = results["machine"]
    axes[0].set_title(
        f"Video → MP3, median of {results['runs']} runs — {m['cpu']}, "
        f"{m['cores']} cores, shared (load ~{_load(results):.0f})",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def render(results: dict, png_name: str) -> str:
    m, label = results["machine"], {k: v["label"] for k, v in results["inputs"].items()}
    lines = [
        "# Benchmark: video → MP3, side by side",
        "",
        "Written by `make bench` (`python -m bench`); do not edit by hand: the analysis at the end "
        "comes from bench/FINDINGS.md."
        + (
            " **This was a `--quick` run: short inputs, one run; "
            "its figures are not the benchmark's.**"
            if results["quick"]
            else ""
        ),
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        f"| CPU | {m['cpu']} — {m['cores']} logical cores ({m['physical_cores']} physical) |",
        f"| RAM | {m['ram_gib']} GiB |",
        f"| ffmpeg | {m['ffmpeg'].split(' Copyright')[0]} (imageio-ffmpeg's binary, the one the "
        "service runs) |",
        f"| Python, kernel | {m['python']}, Linux {m['kernel']} |",
        f"| code measured | {m['git']} |",
        f"| run | {m['date']}, {results['minutes']:.1f} min, median of {results['runs']} runs; "
        f"1-min load average {m['load_before'][0]} before, {m.get('load_after', ['?'])[0]} after, "
        f"median {_load(results):.1f} during the measurements (the machine is shared: other "
        "people's work runs alongside, so wall times carry their noise; CPU times much less) |",
        "",
        "Inputs (generated by bench/inputs.py, cached in bench/out/inputs): 1280x720 30 fps H.264 "
        "(x264 `ultrafast`, 3 Mbit/s) with 48 kHz stereo audio — "
        + "; ".join(f"{v['label']}: {v['bytes'] / MB:.0f} MB" for k, v in results["inputs"].items())
        + ".",
        "",
        "Settings are the service's defaults everywhere: (a) runs the exact command that "
        "`tasks.ffmpeg.command()` builds (LAME VBR `-q:a 4`; `-c:a copy` for MP3 audio), without "
        "`-progress`; (b) is `VideoFileClip(path, audio_fps=48000).audio.write_audiofile(out, "
        "ffmpeg_params=['-q:a', '4'])` — the course's call, with the same encoder settings and "
        "sample rate so that only the way of working differs; moviepy is imported before the "
        "clock starts; (c) is a real upload over HTTP to the gateway (gunicorn), RabbitMQ, "
        "SecantusDB and one `celery -A tasks worker --concurrency 1`. Every measured run starts "
        "once the stack's own processes are idle (under 10 % of a core for 0.25 s), so no run "
        "shares the cores with the storage work the previous one left behind.",
        "",
        "## Targets",
        "",
        "| target | limit | measured | |",
        "| --- | --- | --- | --- |",
    ]
    rows = targets(results)
    lines += [
        f"| {t} | {lim} | {got} | {'**pass**' if ok else '**MISS**'} |" for t, lim, got, ok in rows
    ]
    passed = sum(ok for *_, ok in rows)
    lines += ["", f"{passed} of {len(rows)} targets pass.", ""]

    lines += [
        "## Side by side",
        "",
        "Wall time: (a) and (b) the conversion process; (c) from the upload's 202 to the MP3 "
        "stored (the job's `finished_at`). CPU: (a) ffmpeg's rusage; (b) the Python process and "
        "every ffmpeg it started; (c) the worker's whole process tree (main process, pool "
        "process, every ffmpeg it started), from before the upload until its email was sent and "
        "its video deleted. Peak memory: the largest sum of PSS over that same tree, sampled "
        "every 0.5 s (PSS splits shared pages, so the forked pool process and its parent are "
        "not counted twice; reading it more often slowed the job it measured), RSS every "
        "50 ms; for (a) ffmpeg's VmHWM. MB here are MiB.",
        "",
        f"![realtime factor per path and input]({png_name})",
        "",
        "| input | path | wall s | CPU s | peak memory MB | realtime x | wall / (a) | CPU / (a) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key in MAIN_INPUTS:
        if key not in results["paths"]:
            continue
        seconds = results["inputs"][key]["seconds"]
        base_wall, base_cpu = (med(results, key, "bare", f) for f in ("wall", "cpu"))
        for path in ("bare", "bare-reencode", "course", "service", "service-reencode"):
            if path not in results["paths"][key]:
                continue
            wall, cpu, peak = (med(results, key, path, f) for f in ("wall", "cpu", "peak"))
            lines.append(
                f"| {label[key]} | {PATHS[path]} | {_s(wall)} | {_s(cpu)} | {_mb(peak)} | "
                f"{seconds / wall:.0f} | {_ratio(wall / base_wall)} | "
                f"{_ratio(cpu / base_cpu)} |"
            )
    lines += [
        "",
        "Ratios the issue asks for:",
        "",
        "| input | (c)/(a) wall | (c)/(a) CPU | (b)/(c) wall | (b)/(c) CPU |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key in ("short", "long", "long-mp3", "mkv", "clip"):
        if key not in results["paths"] or "course" not in results["paths"][key]:
            continue
        w = {p: med(results, key, p, "wall") for p in ("bare", "course", "service")}
        c = {p: med(results, key, p, "cpu") for p in ("bare", "course", "service")}
        lines.append(
            f"| {label[key]} | {_ratio(w['service'] / w['bare'])} | "
            f"{_ratio(c['service'] / c['bare'])} | {_ratio(w['course'] / w['service'])} | "
            f"{_ratio(c['course'] / c['service'])} |"
        )

    lines += [
        "",
        "## Where the service's time goes (medians)",
        "",
        "`queue` = 202 → job claimed by the worker; `start` = claimed → the copy and ffmpeg "
        "started; `convert+store` = the task's own timing of the copy out of GridFS and "
        "ffmpeg, which overlap (ffmpeg reads the temporary file as the copy writes it, "
        "tasks/video_copy.py), and of the MP3's upload to GridFS. ffmpeg runs once, and its "
        "log describes the input: no probe runs before it; for MP3 audio a first run stops at "
        "the description and a stream copy follows. Upload = the HTTP request, begun → 202.",
        "",
        "| input | upload s | upload MB/s | queue s | start s | convert+store s | job s | "
        "(a) s | worker CPU s | (a) CPU s | MongoDB-wire server CPU s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key in MAIN_INPUTS:
        for path in ("service", "service-reencode"):
            rec = results["paths"].get(key, {}).get(path)
            if not rec:
                continue
            g = {f: median(r[f] for r in rec) for f in rec[0] if isinstance(rec[0][f], int | float)}
            base = "bare-reencode" if path == "service-reencode" else "bare"
            name = label[key] + (" (re-encode)" if path == "service-reencode" else "")
            lines.append(
                f"| {name} | {_s(g['upload_s'])} | {g['upload_mbps']:.0f} | {_s(g['queue_s'])} | "
                f"{_s(g['worker_s'] - g['ffmpeg_store_s'])} | {_s(g['ffmpeg_store_s'])} | "
                f"{_s(g['wall'])} | {_s(med(results, key, base, 'wall'))} | {_s(g['cpu'])} | "
                f"{_s(med(results, key, base, 'cpu'))} | {_s(g['mongo_cpu'])} |"
            )

    lines += [
        "",
        "Worker CPU split (medians, s): main process (consumer, events, heartbeats) / pool "
        "process (the task's Python) / ffmpeg (the pool process's children), against one bare "
        "ffmpeg, and the cost of one probe (`ffmpeg -i IN`), which the task no longer runs: "
        "ffmpeg's own log of the conversion describes the input.",
        "",
        "| input | main | pool | ffmpeg | (a) ffmpeg | one probe: CPU s / wall s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key in MAIN_INPUTS:
        if "service" not in results["paths"].get(key, {}):
            continue
        parts = [med(results, key, "service", f) for f in ("cpu_main", "cpu_pool", "cpu_ffmpeg")]
        probe = (med(results, key, "probe", "cpu"), med(results, key, "probe", "wall"))
        lines.append(
            f"| {label[key]} | {' | '.join(_s(x) for x in parts)} | "
            f"{_s(med(results, key, 'bare', 'cpu'))} | {_s(probe[0])} / {_s(probe[1])} |"
        )

    streams = [k for k in ("long", "mkv") if f"stream-{k}" in results["paths"]]
    if streams:
        lines += [
            "",
            "## Experiment: ffmpeg reading from GridFS while the copy runs",
            "",
            "bench/streaming.py, on the same stored video with the service's own ffmpeg "
            "command: `sequential` is the worker's way before the fourth pass (GridFS → "
            "temporary file, then ffmpeg on the file); `streamed` writes the GridFS chunks into "
            "ffmpeg's stdin from a thread; `followed` is the worker's way now "
            "(tasks/video_copy.py): ffmpeg reads the temporary file while the copy writes it. "
            "An MP4 with its index at the end (as ffmpeg and many cameras write it) is written "
            "(or sent) as ftyp, moov with its chunk offsets moved, then mdat: a faststart on "
            "the fly, no re-encoding. The MKV goes as it is.",
            "",
            "| input | sequential wall s | of which copy s | streamed wall s | followed wall s | "
            "gain (followed) | sequential CPU s | streamed CPU s | followed CPU s | "
            "MP3 byte-identical |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        ]
        for key in streams:
            k = f"stream-{key}"
            ways = ("sequential", "streamed", "followed")
            wall = {w: med(results, k, w, "wall") for w in ways}
            cpu = {w: med(results, k, w, "cpu") for w in ways}
            same = all(r.get("identical") for w in ways[1:] for r in results["paths"][k][w])
            lines.append(
                f"| {label[key]} | {_s(wall['sequential'])} | "
                f"{_s(med(results, k, 'sequential', 'copy_s'))} | {_s(wall['streamed'])} | "
                f"{_s(wall['followed'])} | {_ratio(wall['sequential'] / wall['followed'])} | "
                f"{_s(cpu['sequential'])} | {_s(cpu['streamed'])} | {_s(cpu['followed'])} | "
                f"{'yes' if same else '**no**'} |"
            )

    lines += ["", "## Memory", ""]
    series = results["rss_series"]
    if series:
        lines += [
            "Worker, after each measured job in order (MB): pool process RSS / its peak (VmHWM) / "
            "main process RSS. The pool process is the one that runs the task and starts ffmpeg; "
            "the main process consumes from RabbitMQ.",
            "",
            "| job | input | pool RSS | pool peak | main RSS |",
            "| ---: | --- | ---: | ---: | ---: |",
        ]
        for i, s in enumerate(series, 1):
            lines.append(
                f"| {i} | {s['input']} | {_mb(s['pool_rss'])} | {_mb(s['pool_hwm'])} | "
                f"{_mb(s['main_rss'])} |"
            )
        pids = {s["pool_pid"] for s in series}
        lines += [
            "",
            f"Pool processes seen: {len(pids)} (a new pid would mean the pool process "
            "was replaced).",
        ]
        ff = [
            r["ffmpeg_peak"]
            for k in MAIN_INPUTS
            for r in results["paths"].get(k, {}).get("service", [])
        ]
        if ff:
            lines += [f"ffmpeg's own peak RSS inside the worker (sampled): {max(ff) / MB:.0f} MB."]
    big = results.get("big_upload")
    if big:
        lines += [
            "",
            f"Gateway during a {big['bytes'] / 1024**3:.2g} GiB upload streamed from a generator "
            f"(never in the client's memory): {big['processes']} gunicorn processes, "
            f"{big['tree_before'] / MB:.0f} MB before, peak {big['tree_peak'] / MB:.0f} MB, growth "
            f"{big['tree_growth'] / MB:.1f} MB (largest of one process: "
            f"{big['max_process_growth'] / MB:.1f} MB); {big['mbps']:.0f} MB/s; gateway CPU "
            f"{big['gateway_cpu']:.1f} s ({big['gateway_cpu'] / (big['bytes'] / 1024**3):.1f} s "
            "per GiB).",
        ]

    lines += [
        "",
        "## Throughput",
        "",
        "| | service MB/s | raw GridFS MB/s | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for what, name in (
        ("upload", f"upload of {label['long']}"),
        ("download", "download of the same bytes stored as an MP3"),
    ):
        s, r = med(results, what, "service", "mbps"), med(results, what, "raw", "mbps")
        lines.append(f"| {name} | {s:.0f} | {r:.0f} | {_ratio(s / r)} |")
    if "parallel" in results["paths"]:
        s, b = (med(results, "parallel", p, "throughput") for p in ("service", "bare"))
        one_s = results["inputs"]["short"]["seconds"] / med(results, "short", "service", "wall")
        one_b = results["inputs"]["short"]["seconds"] / med(results, "short", "bare", "wall")
        lines += [
            "",
            f"Two workers on `convert` (two processes, `--concurrency 1` each), with a third on "
            "`notify` as production runs them (it sends the emails and deletes the videos, on "
            f"the same cores), against two bare ffmpeg processes, 4 jobs of {label['short']} "
            "per round, from the moment both workers start consuming to the last MP3 stored "
            "(media seconds per wall second):",
            "",
            "| | two in parallel | one at a time | scaling |",
            "| --- | ---: | ---: | ---: |",
            f"| (a) bare ffmpeg | {b:.0f} | {one_b:.0f} | {b / one_b:.2f}x |",
            f"| (c) service | {s:.0f} | {one_s:.0f} | {s / one_s:.2f}x |",
            f"| (c)/(a) | {_ratio(s / b)} | {_ratio(one_s / one_b)} | |",
        ]

    profiles = results.get("profiles") or {}
    if profiles:
        lines += [
            "",
            "## Profiles (py-spy, one extra run each, not counted above)",
            "",
            "Each sample is charged to the innermost frame in the service's own code, and "
            "the most frequent innermost frame under it is shown. Worker profiles include "
            "idle time (wall clock); gateway and MongoDB-wire server profiles are CPU only. "
            "Raw stacks: bench/out/run/profiles/.",
            "",
        ]
        for name, prof in profiles.items():
            if not prof["samples"]:
                continue
            lines += [
                f"**{name}** ({prof['samples']} samples)",
                "",
                "| share | service frame | innermost frame |",
                "| ---: | --- | --- |",
            ]
            lines += [
                f"| {share:.0%} | `{ours}` | `{leaf}` |" for ours, share, leaf in prof["ours"]
            ]
            lines.append("")
    if FINDINGS.exists():
        lines += ["", FINDINGS.read_text().strip(), ""]
    return "\n".join(lines).rstrip() + "\n"


def write(results: dict) -> Path:
    """Write the report: bench/RESULTS.md and bench/realtime.png for a full run, else under out/."""
    if results["quick"]:
        md, png_name = OUT / "RESULTS-quick.md", "realtime-quick.png"
        png = OUT / png_name
    else:
        md, png, png_name = HERE / "RESULTS.md", OUT / "realtime.png", "realtime.png"
    OUT.mkdir(parents=True, exist_ok=True)
    chart(results, png)
    if not results["quick"]:
        shutil.copyfile(png, HERE / "realtime.png")
    md.write_text(render(results, png_name))
    return md
