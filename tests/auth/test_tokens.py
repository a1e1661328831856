"""The jwt_required guard: every bad token is a 401 with the JSON error body, never a 500."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid

import pytest

from app.auth import tokens

pytestmark = pytest.mark.integration

PROTECTED = "/jobs"


def segment(data: dict | list | bytes | str) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign(header: dict, claims: dict, key: bytes, digest=hashlib.sha256) -> str:  # type: ignore[no-untyped-def]
    """Build a compact JWS by hand, so a test controls every byte (and PyJWT warns of nothing)."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    mac = hmac.new(key, signing_input.encode(), digest).digest()
    return f"{signing_input}.{segment(mac)}"


@pytest.fixture(scope="module")
def user(app):
    from app.auth.users import create_user

    return create_user(
        app.extensions["mp3"].sessions, f"tokens-{uuid.uuid4().hex[:8]}@example.test", "p" * 12
    )


@pytest.fixture
def secret(settings) -> bytes:
    return settings.jwt_secret.encode()


@pytest.fixture
def claims(user) -> dict:
    now = int(time.time())
    return {
        "sub": str(user.id),
        "email": user.email,
        "admin": False,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "iss": tokens.ISSUER,
        "aud": tokens.AUDIENCE,
        "jti": uuid.uuid4().hex,
    }


HS256 = {"alg": "HS256", "typ": "JWT"}


def assert_unauthorized(response) -> None:
    assert response.status_code == 401, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == "unauthorized"
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def get(client, token: str):  # type: ignore[no-untyped-def]
    return client.get(PROTECTED, headers={"Authorization": f"Bearer {token}"})


# --- The control: tokens that are good pass -----------------------------------------------------


def test_a_hand_made_token_with_every_claim_passes(client, claims, secret):
    assert get(client, sign(HS256, claims, secret)).status_code == 200


def test_an_issued_token_passes_and_carries_every_claim(client, user, settings):
    identity = tokens.Identity(user_id=user.id, email=user.email, admin=False)
    token = tokens.issue(identity, settings.jwt_secret, settings.jwt_ttl_seconds)
    header, payload, _ = token.split(".")
    assert json.loads(base64.urlsafe_b64decode(header + "=="))["alg"] == "HS256"
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=="))
    assert set(tokens.REQUIRED_CLAIMS) <= set(decoded)
    assert decoded["exp"] - decoded["iat"] == settings.jwt_ttl_seconds
    assert tokens.check(token, settings.jwt_secret) == identity
    assert get(client, token).status_code == 200


# --- Missing and malformed ----------------------------------------------------------------------


def test_missing(client):
    assert_unauthorized(client.get(PROTECTED))


@pytest.mark.parametrize(
    "header",
    ["Bearer", "Bearer ", "Basic dXNlcjpwYXNzd29yZA==", "Token abc", "bearer-abc"],
    ids=["no-token", "blank-token", "basic", "other-scheme", "no-space"],
)
def test_malformed_header(client, header):
    assert_unauthorized(client.get(PROTECTED, headers={"Authorization": header}))


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("garbage", id="garbage"),
        pytest.param("abc.def", id="two-segments"),
        pytest.param("a.b.c.d", id="four-segments"),
        pytest.param("..", id="empty-segments"),
        pytest.param("!!!.@@@.###", id="not-base64url"),
        pytest.param(f"{segment(b'{not json')}.{segment({})}.sig", id="header-not-json"),
        pytest.param(f"{segment([1, 2])}.{segment({})}.sig", id="header-not-object"),
        pytest.param(f"{segment(HS256)}.{segment(b'[' * 5000)}.sig", id="payload-too-deep"),
        pytest.param("é.é.é", id="latin1"),
    ],
)
def test_malformed_token(client, token):
    assert_unauthorized(get(client, token))


def test_payload_not_an_object(client, secret):
    header = segment(HS256)
    payload = segment(["sub", "1"])
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    assert_unauthorized(get(client, f"{header}.{payload}.{segment(mac)}"))


# --- Time --------------------------------------------------------------------------------------


def test_expired(client, claims, secret):
    now = int(time.time())
    claims.update(iat=now - 7200, nbf=now - 7200, exp=now - 60)
    assert_unauthorized(get(client, sign(HS256, claims, secret)))


def test_not_yet_valid(client, claims, secret):
    claims.update(nbf=int(time.time()) + 600)
    assert_unauthorized(get(client, sign(HS256, claims, secret)))


