"""POST /login: HTTP Basic in, a JWT out; every refusal with its exact status and JSON body."""

from __future__ import annotations

import base64
import dataclasses
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest

from app import create_app
from app.auth import passwords, tokens
from app.auth.users import create_user
from tests.auth.conftest import fresh_address
from tests.conftest import PASSWORD, basic

pytestmark = pytest.mark.integration

WRONG = {"error": {"code": "invalid_credentials", "message": "wrong email or password"}}
NO_HEADER = {
    "error": {
        "code": "unauthorized",
        "message": "send your email and password with HTTP Basic auth",
    }
}
MALFORMED = {
    "error": {
        "code": "unauthorized",
        "message": "the Authorization header must be 'Basic ' and the base64 of email:password",
    }
}


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def new_email() -> str:
    return f"login-{uuid.uuid4().hex[:10]}@example.test"


def assert_refused(response, status: int, body: dict) -> None:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    assert response.get_json() == body


# --- Right password ----------------------------------------------------------------------------


def test_right_password_returns_a_plain_text_token(client, auth, settings):
    user = auth.create()
    response = client.post("/login", headers=basic(user.email, user.password))
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert response.headers["Cache-Control"] == "no-store"
    identity = tokens.check(response.get_data(as_text=True), settings.jwt_secret)
    assert identity.email == user.email
    assert identity.admin is False


def test_the_token_opens_the_protected_routes(client, auth):
    user = auth.login()
    response = client.get("/jobs", headers=user.headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["jobs"] == []


def test_curl_default_accept_gets_plain_text(client, auth):
    user = auth.create()
    response = client.post("/login", headers={**basic(user.email, user.password), "Accept": "*/*"})
    assert response.status_code == 200
    assert response.mimetype == "text/plain"


def test_accept_json_returns_the_token_as_json(client, auth, settings):
    user = auth.create(admin=True)
    response = client.post(
        "/login", headers={**basic(user.email, user.password), "Accept": "application/json"}
    )
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.jwt_ttl_seconds
    identity = tokens.check(body["access_token"], settings.jwt_secret)
    assert (identity.email, identity.admin) == (user.email, True)


def test_the_email_is_case_insensitive(client, auth):
    user = auth.create(email=new_email())
    response = client.post("/login", headers=basic(f"  {user.email.upper()} ", user.password))
    assert response.status_code == 200, response.get_json()


def test_a_non_ascii_password_logs_in_sent_as_utf8(client, app):
    email, password = new_email(), "pässwörd-ünïcode-密码"
    create_user(app.extensions["mp3"].sessions, email, password)
    response = client.post("/login", headers=basic(email, password))
    assert response.status_code == 200, response.get_json()
    # The same letters without their accents are another password.
    assert_refused(client.post("/login", headers=basic(email, "passwort-unicode-密码")), 401, WRONG)


def test_a_latin1_client_logs_in_with_the_same_password(client, app):
    # Clients that ignore the charset="UTF-8" of the challenge send ISO-8859-1 bytes.
    email, password = new_email(), "grüße-aus-köln"
    create_user(app.extensions["mp3"].sessions, email, password)
    header = "Basic " + b64(f"{email}:{password}".encode("latin-1"))
    response = client.post("/login", headers={"Authorization": header})
    assert response.status_code == 200, response.get_json()


def test_a_password_with_a_colon_logs_in(client, auth):
    # Basic splits at the first colon only: the password may hold more of them.
    user = auth.create(password="a:b:c:d:e:f")
    assert client.post("/login", headers=basic(user.email, user.password)).status_code == 200


# --- Refusals ----------------------------------------------------------------------------------


def test_wrong_password(client, auth):
    user = auth.create()
    response = client.post("/login", headers=basic(user.email, user.password + "x"))
    assert_refused(response, 401, WRONG)
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_unknown_email_is_answered_like_a_wrong_password(client):
    response = client.post("/login", headers=basic(new_email(), PASSWORD))
    assert_refused(response, 401, WRONG)
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_no_header(client):
    response = client.post("/login")
    assert_refused(response, 401, NO_HEADER)
    assert 'charset="UTF-8"' in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Basic !!!notbase64", id="not-base64"),
        pytest.param("Basic " + b64(b"user@example.test"), id="no-colon"),
        pytest.param("Basic", id="no-credentials"),
        pytest.param("Basic ", id="blank-credentials"),
        pytest.param("Bearer x", id="bearer"),
        pytest.param("Digest username=x", id="digest"),
        pytest.param("Basic " + b64(b":" + PASSWORD.encode()), id="empty-email"),
        pytest.param("Basic " + b64(b"user@example.test:"), id="empty-password"),
        pytest.param("Basic dXNlcjpw YXNz", id="space-inside-base64"),
        pytest.param("Basic dXNlcjpwYXN", id="truncated-base64"),
        pytest.param("Basic " + "é" * 8, id="latin1-junk"),
        pytest.param("userpass", id="no-scheme"),
    ],
)
def test_malformed_header(client, mongo_db, header):
    response = client.post("/login", headers={"Authorization": header})
    assert_refused(response, 401, MALFORMED)
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    # A header that names no credentials is not a guess: the throttle does not count it.
    address = client.environ_base["REMOTE_ADDR"]
    assert mongo_db["login_throttle"].find_one({"_id": f"address:{address}"}) is None


