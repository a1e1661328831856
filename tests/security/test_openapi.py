"""app/openapi.json describes exactly the routes the gateway has, in valid OpenAPI 3.1."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

pytestmark = pytest.mark.integration

SPEC = Path(__file__).resolve().parents[2] / "app" / "openapi.json"
#: Routes that are not part of the HTTP API: Flask's static files and the web page.
NOT_API = re.compile(r"^/$|^/web/|^/static/")
METHODS = {"get", "post", "put", "patch", "delete"}


def _spec() -> dict:
    return json.loads(SPEC.read_text())


def _flask_operations(app) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or NOT_API.match(rule.rule):
            continue
        # `/jobs/<job_id>` and `/jobs/<string:job_id>` are OpenAPI's `/jobs/{job_id}`.
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        found |= {(method.lower(), path) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return found


def _described_operations() -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, item in _spec()["paths"].items()
        for method in item
        if method in METHODS
    }


def test_every_route_is_described(app) -> None:
    missing = _flask_operations(app) - _described_operations()
    assert not missing, f"routes missing from app/openapi.json: {sorted(missing)}"


def test_every_described_operation_exists(app) -> None:
    extra = _described_operations() - _flask_operations(app)
    assert not extra, f"app/openapi.json describes routes the app does not have: {sorted(extra)}"


def test_the_design_table_is_covered() -> None:
    design = {
        ("post", "/login"),
        ("post", "/upload"),
        ("get", "/download"),
        ("get", "/jobs"),
        ("get", "/jobs/{job_id}"),
        ("get", "/jobs/{job_id}/mp3"),
        ("delete", "/jobs/{job_id}"),
        ("get", "/healthz"),
        ("get", "/readyz"),
        ("get", "/openapi.json"),
    }
    assert design <= _described_operations()


def test_the_gateway_serves_the_file(client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.get_json() == _spec()


def test_it_is_valid_openapi_3_1() -> None:
    # Schemathesis carries the official OpenAPI 3.1 meta-schema (a JSON Schema 2020-12 document).
    from schemathesis.specs.openapi.definitions import OPENAPI_31

    spec = _spec()
    assert spec["openapi"].startswith("3.1.")
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft202012Validator(OPENAPI_31).iter_errors(spec)
    ]
    assert not errors, errors
    for schema in spec["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def test_the_job_shape_is_design_md_s() -> None:
    schemas = _spec()["components"]["schemas"]
    job, mp3 = schemas["Job"], schemas["Mp3"]
    fields = ["id", "status", "progress", "filename", "created_at", "updated_at", "error", "mp3"]
    assert sorted(job["required"]) == sorted(fields) == sorted(job["properties"])
    assert job["additionalProperties"] is False
    assert job["properties"]["status"]["enum"] == [
        "queued",
        "converting",
        "done",
        "failed",
        "cancelled",
    ]
    assert (job["properties"]["progress"]["minimum"], job["properties"]["progress"]["maximum"]) == (
        0,
        100,
    )
    assert sorted(mp3["required"]) == sorted(["id", "url", "bytes", "duration_seconds"])
    error = schemas["Error"]["properties"]["error"]
    assert sorted(error["required"]) == ["code", "message"]


def test_every_operation_says_who_may_call_it() -> None:
    spec = _spec()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["basic"] == {**schemes["basic"], "type": "http", "scheme": "basic"}
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    public = {"/healthz", "/readyz", "/openapi.json"}
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            security = operation.get("security", spec["security"])
            assert (security == []) == (path in public), (method, path)
            if security:
                assert "401" in operation["responses"], (method, path)
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and "$ref" not in response:
                    assert "application/json" in response["content"], (method, path, status)
