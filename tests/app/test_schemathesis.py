"""Property-based API fuzzing (schemathesis) against the live server: no input gives a 5xx, every
status is one the OpenAPI document declares, and every body matches its declared schema.

Every operation in /openapi.json gets a bounded number of generated requests (positive and
negative: wrong types, missing fields, odd multipart bodies); the API key is sent, so the write
routes are exercised past authentication.
"""

from __future__ import annotations

import httpx
import schemathesis
from app_server import API_KEY, LiveServer
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from app.main import create_app
from app.settings import Settings


# The document is built from the app factory (no model is loaded for it) and the cases are sent to
# the live server. (schemathesis.pytest.from_fixture, the lazy loader, breaks on pytest 9.2: it
# writes the removed `Node._nodeid`.)
schema = schemathesis.openapi.from_dict(create_app(Settings(model_dir="unused", data_dir="unused")).openapi())


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_input_makes_the_server_fail(case, server: LiveServer, ingested: dict[str, str]) -> None:
    response = case.call(base_url=server.url, headers={"X-API-Key": API_KEY}, timeout=60)
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance,
                                             response_schema_conformance])
    if response.status_code >= 400:
        body = response.json()
        if case.path.startswith("/v1/"):  # OpenAI's error body, which its clients read
            assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
            assert body["error"]["message"], body
        else:
            assert set(body) >= {"error", "detail"}, body


def test_still_serving_after_fuzzing(client: httpx.Client, ingested: dict[str, str]) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get(f"/items/{ingested['red']}").status_code == 200