def test_get_is_not_allowed(client):
    response = client.get("/login")
    assert response.status_code == 405
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]


# --- The unknown-email path spends the same work ------------------------------------------------


@contextmanager
def argon2_verifications() -> Iterator[list[str]]:
    """Record the hash of every argon2 verification this thread runs (observed, not replaced)."""
    seen: list[str] = []

    def profile(frame, event, _arg):  # type: ignore[no-untyped-def]
        if event == "call" and frame.f_code.co_qualname == "PasswordHasher.verify":
            seen.append(frame.f_locals["hash"])

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield seen
    finally:
        sys.setprofile(previous)


def test_an_unknown_email_still_runs_a_full_argon2_verification(client, auth):
    # Timing itself is not asserted (two shared cores make it noise); what makes the times equal
    # is that both paths run one argon2id verification at the same parameters, which is checked.
    user = auth.create()
    with argon2_verifications() as unknown:
        client.post("/login", headers=basic(new_email(), PASSWORD))
    with argon2_verifications() as known:
        client.post("/login", headers=basic(user.email, PASSWORD + "x"))
    assert unknown == [passwords._DUMMY_HASH]
    assert len(known) == 1
    assert known[0] != passwords._DUMMY_HASH
    dummy, real = (passwords.extract_parameters(h) for h in (unknown[0], known[0]))
    assert dummy == real


# --- Throttle ----------------------------------------------------------------------------------

MAX_FAILURES = 3
LOCKOUT = 120


@pytest.fixture(scope="module")
def strict_app(settings):
    """The gateway with a throttle that locks after three failures."""
    return create_app(
        {"TESTING": True},
        settings=dataclasses.replace(
            settings, login_max_failures=MAX_FAILURES, login_lockout_seconds=LOCKOUT
        ),
    )


def strict_client(strict_app, address: str | None = None):
    client = strict_app.test_client()
    client.environ_base["REMOTE_ADDR"] = address or fresh_address()
    return client


def assert_throttled(response) -> int:
    assert response.status_code == 429, response.get_data(as_text=True)
    wait = int(response.headers["Retry-After"])
    assert 0 < wait <= LOCKOUT
    assert response.get_json() == {
        "error": {
            "code": "too_many_attempts",
            "message": f"too many failed logins; try again in {wait} s",
        }
    }
    return wait


def test_repeated_failures_lock_the_account(strict_app):
    email = new_email()
    create_user(strict_app.extensions["mp3"].sessions, email, PASSWORD)
    client = strict_client(strict_app)
    for _ in range(MAX_FAILURES):
        assert_refused(client.post("/login", headers=basic(email, "wrong password")), 401, WRONG)
    # Locked now: even the right password waits, from this address or any other.
    assert_throttled(client.post("/login", headers=basic(email, PASSWORD)))
    assert_throttled(strict_client(strict_app).post("/login", headers=basic(email, PASSWORD)))
    # An operator lifts the lock.
    result = strict_app.test_cli_runner().invoke(args=["users", "unlock", email])
    assert result.exit_code == 0, result.output
    assert client.post("/login", headers=basic(email, PASSWORD)).status_code == 200


