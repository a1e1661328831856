"""`mp3c`: log in, convert videos to MP3 with progress bars, and list, fetch or delete jobs."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from rich.console import Console

from mp3c import config as cfg
from mp3c.api import EXIT_AUTH, EXIT_USAGE, EXPIRED, Api, CliError
from mp3c.convert import Names, Run, report, save_mp3
from mp3c.progress import Row, make_progress
from mp3c.show import print_job, print_jobs

EPILOG = """\
exit codes:
  0  success
  1  the server refused the request, or a conversion failed (its message is printed)
  2  usage error: a bad option, or a local file that cannot be read or written
  3  not logged in, the login has expired, or wrong email or password: run mp3c login
  4  the server cannot be reached
130  interrupted (Ctrl-C); uploaded jobs go on converting on the server

environment:
  MP3C_URL         server URL, instead of the one saved by mp3c login
  MP3C_CONFIG_DIR  folder of config.json (default: the user's config folder)
  MP3C_PASSWORD    password for mp3c login, instead of asking for it
"""


def _read_secret(prompt: str, hidden: bool) -> str:
    """Ask on the terminal; read a line from stdin when it is not one (scripts, pipes)."""
    if sys.stdin.isatty():
        return getpass.getpass(prompt) if hidden else input(prompt)
    line = sys.stdin.readline()
    if not line:
        raise CliError(f"no {prompt.strip(': ').lower()} given on stdin", EXIT_USAGE)
    return line.rstrip("\r\n")


def _number(low: int, high: int):  # type: ignore[no-untyped-def]
    def parse(raw: str) -> int:
        if not raw.isdigit() or not low <= int(raw) <= high:
            raise argparse.ArgumentTypeError(f"must be a whole number from {low} to {high}")
        return int(raw)

    return parse


def login(args: argparse.Namespace) -> int:
    current = cfg.load()
    url = (args.url or current.url).rstrip("/")
    email = args.email or _read_secret("Email: ", hidden=False).strip()
    password = os.environ.get("MP3C_PASSWORD") or _read_secret("Password: ", hidden=True)
    api = Api(url)
    try:
        answer = api.login(email, password)
    finally:
        api.close()
    path = cfg.save(cfg.Config(url=url, email=email, token=answer["access_token"]))
    minutes = int(answer.get("expires_in", 0)) // 60
    print(f"logged in to {url} as {email} for {minutes} min (token saved in {path})")
    return 0


def logout(_args: argparse.Namespace) -> int:
    current = cfg.load()
    cfg.save(cfg.Config(url=current.url))
    print("logged out")
    return 0


def _session() -> tuple[cfg.Config, Api]:
    current = cfg.load()
    if not current.token:
        raise CliError("you are not logged in; run mp3c login", EXIT_AUTH)
    return current, Api(current.url, current.token)


def convert(args: argparse.Namespace) -> int:
    for path in args.files:
        if not path.is_file() or not os.access(path, os.R_OK):
            raise CliError(f"{path}: not a file that can be read", EXIT_USAGE)
    current, api = _session()
    if current.token_expired():
        raise CliError(EXPIRED, EXIT_AUTH)  # Before uploading anything for nothing.
    fields = {}
    if args.bitrate is not None:
        fields["bitrate"] = str(args.bitrate)
    if args.quality is not None:
        fields["quality"] = str(args.quality)
    args.output.mkdir(parents=True, exist_ok=True)
    run = Run(api, fields, wait=args.wait, out_dir=args.output)
    outcomes = run.all(args.files, Console(stderr=True))
    return report(outcomes)


def jobs(args: argparse.Namespace) -> int:
    _, api = _session()
    answer = api.jobs(page=args.page, per_page=args.per_page)
    print_jobs(answer, as_json=args.json)
    return 0


def status(args: argparse.Namespace) -> int:
    _, api = _session()
    print_job(api.job(args.id), as_json=args.json)
    return 0


def download(args: argparse.Namespace) -> int:
    _, api = _session()
    job = api.job(args.id)
    if job["status"] != "done":
        raise CliError(
            f"job {args.id} is {job['status']} ({job.get('progress', 0)} %); its MP3 is not ready"
        )
    with make_progress(Console(stderr=True)) as progress:
        row = Row(progress, job["filename"])
        saved = save_mp3(api, job, args.output or Path.cwd(), Names(), row)
        row.finish(f"saved {saved.name}")
    print(saved)
    return 0


def delete(args: argparse.Namespace) -> int:
    _, api = _session()
    api.delete(args.id)
    print(f"deleted job {args.id}")
    return 0


def parser() -> argparse.ArgumentParser:
    """Build the command line parser."""
    main_parser = argparse.ArgumentParser(
        prog="mp3c",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = main_parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = commands.add_parser("login", help="log in and keep the token (asks email and password)")
    p.add_argument("--url", help=f"the server (default: the saved one, else {cfg.DEFAULT_URL})")
    p.add_argument("--email", help="instead of asking for it")
    p.set_defaults(run=login)
    commands.add_parser("logout", help="forget the saved token").set_defaults(run=logout)
    p = commands.add_parser("convert", help="upload videos to convert; with --wait, fetch the MP3s")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    quality = p.add_mutually_exclusive_group()
    quality.add_argument(
        "--bitrate",
        type=_number(32, 320),
        metavar="N",
        help="constant bitrate in kbit/s, 32 to 320",
    )
    quality.add_argument(
        "--quality",
        type=_number(0, 9),
        metavar="Q",
        help="variable bitrate quality, 0 (best) to 9 (smallest)",
    )
    p.add_argument("--wait", action="store_true", help="follow the conversions, download the MP3s")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=Path.cwd(),
        metavar="DIR",
        help="folder for the MP3s (default: the current one)",
    )
    p.set_defaults(run=convert)
    p = commands.add_parser("jobs", help="list your jobs, newest first")
    p.add_argument("--page", type=int, default=1)
    p.add_argument("--per-page", type=int, default=20)
    p.add_argument("--json", action="store_true", help="print the server's JSON")
    p.set_defaults(run=jobs)
    p = commands.add_parser("status", help="show one job")
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="print the server's JSON")
    p.set_defaults(run=status)
    p = commands.add_parser("download", help="download a job's MP3")
    p.add_argument("id")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="PATH",
        help="file or folder (default: the current folder, under the server's name)",
    )
    p.set_defaults(run=download)
    p = commands.add_parser("delete", help="cancel a job and delete its files")
    p.add_argument("id")
    p.set_defaults(run=delete)
    return main_parser


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit code (the console script exits with it)."""
    args = parser().parse_args(argv)
    try:
        code = args.run(args)
    except CliError as exc:
        print(f"mp3c: {exc.message}", file=sys.stderr)
        code = exc.exit_code
    except OSError as exc:  # A local file or folder mp3c cannot read or write.
        print(f"mp3c: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        code = EXIT_USAGE
    except KeyboardInterrupt:
        print("mp3c: interrupted", file=sys.stderr)
        code = 130
    return code