def test_issued_in_the_future(client, claims, secret):
    claims.update(iat=int(time.time()) + 600)
    assert_unauthorized(get(client, sign(HS256, claims, secret)))


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize(
    "value", ["tomorrow", None, [1], 1e400], ids=["text", "null", "list", "inf"]
)
def test_a_time_that_is_not_a_number(client, claims, secret, claim, value):
    claims[claim] = value
    assert_unauthorized(get(client, sign(HS256, claims, secret)))


# --- Signature and algorithm -------------------------------------------------------------------


def test_wrongly_signed(client, claims):
    assert_unauthorized(get(client, sign(HS256, claims, secrets.token_bytes(48))))


def test_signed_with_an_empty_key(client, claims):
    assert_unauthorized(get(client, sign(HS256, claims, b"")))


def test_tampered_claims(client, claims, secret):
    header, _, signature = sign(HS256, claims, secret).split(".")
    forged = segment({**claims, "admin": True, "sub": "1"})
    assert_unauthorized(get(client, f"{header}.{forged}.{signature}"))


def test_signature_stripped(client, claims, secret):
    header, payload, _ = sign(HS256, claims, secret).split(".")
    assert_unauthorized(get(client, f"{header}.{payload}."))


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none(client, claims, alg):
    unsigned = f"{segment({'alg': alg, 'typ': 'JWT'})}.{segment(claims)}."
    assert_unauthorized(get(client, unsigned))


def test_alg_missing(client, claims, secret):
    assert_unauthorized(get(client, sign({"typ": "JWT"}, claims, secret)))


@pytest.mark.parametrize(("alg", "digest"), [("HS384", hashlib.sha384), ("HS512", hashlib.sha512)])
def test_another_hmac_algorithm_with_the_right_secret(client, claims, secret, alg, digest):
    # The algorithm is pinned to HS256: even a genuine signature under another one is refused.
    assert_unauthorized(get(client, sign({"alg": alg, "typ": "JWT"}, claims, secret, digest)))


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256", "EdDSA"])
def test_an_asymmetric_algorithm(client, claims, secret, alg):
    # The key-confusion attack: an "RS256" token "verified" with the HMAC secret as a public key.
    assert_unauthorized(get(client, sign({"alg": alg, "typ": "JWT"}, claims, secret)))


def test_an_unencoded_payload_header(client, claims, secret):
    header = {"alg": "HS256", "b64": False, "crit": ["b64"]}
    assert_unauthorized(get(client, sign(header, claims, secret)))


# --- Audience, issuer, subject ------------------------------------------------------------------


@pytest.mark.parametrize(
    "aud", ["someone-else", ["someone-else"], 42, [tokens.AUDIENCE, 42], ""], ids=repr
)
def test_wrong_audience(client, claims, secret, aud):
    claims["aud"] = aud
    assert_unauthorized(get(client, sign(HS256, claims, secret)))


@pytest.mark.parametrize("iss", ["someone-else", "", ["mp3-converter"], 42], ids=repr)
def test_wrong_issuer(client, claims, secret, iss):
    claims["iss"] = iss
    assert_unauthorized(get(client, sign(HS256, claims, secret)))


@pytest.mark.parametrize("claim", tokens.REQUIRED_CLAIMS)
def test_a_required_claim_missing(client, claims, secret, claim):
    del claims[claim]
    assert_unauthorized(get(client, sign(HS256, claims, secret)))


@pytest.mark.parametrize("claim", tokens.REQUIRED_CLAIMS)
def test_a_required_claim_null(client, claims, secret, claim):
    claims[claim] = None
    assert_unauthorized(get(client, sign(HS256, claims, secret)))


@pytest.mark.parametrize("sub", [7, "abc", "", "-1", "1.5", " 7", "٣", "9" * 30, 2**64], ids=repr)
def test_a_subject_that_is_not_a_user_id(client, claims, secret, sub):
    claims["sub"] = sub
    assert_unauthorized(get(client, sign(HS256, claims, secret)))


@pytest.mark.parametrize("jti", [7, ["a"], {"a": 1}], ids=repr)
def test_a_token_id_that_is_not_a_string(client, claims, secret, jti):
    claims["jti"] = jti
    assert_unauthorized(get(client, sign(HS256, claims, secret)))


def test_only_a_true_admin_claim_makes_an_admin(claims, settings):
    for value in ("false", "yes", 1):
        claims["admin"] = value
        token = sign(HS256, claims, settings.jwt_secret.encode())
        assert tokens.check(token, settings.jwt_secret).admin is False
