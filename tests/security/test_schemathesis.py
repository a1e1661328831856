"""Schemathesis against /openapi.json: every operation, with and without a real user's token.

Each operation gets at least 100 generated requests per way of calling it (Hypothesis'
`max_examples=100`, plus Schemathesis' explicit and coverage cases). Every response must be no
5xx and must match the description: its status code, its content type, its body and its
headers. With a valid token, a 2xx also makes Schemathesis try the request again without the
token and with a wrong one, which must be refused (`ignored_auth`).

The fuzzed app is a second instance of the gateway, with its own MongoDB database, so the
thousands of failed logins it draws lock nobody out of the other tests and the junk it uploads
leaves no job behind.
"""

from __future__ import annotations

import dataclasses
import uuid
import zlib
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.transport.serialization import Binary

from tests.conftest import PASSWORD, basic
from tests.security import seed

pytestmark = pytest.mark.integration

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    ignored_auth,
]
SPEC = Path(__file__).resolve().parents[2] / "app" / "openapi.json"
MIN_REQUESTS = 100
#: The first bytes of an MPEG audio frame: the upload's sniffer takes the file for MP3.
MP3_FRAME = b"\xff\xfb\x90\x64"
#: The client addresses of the two modes (TEST-NET-1, which no other test uses): the failed
#: logins drawn without a token lock only the second one, not the valid logins of the first.
ADDRESSES = {"valid-token": "192.0.2.10", "no-token": "192.0.2.11"}

#: (operation, mode) -> requests sent; status codes seen.
REQUESTS: Counter[tuple[str, str]] = Counter()
STATUSES: Counter[int] = Counter()
BY_OP: Counter[tuple[str, str, int]] = Counter()


@dataclasses.dataclass
class Fuzzed:
    app: object
    token: str
    email: str
    user_id: int
    done_job: str


def _fuzz_settings(settings_):
    parts = urlsplit(settings_.mongodb_uri)
    uri = urlunsplit(parts._replace(path=f"/mp3_fuzz_{uuid.uuid4().hex[:8]}"))
    return dataclasses.replace(settings_, mongodb_uri=uri)


@pytest.fixture(scope="module")
def fuzzed(settings):
    from app import create_app
    from app.auth.users import create_user

    app = create_app({"TESTING": True}, settings=_fuzz_settings(settings))
    svc = app.extensions["mp3"]
    email = f"fuzz-{uuid.uuid4().hex[:10]}@example.test"
    user = create_user(svc.sessions, email, PASSWORD)
    response = app.test_client().post("/login", headers=basic(email, PASSWORD))
    assert response.status_code == 200, response.get_data(as_text=True)
    done_job = str(seed.done_job(svc.mongo, user.id, email, "seed clip.mp4"))
    yield Fuzzed(app, response.get_data(as_text=True), email, user.id, done_job)
    svc.mongo.client.drop_database(svc.mongo.name)


# The description is read from the file the app serves (test_openapi.py proves they are the same),
# so the tests can be collected before any service runs; each call names the app it goes to.
# (A lazy schema from a fixture would be the other way, but it breaks on pytest 9.)
schema = schemathesis.openapi.from_path(str(SPEC))

#: Printable ASCII, as HTTP header values must be.
_HEADER_TEXT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40)
#: Headers a client may send to any route: junk credentials, a forged web session cookie, proxy
#: headers, content negotiation and conditionals. They also give the routes that take no input
#: (/healthz, /readyz, /openapi.json) requests that differ, so they get their 100 as well.
NOISE = st.fixed_dictionaries(
    {},
    optional={
        "headers": st.dictionaries(
            st.sampled_from(
                [
                    "Authorization",
                    "Cookie",
                    "X-Forwarded-For",
                    "X-Forwarded-Proto",
                    "X-CSRF-Token",
                    "Accept",
                    "Accept-Encoding",
                    "If-None-Match",
                    "If-Modified-Since",
                    "Range",
                    "X-Request-Id",
                ]
            ),
            st.one_of(
                _HEADER_TEXT,
                st.sampled_from(
                    [
                        "Bearer ",
                        "Bearer x.y.z",
                        "Basic Og==",
                        "Basic !!!",
                        "mp3_session=eyJ1aWQiOjF9.x.y",
                        "application/json",
                        "text/plain;q=0, */*;q=0.1",
                        "bytes=0-0,5-",
                        "*",
                    ]
                ),
            ),
            max_size=3,
        ),
        "query": st.dictionaries(
            st.text(st.characters(codec="utf-8"), min_size=1, max_size=8),
            st.text(st.characters(codec="utf-8"), max_size=20),
            max_size=2,
        ),
    },
)


