"""Schemathesis in stateful mode against a real server: sequences of calls linked by the ids the
responses return (items, jobs) never get a 5xx, and the server is healthy afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test
from server_proc import ServerProcess

from app.main import create_app
from app.settings import Settings

schema = schemathesis.openapi.from_dict(create_app(Settings(model_dir="unused", data_dir="unused")).openapi())
Workflow = schema.as_state_machine()


@pytest.fixture(scope="module")
def stateful_server(tmp_path_factory: pytest.TempPathFactory, tones: list[Path]) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("stateful") / "data").start()
    with server.client() as c, open(tones[4], "rb") as fh:  # one item, so item and job links have targets
        assert c.post("/items", headers=server.headers(), files={"file": (tones[4].name, fh)}).status_code == 202
    try:
        yield server
    finally:
        server.stop()


def test_stateful_sequences_never_get_a_5xx(stateful_server: ServerProcess) -> None:
    seen: list[tuple[str, int]] = []

    class Sequences(Workflow):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case):  # noqa: ANN001, ANN202
            return {"base_url": stateful_server.url, "headers": stateful_server.headers(), "timeout": 60}

        def validate_response(self, response, case, additional_checks=None, **kwargs):  # noqa: ANN001, ANN202
            seen.append((f"{case.method} {case.path}", response.status_code))
            assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:300])

    run_state_machine_as_test(Sequences, settings=settings(max_examples=12, stateful_step_count=6, deadline=None,
                                                           suppress_health_check=list(HealthCheck),
                                                           derandomize=True))
    assert len({route for route, _ in seen}) >= 5, seen  # the sequences reached many routes
    with stateful_server.client() as c:
        assert c.get("/readyz").status_code == 200
