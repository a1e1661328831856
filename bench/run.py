"""Run every measurement of issue 7 in one go and write bench/RESULTS.md and bench/realtime.png.

Order of a run (the stack stays up throughout):

1. gateway only (no worker yet): warm-up uploads, and download throughput against a raw GridFS
   read;
2. one worker (`--concurrency 1`, as production's convert Deployment): for each input, the runs
   of (a) bare ffmpeg, (b) moviepy and (c) the service are interleaved, so a neighbour's load
   on this shared machine hits all three alike; raw GridFS uploads interleave with the service's
   uploads of the long video; then the per-job overhead on the 5 s clip;
3. py-spy on the worker's pool process during one more job of each profiled input, and on the
   gateway during one more upload (not counted in any figure);
4. two workers against two bare ffmpeg processes in parallel;
5. the gateway's memory while a 1 GiB body streams in from a generator (no worker consuming).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from bench import inputs as inputs_mod
from bench import machine, report
from bench.inputs import OUT, Input
from bench.procs import MB, Sampler, cpu_breakdown, run_child, status_kb, tree_cpu
from bench.profile import Recorder, summarize
from bench.stack import Stack, dump

if TYPE_CHECKING:
    from tasks.ffmpeg import Probe

SAMPLE_RATE = 48000
T = TypeVar("T")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# --- (a) bare ffmpeg -------------------------------------------------------------------------


def service_argv(
    src: Path,
    dst: Path,
    *,
    quality: int | None = None,
    info: Probe | None = None,
    length: int | None = None,
) -> list[str]:
    """The service's own ffmpeg command for `src` (tasks/ffmpeg.py), without `-progress pipe:1`.

    `info` is the input's probe (made here when not given); `length` as `ffmpeg.command` takes it.
    """
    from tasks import ffmpeg

    info = info or ffmpeg.probe(src)
    argv = ffmpeg.command(src, dst, info, bitrate=None, quality=quality, length=length)
    at = argv.index("-progress")
    del argv[at : at + 2]
    return argv


def bare(src: Path, dst: Path, *, quality: int | None = None) -> dict:
    argv = service_argv(src, dst, quality=quality)
    # The service's command logs at `info` (it reads the input's description there): kept in a
    # file of its own rather than interleaved with the benchmark's progress.
    err = dst.with_suffix(".log")
    with err.open("wb") as fh:
        run = run_child(argv, stderr=fh)
    if run.returncode != 0 or not dst.exists():
        raise RuntimeError(f"bare ffmpeg failed ({run.returncode}): {argv}; its log: {err}")
    return {
        "wall": run.wall,
        "cpu": run.cpu,
        "peak": run.peak,
        "copied": "copy" in argv,
        "out_bytes": dst.stat().st_size,
    }


def probe_cost(src: Path) -> dict:
    """One run of the probe the worker makes before (and, on the MP3, after) each conversion."""
    from tasks import ffmpeg

    run = run_child(
        [ffmpeg.binary(), "-hide_banner", "-nostdin", *ffmpeg.SAFE_INPUT, "-i", f"file:{src}"],
        stderr=subprocess.DEVNULL,
    )
    return {"wall": run.wall, "cpu": run.cpu, "peak": run.peak}


# --- (b) the course's moviepy approach -------------------------------------------------------


def course(src: Path, dst: Path, logs: Path) -> dict:
    out = logs / "moviepy.out"
    with out.open("wb") as stdout, (logs / "moviepy.log").open("ab") as stderr:
        run = run_child(
            [sys.executable, "-m", "bench.moviepy_job", str(src), str(dst), str(SAMPLE_RATE)],
            every=0.05,
            stdout=stdout,
            stderr=stderr,
            cwd=str(machine.ROOT),
        )
    if run.returncode != 0:
        raise RuntimeError(f"moviepy failed ({run.returncode}); see {logs / 'moviepy.log'}")
    inner = json.loads(out.read_text().strip().splitlines()[-1])
    return {
        "wall": inner["wall"],
        "cpu": inner["cpu"],
        "peak": run.tree_peak,
        "python_peak": inner["python_hwm"],
        "process_wall": run.wall,
        "process_cpu": run.cpu,
        "rss_after_import": inner["rss_after_import"],
        "out_bytes": dst.stat().st_size,
    }


# --- (c) the service -------------------------------------------------------------------------


class Bench:
    def __init__(self, stack: Stack, inputs: dict[str, Input], *, runs: int, quick: bool) -> None:
        self.stack, self.inputs, self.runs, self.quick = stack, inputs, runs, quick
        self.db = stack.db()
        self.out = stack.dir / "out"
        self.out.mkdir(exist_ok=True)
        self.profiles = stack.dir / "profiles"
        self.profiles.mkdir(exist_ok=True)
        self.results: dict = {"paths": {}, "rss_series": []}

    def add(self, key: str, path: str, record: dict) -> None:
        record["load1"] = os.getloadavg()[0]
        self.results["paths"].setdefault(key, {}).setdefault(path, []).append(record)

    def settle(self, window: float = 0.25, timeout: float = 15) -> float:
        """Wait until the stack's own processes are idle; return how long that took.

        SecantusDB goes on working after a request is answered (a 227 MB delete or upload leaves
        seconds of storage work behind), and a measurement that starts meanwhile shares the
        cores with it: bare ffmpeg's CPU time on the 60 s input varied by 30 % that way. Every
        measured run starts once the servers and workers use under 10 % of a core.
        """
        pids = [self.stack.mongo_pid, self.stack.gateway_pid]
        pids += [w.proc.pid for w in self.stack.workers.values()]
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            before = tree_cpu(pids)
            time.sleep(window)
            if tree_cpu(pids) - before < 0.1 * window:
                break
        return time.monotonic() - began

    def service(
        self,
        inp: Input,
        *,
        worker: str = "w1",
        fields: dict | None = None,
        profile: str | None = None,
    ) -> dict:
        """Upload `inp`, wait for its MP3 and its email; measure the worker's process tree."""
        wpid = self.stack.worker_pid(worker)
        pool = self.stack.pool_pid(worker)
        recorder = None
        if profile:
            recorder = Recorder(pool, self.profiles / f"{profile}.txt", idle=True)
            time.sleep(0.5)
        cpu0, mongo0 = cpu_breakdown(wpid), tree_cpu(self.stack.mongo_pid)
        gw0 = tree_cpu(self.stack.gateway_pid)
        with Sampler([wpid]) as sampler:
            up = self.stack.upload(inp.path, fields)
            gw1 = tree_cpu(self.stack.gateway_pid)
            job = self.stack.wait_job(self.db, up.job_id)
        cpu1, mongo1 = cpu_breakdown(wpid), tree_cpu(self.stack.mongo_pid)
        cpu = {part: cpu1[part] - cpu0[part] for part in cpu0}
        if recorder:
            recorder.stop()
        pool_after = self.stack.pool_pid(worker)
        finished, started = job["finished_at"].timestamp(), job["started_at"].timestamp()
        ffmpeg_peak = max((v for k, v in sampler.peak.by_name.items() if "ffmpeg" in k), default=0)
        record = {
            "job_id": up.job_id,
            "wall": finished - up.answered,  # upload answered → MP3 stored
            "total": finished - up.started,  # upload begun → MP3 stored
            "upload_s": up.seconds,
            "upload_mbps": up.nbytes / MB / up.seconds,
            "queue_s": started - up.answered,
            "worker_s": finished - started,
            "ffmpeg_store_s": job["mp3"]["seconds"],
            "cpu": sum(cpu.values()),
            "cpu_main": cpu["main"],
            "cpu_pool": cpu["pool"],
            "cpu_ffmpeg": cpu["ffmpeg"],
            "mongo_cpu": mongo1 - mongo0,
            "gateway_upload_cpu": gw1 - gw0,
            "peak": sampler.peak.tree_bytes,
            "peak_rss_sum": sampler.peak.tree_rss,
            "ffmpeg_peak": ffmpeg_peak,
            "worker_peak": status_kb(pool_after, "VmHWM") * 1024 if pool_after else 0,
            "pool_rss_after": status_kb(pool_after, "VmRSS") * 1024 if pool_after else 0,
            "main_rss_after": status_kb(wpid, "VmRSS") * 1024,
            "pool_pid": pool_after,
            "out_bytes": job["mp3"]["bytes"],
        }
        if not profile:
            self.results["rss_series"].append(
                {
                    "input": inp.key,
                    "pool_rss": record["pool_rss_after"],
                    "pool_hwm": record["worker_peak"],
                    "main_rss": record["main_rss_after"],
                    "pool_pid": pool_after,
                }
            )
        return record

    # --- phase 1: the gateway alone ------------------------------------------------------------

    def warm_up(self) -> list[str]:
        from bson import ObjectId

        log("warm-up uploads (the worker converts them when it starts)")
        warm = [self.stack.upload(self.inputs["clip"].path).job_id for _ in range(6)]
        # The bench's user, whose MP3s `_stored_mp3` stores directly.
        self.owner = self.db["jobs"].find_one({"_id": ObjectId(warm[0])})
        return warm

    def download_throughput(self) -> None:
        """GET /jobs/<id>/mp3 against a raw GridFS read of the same stored bytes."""
        from bson import ObjectId

        from core import mongo

        inp = self.inputs["long"]
        oid = ObjectId(self._stored_mp3(inp))
        bucket = mongo.mp3s(self.db)
        size = inp.path.stat().st_size
        log(f"download throughput: {size / MB:.0f} MB via HTTP and raw GridFS, {self.runs}x each")
        for _ in range(self.runs):
            got, seconds = self.stack.download(str(oid))
            assert got == size, (got, size)
            self.add("download", "service", {"mbps": size / MB / seconds, "seconds": seconds})
            started = time.perf_counter()
            with bucket.open_download_stream(oid) as stream:
                got = 0
                while chunk := stream.readchunk():
                    got += len(chunk)
            seconds = time.perf_counter() - started
            assert got == size
            self.add("download", "raw", {"mbps": size / MB / seconds, "seconds": seconds})
        self.stack.delete(str(oid))

    def _stored_mp3(self, inp: Input) -> str:
        """Store `inp`'s bytes as the MP3 of a finished job of the bench's user (core.jobs)."""
        from bson import ObjectId

        from core import jobs, mongo

        oid = ObjectId()
        jobs.create(
            self.db,
            oid,
            owner=self.owner["owner"],
            owner_email=self.owner["owner_email"],
            filename="download.mp4",
            video_bytes=0,
            bitrate=None,
            quality=None,
        )
        jobs.claim(self.db, oid, worker="bench", lease_seconds=3600)
        with inp.path.open("rb") as fh:
            mongo.mp3s(self.db).upload_from_stream_with_id(oid, "download.mp3", fh)
        jobs.finish(
            self.db,
            oid,
            worker="bench",
            mp3={
                "id": oid,
                "bytes": inp.path.stat().st_size,
                "duration_seconds": inp.seconds,
                "seconds": 0,
            },
        )
        return str(oid)

    def big_upload(self) -> None:
        """Stream a large body from a generator; sample the gateway's RSS meanwhile."""
        size = (256 if self.quick else 1024) * MB
        head = self.inputs["clip"].path.read_bytes()[:MB]
        block = os.urandom(MB)

        def chunks():  # type: ignore[no-untyped-def]
            yield head
            for _ in range(size // MB - 1):
                yield block

        import psutil

        # No worker may start converting the body (it is deleted as soon as it is stored).
        app = self.stack.celery()
        workers = [self.stack.hostname(name) for name in self.stack.workers]
        app.control.cancel_consumer("convert", destination=workers, reply=True, timeout=10)
        gateway = psutil.Process(self.stack.gateway_pid)
        before = {p.pid: p.memory_info().rss for p in [gateway, *gateway.children(recursive=True)]}
        cpu0 = tree_cpu(self.stack.gateway_pid)
        log(f"upload of {size // MB} MiB streamed from a generator; sampling the gateway's RSS")
        with Sampler([self.stack.gateway_pid], every=0.02) as sampler:
            up = self.stack.upload_stream(chunks(), size, "big.mp4")
        cpu1 = tree_cpu(self.stack.gateway_pid)
        self.stack.delete(up.job_id)
        growth = {pid: sampler.peak.rss_by_pid.get(pid, 0) - rss for pid, rss in before.items()}
        self.results["big_upload"] = {
            "bytes": size,
            "seconds": up.seconds,
            "mbps": size / MB / up.seconds,
            "tree_before": sum(before.values()),
            "tree_peak": sampler.peak.tree_rss,
            "tree_growth": sampler.peak.tree_rss - sum(before.values()),
            "max_process_growth": max(growth.values()),
            "processes": len(before),
            "gateway_cpu": cpu1 - cpu0,
            "samples": sampler.peak.samples,
            "rss_before": before,
            "rss_peak": sampler.peak.rss_by_pid,
        }

    # --- phase 2: one worker ---------------------------------------------------------------

    def matrix(self) -> None:
        from core import mongo

        raw_bucket = mongo.videos(self.db)
        plan = ["short", "long", "long-mp3", "mkv"]
        for key in plan:
            inp = self.inputs[key]
            # A 60 s job lasts under a second, so one neighbour's burst moves its ratio by 10 %:
            # five runs of the short inputs cost little and steady their median.
            runs = self.runs if self.quick or key not in ("short", "mkv") else max(5, self.runs)
            for i in range(runs):
                log(f"{inp.label}: run {i + 1}/{runs}")
                self.add(key, "probe", probe_cost(inp.path))
                self.settle()
                self.add(key, "bare", bare(inp.path, self.out / f"{key}-bare.mp3"))
                self.settle()
                self.add(
                    key, "course", course(inp.path, self.out / f"{key}-course.mp3", self.stack.dir)
                )
                if key == "long":
                    self.settle()
                    started = time.perf_counter()
                    with inp.path.open("rb") as fh:
                        fid = raw_bucket.upload_from_stream(inp.path.name, fh)
                    seconds = time.perf_counter() - started
                    raw_bucket.delete(fid)
                    self.add(
                        "upload",
                        "raw",
                        {"mbps": inp.path.stat().st_size / MB / seconds, "seconds": seconds},
                    )
                self.settle()
                record = self.service(inp)
                self.add(key, "service", record)
                if key == "long":
                    self.add(
                        "upload",
                        "service",
                        {"mbps": record["upload_mbps"], "seconds": record["upload_s"]},
                    )
                if key == "long-mp3":
                    self.settle()
                    self.add(
                        key,
                        "bare-reencode",
                        bare(inp.path, self.out / f"{key}-reencode.mp3", quality=4),
                    )
                    self.settle()
                    self.add(key, "service-reencode", self.service(inp, fields={"quality": "4"}))

    def streaming(self) -> None:
        """The idea of the issue: ffmpeg reading from GridFS while the copy still runs."""
        import gridfs

        from bench import streaming
        from tasks import ffmpeg

        bucket = gridfs.GridFSBucket(self.db, bucket_name="bench", chunk_size_bytes=MB)
        for key in ("long", "mkv"):
            inp = self.inputs[key]
            with inp.path.open("rb") as fh:
                oid = bucket.upload_from_stream(inp.path.name, fh)
            probe = ffmpeg.probe(inp.path)

            def argv_for(
                url: str, dst: Path, length: int | None = None, probe: ffmpeg.Probe = probe
            ) -> list[str]:
                """The service's command (tasks/ffmpeg.py) on `url`, without `-progress`."""
                path = Path(url.removeprefix("file:"))
                argv = service_argv(path, dst, info=probe, length=length)
                if url.startswith("pipe:"):
                    argv[argv.index(f"file:{path}")] = url
                    argv[argv.index("-protocol_whitelist") + 1] = "file,pipe"
                return argv

            for i in range(self.runs):
                log(f"streaming experiment, {inp.label}: run {i + 1}/{self.runs}")
                self.settle()
                seq = streaming.sequential(bucket, oid, argv_for, self.out)
                self.settle()
                st = streaming.streamed(bucket, oid, argv_for, self.out)
                self.settle()
                fol = streaming.followed(bucket, oid, argv_for, self.out)
                out = seq.pop("out")
                self.add(f"stream-{key}", "sequential", seq)
                for path, record in (("streamed", st), ("followed", fol)):
                    record["identical"] = record.pop("out") == out
                    self.add(f"stream-{key}", path, record)
            bucket.delete(oid)

    def overhead(self) -> None:
        inp = self.inputs["clip"]
        runs = max(5, self.runs)
        log(f"per-job overhead: {inp.label}, {runs}x bare and service")
        for _ in range(runs):
            self.settle()
            self.add("clip", "bare", bare(inp.path, self.out / "clip-bare.mp3"))
            self.settle()
            self.add("clip", "service", self.service(inp))

    def profile(self) -> None:
        """py-spy on the pool process during one more job per input, and on the gateway."""
        found: dict = {}
        for key in ("short", "long"):
            inp = self.inputs[key]
            log(f"profiling the worker during a job of {inp.label} (not counted)")
            name = f"worker-{key}"
            self.service(inp, profile=name)
            raw = self.profiles / f"{name}.txt"
            if raw.exists():
                found[name] = summarize(raw, within="trace_task")
        log("profiling the gateway during an upload of the long input (not counted)")
        gateway, long = self.stack.gateway_pid, self.inputs["long"].path
        # The gateway's requests run in gunicorn's worker processes, children of `gateway`.
        up = self._profiled(
            found, gateway, "gateway-upload", lambda: self.stack.upload(long), tree=True
        )
        self.stack.wait_job(self.db, up.job_id)
        oid = self._stored_mp3(self.inputs["long"])
        self._profiled(
            found, gateway, "gateway-download", lambda: self.stack.download(oid), tree=True
        )
        self.stack.delete(oid)
        up = self._profiled(
            found, self.stack.mongo_pid, "mongo-upload", lambda: self.stack.upload(long)
        )
        self.stack.wait_job(self.db, up.job_id)
        self.results["profiles"] = found

    def _profiled(
        self, found: dict, pid: int, name: str, action: Callable[[], T], *, tree: bool = False
    ) -> T:
        """Run `action` under a CPU-only py-spy of `pid` (and its children with `tree`)."""
        recorder = Recorder(pid, self.profiles / f"{name}.txt", idle=False, subprocesses=tree)
        time.sleep(0.5)  # py-spy attaches
        result = action()
        raw = recorder.stop()
        if raw:
            found[name] = summarize(raw)
        return result

    # --- phase 4: two workers ----------------------------------------------------------------

    def parallel(self) -> None:
        inp = self.inputs["short"]
        jobs_per_round = 4
        # Production's layout (k8s/base): convert workers consume `convert` only, and a worker of
        # its own sends the emails and deletes the videos. All three share this machine's cores.
        self.stack.start_worker("w2", queues="convert")
        self.stack.start_worker("n1", queues="notify")
        app = self.stack.celery()
        app.control.cancel_consumer(
            "notify", destination=[self.stack.hostname("w1")], reply=True, timeout=10
        )
        dest = [self.stack.hostname("w1"), self.stack.hostname("w2")]
        for i in range(self.runs):
            log(
                f"two workers vs two bare ffmpeg: round {i + 1}/{self.runs}, "
                f"{jobs_per_round} x {inp.label}"
            )
            self.settle()
            started = time.perf_counter()
            with ThreadPoolExecutor(2) as pool:
                list(
                    pool.map(
                        lambda n: bare(inp.path, self.out / f"par-{n}.mp3"), range(jobs_per_round)
                    )
                )
            wall = time.perf_counter() - started
            self.add(
                "parallel",
                "bare",
                {"wall": wall, "throughput": jobs_per_round * inp.seconds / wall},
            )
            app.control.cancel_consumer("convert", destination=dest, reply=True, timeout=10)
            ups = [self.stack.upload(inp.path) for _ in range(jobs_per_round)]
            self.settle()
            t0 = time.time()
            app.control.add_consumer("convert", destination=dest, reply=True, timeout=10)
            done = [self.stack.wait_job(self.db, u.job_id, notified=False) for u in ups]
            end = max(j["finished_at"].timestamp() for j in done)
            workers = sorted({j["worker"] for j in done})
            for u in ups:
                self.stack.wait_job(self.db, u.job_id)
            self.add(
                "parallel",
                "service",
                {
                    "wall": end - t0,
                    "throughput": jobs_per_round * inp.seconds / (end - t0),
                    "workers_used": len(workers),
                    "first_claim_s": min(j["started_at"].timestamp() for j in done) - t0,
                },
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short inputs (5/10/20 s), one run: for developing the benchmark",
    )
    parser.add_argument("--runs", type=int, default=None, help="runs per measurement (default 3)")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy runs")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite RESULTS.md and the chart from bench/out/results.json",
    )
    args = parser.parse_args(argv)
    results_json = OUT / ("results-quick.json" if args.quick else "results.json")
    if args.report_only:
        report.write(json.loads(results_json.read_text()))
        return 0
    runs = args.runs or (1 if args.quick else 3)
    began = time.monotonic()
    info = machine.describe()
    log(f"machine: {info['cpu']}, {info['cores']} cores, load {info['load_before']}")
    log("inputs: generating what bench/out/inputs lacks (cached across runs)")
    inputs = inputs_mod.build(quick=args.quick)
    run_dir = OUT / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    stack = Stack(run_dir)
    bench = None
    try:
        log("starting SecantusDB, SMTP, a RabbitMQ vhost and the gateway")
        stack.start()
        bench = Bench(stack, inputs, runs=runs, quick=args.quick)
        warm = bench.warm_up()
        bench.download_throughput()
        log("starting the worker")
        stack.start_worker("w1")
        for job_id in warm:
            stack.wait_job(bench.db, job_id)
        bench.matrix()
        bench.streaming()
        bench.overhead()
        if not args.no_profile:
            bench.profile()
        bench.parallel()
        # The 1 GiB upload comes last: with it (and the downloads) before the matrix, the next
        # jobs cost the pool process twice the CPU for a while (0.05 → 0.10 s per 60 s job, on a
        # fresh stack; bench/FINDINGS.md), which taxed whichever input was measured first.
        bench.big_upload()
    finally:
        stack.close()
        if bench is not None:
            dump(OUT / "partial.json", bench.results)
    results = bench.results
    info["load_after"] = [round(x, 2) for x in os.getloadavg()]
    results.update(
        machine=info,
        quick=args.quick,
        runs=runs,
        minutes=(time.monotonic() - began) / 60,
        inputs={
            k: {
                "label": v.label,
                "seconds": v.seconds,
                "bytes": v.path.stat().st_size,
                "file": v.path.name,
            }
            for k, v in inputs.items()
        },
    )
    dump(results_json, results)
    report.write(results)
    shutil.rmtree(run_dir / "mongo", ignore_errors=True)
    where = "bench/out/RESULTS-quick.md" if args.quick else "bench/RESULTS.md, bench/realtime.png"
    log(f"done in {results['minutes']:.1f} min: {where}")
    return 0
