"""The `jwt_required` guard: every API route but login and health sits behind it."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import TypeVar

from flask import g, request

from app.auth.tokens import Identity, TokenError, check
from app.errors import ApiError
from app.services import services

F = TypeVar("F", bound=Callable)

#: Other ways a request may prove who it is (the web page's session cookie adds one).
#: Each returns an Identity, None when it does not apply, or raises ApiError.
IDENTITY_SOURCES: list[Callable[[], Identity | None]] = []


def _unauthorized(message: str) -> ApiError:
    return ApiError(
        401, "unauthorized", message, {"WWW-Authenticate": 'Bearer realm="mp3-converter"'}
    )


def bearer_identity() -> Identity | None:
    """Return the identity of the request's Bearer token, None without one; raise if it is bad."""
    header = request.headers.get("Authorization", "")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorized("the Authorization header must be 'Bearer <token>'")
    try:
        return check(token.strip(), services().settings.jwt_secret)
    except TokenError as exc:
        raise _unauthorized(str(exc)) from None


def current_identity() -> Identity:
    """Return who makes the request, or raise 401."""
    identity = bearer_identity()
    for source in IDENTITY_SOURCES:
        if identity is not None:
            break
        identity = source()
    if identity is None:
        raise _unauthorized("log in first: this needs a Bearer token")
    return identity


def jwt_required(view: F) -> F:
    """Refuse the request with 401 unless it carries a valid token; set `g.identity`."""

    @wraps(view)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        g.identity = current_identity()
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def admin_required(view: F) -> F:
    """Like jwt_required, and refuse anyone who is not an admin with 403."""

    @wraps(view)
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        g.identity = current_identity()
        if not g.identity.admin:
            raise ApiError(403, "forbidden", "only an administrator may do this")
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