def _add_noise(drawn):
    case, noise = drawn
    for where in ("headers", "query"):
        if noise.get(where):
            setattr(case, where, {**noise[where], **(getattr(case, where) or {})})
    return case


@schema.hook
def before_generate_case(context, strategy):
    """Add the noise above to every generated case (the coverage cases stay as they are)."""
    return st.tuples(strategy, NOISE).map(_add_noise)


def _make_playable(case) -> None:
    """Start a third of the uploaded files with an MP3 frame header, so some are accepted (202)."""
    body = case.body if isinstance(case.body, dict) else {}
    file = body.get("file")
    if isinstance(file, Binary) and file.data and zlib.crc32(file.data) % 3 == 0:
        body["file"] = Binary(MP3_FRAME + file.data)


def _use_seeded_ids(case, fuzzed: Fuzzed) -> None:
    """Point a third of the cases at the caller's real jobs, so 200, 206 and 304 are fuzzed too."""
    params = case.path_parameters or {}
    value = params.get("job_id") if params else (case.query or {}).get("fid")
    if not isinstance(value, str) or zlib.crc32(value.encode("utf-8", "replace")) % 3:
        return
    if case.method.upper() == "DELETE":
        db = fuzzed.app.extensions["mp3"].mongo
        plant = (seed.queued_job, seed.done_job)[zlib.crc32(value.encode("utf-8", "replace")) % 2]
        real = str(plant(db, fuzzed.user_id, fuzzed.email))
    else:
        real = fuzzed.done_job
    if params:
        case.path_parameters["job_id"] = real
    else:
        case.query["fid"] = real


SETTINGS = settings(
    max_examples=MIN_REQUESTS,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
        HealthCheck.data_too_large,
    ],
)


def _checks_for(path: str) -> list:
    checks = CHECKS
    if path == "/login":
        # POST /login is where credentials are checked, not an operation guarded by them: its
        # refusals (401, and 429 once the throttle locks) are tested in test_access.py.
        checks = [c for c in checks if c is not ignored_auth]
    if path == "/readyz":
        # Its documented 503 reports a dependency slow on a busy machine, not a fault of the
        # gateway; status_code_conformance still holds it to the spec.
        checks = [c for c in checks if c is not not_a_server_error]
    return checks


def _call(case, fuzzed: Fuzzed, mode: str) -> None:
    # The app exists only once the services run; Schemathesis' own probes use it from here.
    case.operation.schema.app = fuzzed.app
    headers: dict[str, str] = {}
    if mode == "valid-token":
        if case.operation.path == "/login":
            headers = basic(fuzzed.email, PASSWORD)
        else:
            headers = {"Authorization": f"Bearer {fuzzed.token}"}
        _use_seeded_ids(case, fuzzed)
        _make_playable(case)
    response = case.call_and_validate(
        headers=headers or None,
        app=fuzzed.app,
        checks=_checks_for(case.operation.path),
        environ_overrides={"REMOTE_ADDR": ADDRESSES[mode]},
    )
    REQUESTS[(case.operation.label, mode)] += 1
    STATUSES[response.status_code] += 1
    BY_OP[(case.operation.label, mode, response.status_code)] += 1


@schema.parametrize()
@SETTINGS
def test_api_with_token(case, fuzzed: Fuzzed) -> None:
    _call(case, fuzzed, "valid-token")


@schema.parametrize()
@SETTINGS
def test_api_without_token(case, fuzzed: Fuzzed) -> None:
    _call(case, fuzzed, "no-token")


def test_figures(capsys) -> None:
    """Every operation got 100 requests in each mode, none answered 5xx; print the figures."""
    if not REQUESTS:
        pytest.skip("the figures are those of test_api_with_token and test_api_without_token")
    labels = [result.ok().label for result in schema.get_all_operations()]
    with capsys.disabled():
        statuses = dict(sorted(STATUSES.items()))
        print(f"\nschemathesis: {sum(REQUESTS.values())} requests; status codes {statuses}")
        for label in labels:
            for mode in ADDRESSES:
                seen = {
                    code: n
                    for (op, m, code), n in sorted(BY_OP.items())
                    if (op, m) == (label, mode)
                }
                print(f"  {label:26} {mode:12} {REQUESTS[(label, mode)]:4}  {seen}")
    assert not [code for code in STATUSES if code >= 500]
    short = {
        key: n
        for key in ((label, mode) for label in labels for mode in ADDRESSES)
        if (n := REQUESTS[key]) < MIN_REQUESTS
    }
    assert not short, f"operations with fewer than {MIN_REQUESTS} requests: {short}"
