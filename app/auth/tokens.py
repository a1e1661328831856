"""Issue and check the service's JSON Web Tokens (HS256)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import jwt

ISSUER = "mp3-converter"
AUDIENCE = "mp3-converter-api"
ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["sub", "iat", "nbf", "exp", "iss", "aud", "jti"]


class TokenError(Exception):
    """The token is missing, malformed, expired or not ours; the message says which."""


@dataclass(frozen=True)
class Identity:
    """Who a valid token speaks for."""

    user_id: int
    email: str
    admin: bool


def issue(identity: Identity, secret: str, ttl_seconds: int) -> str:
    """Return a signed token for the identity, valid for `ttl_seconds`."""
    issued = int(time.time())
    claims = {
        "sub": str(identity.user_id),
        "email": identity.email,
        "admin": identity.admin,
        "iat": issued,
        "nbf": issued,
        "exp": issued + ttl_seconds,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def check(token: str, secret: str) -> Identity:
    """Return the identity of a valid token, or raise TokenError."""
    try:
        # The algorithm is pinned: a token that names `none` or an asymmetric algorithm is refused.
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": REQUIRED_CLAIMS},
            leeway=5,
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("the token has expired; log in again") from None
    except jwt.ImmatureSignatureError:
        raise TokenError("the token is not valid yet") from None
    except jwt.InvalidAudienceError:
        raise TokenError("the token is not for this service") from None
    except jwt.InvalidIssuerError:
        raise TokenError("the token was not issued by this service") from None
    except jwt.InvalidSignatureError:
        raise TokenError("the token's signature is not valid") from None
    except jwt.PyJWTError as exc:
        raise TokenError(f"the token is not valid: {exc}") from None
    subject = claims["sub"]
    # Only this service's own digits pass: a user id must also fit the 64-bit integers that
    # MongoDB stores job owners as.
    if not (isinstance(subject, str) and subject.isascii() and subject.isdigit()):
        raise TokenError("the token's subject is not valid")
    user_id = int(subject)
    if user_id >= 2**63:
        raise TokenError("the token's subject is not valid")
    return Identity(
        user_id=user_id,
        email=str(claims.get("email", "")),
        admin=claims.get("admin") is True,
    )