def test_a_right_password_clears_the_failures(strict_app):
    email = new_email()
    create_user(strict_app.extensions["mp3"].sessions, email, PASSWORD)
    client = strict_client(strict_app)
    for _ in range(2):
        for _ in range(MAX_FAILURES - 1):
            assert client.post("/login", headers=basic(email, "wrong password")).status_code == 401
        assert client.post("/login", headers=basic(email, PASSWORD)).status_code == 200


def test_other_accounts_from_the_same_address_go_on(strict_app):
    # An address is shared by many people (an office, a NAT), so one account's lock is not theirs.
    client = strict_client(strict_app)
    locked, other = new_email(), new_email()
    for email in (locked, other):
        create_user(strict_app.extensions["mp3"].sessions, email, PASSWORD)
    for _ in range(MAX_FAILURES):
        client.post("/login", headers=basic(locked, "wrong password"))
    assert_throttled(client.post("/login", headers=basic(locked, PASSWORD)))
    assert client.post("/login", headers=basic(other, PASSWORD)).status_code == 200


def test_an_address_that_guesses_across_many_accounts_is_locked(strict_app):
    from app.auth.throttle import ADDRESS_FACTOR

    client = strict_client(strict_app)
    victim = new_email()
    create_user(strict_app.extensions["mp3"].sessions, victim, PASSWORD)
    # One guess per account, so no account is locked; the address runs out all the same.
    for _ in range(MAX_FAILURES * ADDRESS_FACTOR):
        assert client.post("/login", headers=basic(new_email(), PASSWORD)).status_code == 401
    assert_throttled(client.post("/login", headers=basic(victim, PASSWORD)))
    # The account itself is not locked: its owner, elsewhere, logs in.
    elsewhere = strict_client(strict_app)
    assert elsewhere.post("/login", headers=basic(victim, PASSWORD)).status_code == 200


def test_a_burst_of_parallel_guesses_gets_no_more_checks_than_the_limit(strict_app):
    # Each attempt is numbered before its password is checked, so guesses sent all at once
    # cannot slip past the lock while the first of them is still being verified.
    email = new_email()
    create_user(strict_app.extensions["mp3"].sessions, email, PASSWORD)

    def guess(_: int) -> int:
        return strict_client(strict_app).post("/login", headers=basic(email, "wrong")).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(guess, range(24)))
    assert sorted(set(codes)) == [401, 429], codes
    assert codes.count(401) == MAX_FAILURES, codes
    assert_throttled(strict_client(strict_app).post("/login", headers=basic(email, PASSWORD)))


def test_parallel_first_attempts_at_new_accounts_are_each_numbered_once(mongo_db):
    # The first failures at a new account arrive together: each must be told its own number
    # (1..8), none lost or answered with nothing, or a guess escapes the count or a user gets a 500.
    from app.auth import throttle

    for _ in range(10):
        email = new_email()

        def attempt(_: int, email: str = email) -> int:
            taken = throttle.begin(
                mongo_db, email, fresh_address(), max_failures=100, lockout_seconds=60
            )
            return taken.counts[0].number

        with ThreadPoolExecutor(max_workers=8) as pool:
            numbers = sorted(pool.map(attempt, range(8)))
        assert numbers == list(range(1, 9))


def test_a_failed_check_that_never_finished_does_not_lock_the_account_for_good(
    strict_app, mongo_db
):
    # An attempt that ends a run of failures sets the lock itself; if its process dies before
    # that, the next attempt sets it instead of finding the account stuck.
    email = new_email()
    create_user(strict_app.extensions["mp3"].sessions, email, PASSWORD)
    mongo_db["login_throttle"].insert_one(
        {"_id": f"account:{email}", "failures": MAX_FAILURES, "lockouts": 0}
    )
    assert_throttled(strict_client(strict_app).post("/login", headers=basic(email, PASSWORD)))
    doc = mongo_db["login_throttle"].find_one({"_id": f"account:{email}"})
    assert (doc["failures"], doc["lockouts"]) == (MAX_FAILURES, 1)
    strict_app.test_cli_runner().invoke(args=["users", "unlock", email])
    assert (
        strict_client(strict_app).post("/login", headers=basic(email, PASSWORD)).status_code == 200
    )
