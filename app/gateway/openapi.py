"""GET /openapi.json: the OpenAPI 3.1 description of the HTTP API (app/openapi.json)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from flask import Blueprint, Response, jsonify

bp = Blueprint("openapi", __name__)

SPEC = Path(__file__).resolve().parents[1] / "openapi.json"


@cache
def spec() -> dict:
    """Return the API description, read once."""
    return json.loads(SPEC.read_text())


@bp.get("/openapi.json")
def openapi() -> Response:
    """Return the API description."""
    return jsonify(spec())
