"""The OpenAPI document against a real server, with schemathesis: real answers (runs,
batches, deliveries, secrets, models...) conform to the document, and generated requests
never make the server fail, every answer to them conforming too. Bounded here
(``RUNBACK_FUZZ_EXAMPLES`` per operation, default 5); ``make soak`` asks for more."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from support.process import ServeProcess, cli

EXAMPLES = int(os.environ.get("RUNBACK_FUZZ_EXAMPLES", "5"))
CHECKS = [response_schema_conformance, content_type_conformance, status_code_conformance]
STREAMS = {"/v1/runs/{run_id}/stream", "/v1/callback-deliveries/stream"}
"""Never ending for a live run or the deliveries feed: not fuzzed (their errors are, below)."""
SLOW = {"/v1"}
"""Runware's door waits up to 2 minutes for a task's results: not fuzzed here."""


class Live:
    """A served API, its key, its document, and a callback URL nothing listens on."""

    def __init__(self, server: ServeProcess, key: str) -> None:
        self.url = server.url
        self.headers = {"Authorization": f"Bearer {key}"}
        self.schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        self.http = httpx.Client(base_url=server.url, headers=self.headers, timeout=10)
        with socket.socket() as closed:  # bound, then closed: refused when called
            closed.bind(("127.0.0.1", 0))
            self.dead_url = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"

    def answer(
        self,
        method: str,
        path: str,
        *,
        path_parameters: dict[str, Any] | None = None,
        body: Any = None,
        query: dict[str, Any] | None = None,
        expect: int = 200,
    ) -> Any:
        """Call an operation as documented and check its answer against the document."""
        operation = self.schema[path][method]
        kwargs: dict[str, Any] = {"path_parameters": path_parameters or {}, "query": query}
        if body is not None:
            kwargs |= {"body": body, "media_type": "application/json"}
        case = operation.Case(**kwargs)
        response = case.call(base_url=self.url, headers=self.headers, timeout=10)
        assert response.status_code == expect, (method, path, response.text)
        case.validate_response(response, checks=CHECKS)
        return response.json() if response.content else None

    def ended(self, path: str, *, what: str) -> Any:
        deadline = time.monotonic() + 20
        while True:
            found = self.http.get(path).json()
            if found["status_code"] not in {"queued", "dispatching", "running"}:
                return found
            assert time.monotonic() < deadline, f"{what} did not end: {found}"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    data_dir = tmp_path_factory.mktemp("openapi") / "data"
    key = cli("keys", "create", "--data-dir", str(data_dir)).stdout.strip()
    env = {"RUNBACK_CALLBACK_ALLOW": "127.0.0.0/8"}
    with ServeProcess(data_dir, env=env) as server:
        found = Live(server, key)
        yield found
        found.http.close()


def test_real_answers_conform_to_the_document(live: Live) -> None:
    run = live.answer(
        "POST",
        "/v1/models/{model}/runs",
        path_parameters={"model": "runback/echo"},
        body={"input": {"n": 1}, "callback_url": live.dead_url, "metadata": {"ref": "a"}},
        expect=201,
    )
    run_id = {"run_id": run["id"]}
    live.ended(f"/v1/runs/{run['id']}", what="the run")
    live.answer("GET", "/v1/runs/{run_id}", path_parameters=run_id)
    live.answer("POST", "/v1/runs/{run_id}/cancel", path_parameters=run_id)
    live.answer("GET", "/v1/runs", query={"limit": 5})
    live.answer("GET", "/v1/runs/statuses")
    live.answer("GET", "/v1/runs/{run_id}", path_parameters={"run_id": "nope"}, expect=404)
    live.answer(
        "POST",
        "/v1/models/{model}/runs",
        path_parameters={"model": "runback/echo"},
        body={"input": 1},
        expect=422,
    )

    deliveries = live.answer("GET", "/v1/runs/{run_id}/callback", path_parameters=run_id)
    assert deliveries, "the run's callback was made"
    delivery_id = {"delivery_id": deliveries[0]["id"]}
    live.answer("GET", "/v1/callback-deliveries/{delivery_id}", path_parameters=delivery_id)
    live.answer("GET", "/v1/callback-deliveries/{delivery_id}/message", path_parameters=delivery_id)
    recovery = live.answer(
        "POST",
        "/v1/callback-deliveries/recoveries",
        body={"from": "2020-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"},
        expect=201,
    )
    live.answer(
        "GET",
        "/v1/callback-deliveries/recoveries/{recovery_id}",
        path_parameters={"recovery_id": recovery["id"]},
    )
    live.answer("POST", "/v1/callback-tests", body={"url": live.dead_url})

    batch = live.answer(
        "POST",
        "/v1/models/{model}/batches",
        path_parameters={"model": "runback/echo"},
        body={"input": [{"n": 1}, {"n": 2, "client_ref": "b"}], "callback_url": live.dead_url},
        expect=201,
    )
    batch_id = {"batch_id": batch["id"]}
    live.ended(f"/v1/batches/{batch['id']}", what="the batch")
    live.answer("GET", "/v1/batches/{batch_id}", path_parameters=batch_id)
    live.answer("GET", "/v1/batches/{batch_id}/items", path_parameters=batch_id)
    live.answer("GET", "/v1/batches/{batch_id}/callback", path_parameters=batch_id)
    live.answer("POST", "/v1/batches/{batch_id}/cancel", path_parameters=batch_id)
    live.answer("GET", "/v1/batches/statuses")

    hmac = live.answer("POST", "/v1/callback-secrets", body={"label": "one"}, expect=201)
    live.answer("POST", "/v1/callback-secrets", body={"type": "ed25519"}, expect=201)
    secret_id = {"secret_id": hmac["id"]}
    live.answer("GET", "/v1/callback-secrets")
    live.answer("GET", "/v1/callback-secrets/jwks")
    live.answer("GET", "/v1/callback-secrets/{secret_id}", path_parameters=secret_id)
    live.answer(
        "PATCH", "/v1/callback-secrets/{secret_id}", path_parameters=secret_id, body={"label": "b"}
    )

    live.answer("GET", "/v1/models")
    ordered = {"callback_url": live.dead_url}
    live.answer("PUT", "/v1/ordered-callbacks", body=ordered, expect=201)
    live.answer("GET", "/v1/ordered-callbacks")
    live.answer("DELETE", "/v1/ordered-callbacks", body=ordered, expect=204)
    live.answer("GET", "/healthz")
    live.answer("GET", "/readyz")


def test_no_generated_request_makes_the_server_fail(live: Live) -> None:
    operations = [
        result.ok() for result in live.schema.get_all_operations() if isinstance(result, Ok)
    ]
    assert len(operations) > 10
    for operation in operations:
        if operation.path in STREAMS | SLOW:
            continue

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
        def fuzz(case: schemathesis.Case[Any]) -> None:
            response = case.call(headers=live.headers, timeout=10)
            where = f"{case.method} {case.formatted_path}"
            assert response.status_code < 500, (where, response.text)
            case.validate_response(response, checks=CHECKS)

        fuzz()


def test_streams_refuse_in_the_envelope(live: Live) -> None:
    live.answer("GET", "/v1/runs/{run_id}/stream", path_parameters={"run_id": "nope"}, expect=404)
