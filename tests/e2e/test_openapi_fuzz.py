"""The OpenAPI document against a real server, with schemathesis: real answers (runs,
batches, deliveries, secrets, models...) conform to the document, and generated requests
never make the server fail, every answer to them conforming too. Bounded here
(``RUNBACK_FUZZ_EXAMPLES`` per operation, default 20); ``make soak`` asks for more."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
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

EXAMPLES = int(os.environ.get("RUNBACK_FUZZ_EXAMPLES", "20"))
CHECKS = [response_schema_conformance, content_type_conformance, status_code_conformance]
STREAMS = {"/v1/runs/{run_id}/stream", "/v1/callback-deliveries/stream"}
"""Never ending for a live run or the deliveries feed: not fuzzed (their errors are, below)."""
SLOW = {"/v1"}
"""Runware's door waits up to 2 minutes for a task's results: not fuzzed here."""


class Live:
    """A served app, its key, its document, and a callback URL nothing listens on."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.headers = {"Authorization": f"Bearer {key}"}
        self.schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
        self.http = httpx.Client(base_url=url, headers=self.headers, timeout=10)
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
        return self.checked(case, response, expect)

    def checked(self, case: schemathesis.Case[Any], response: Any, expect: int) -> Any:
        """``response`` (to ``case``) as JSON, once it is checked against the document."""
        where = f"{case.method} {case.formatted_path}"
        assert response.status_code == expect, (where, response.text)
        case.validate_response(response, checks=CHECKS)
        media = response.headers.get("content-type", "")  # schemathesis': a list of values
        if "json" not in str(media):
            return response.text if response.content else None
        return response.json()

    def until(self, path: str, done: Callable[[Any], bool], *, what: str) -> Any:
        """What ``GET path`` answers once ``done`` says so (within a deadline)."""
        deadline = time.monotonic() + 20
        while not done(found := self.http.get(path).json()):
            assert time.monotonic() < deadline, f"{what}: {found}"
            time.sleep(0.05)
        return found

    def ended(self, path: str, *, what: str) -> Any:
        return self.until(path, lambda found: found["status_code"] not in LIVE, what=what)


LIVE = {"queued", "dispatching", "running"}


class Apps:
    """``runback serve`` and a ``runback receive`` that its callbacks reach."""

    def __init__(self, api: Live, inbox: Live, inbox_url: str) -> None:
        self.api = api
        self.inbox = inbox
        self.hook = f"{inbox_url}/webhooks/runback"


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Apps]:
    root = tmp_path_factory.mktemp("openapi")
    keys = [
        cli("keys", "create", "--data-dir", str(root / name)).stdout.strip()
        for name in ("api", "inbox")
    ]
    env = {"RUNBACK_CALLBACK_ALLOW": "127.0.0.0/8"}
    with ServeProcess(root / "api", env=env) as server:
        api = Live(server.url, keys[0])
        secret = api.http.post("/v1/callback-secrets", json={"label": "inbox"}).json()
        args = ("--secret", secret["plain_secret"], "--callback-allow", "127.0.0.0/8")
        with ServeProcess(root / "inbox", command="receive", args=args) as receiver:
            inbox = Live(receiver.url, keys[1])
            yield Apps(api, inbox, receiver.url)
            inbox.http.close()
        api.http.close()


@pytest.fixture(scope="module")
def live(apps: Apps) -> Live:
    return apps.api


def test_real_answers_conform_to_the_document(apps: Apps) -> None:
    live = apps.api
    run = live.answer(
        "POST",
        "/v1/models/{model}/runs",
        path_parameters={"model": "runback/echo"},
        body={"input": {"n": 1}, "callback_url": apps.hook, "metadata": {"ref": "a"}},
        expect=201,
    )
    run_id = {"run_id": run["id"]}
    live.ended(f"/v1/runs/{run['id']}", what="the run did not end")
    live.until(
        f"/v1/runs/{run['id']}",
        lambda found: (found["callback"] or {}).get("status_code") == "succeeded",
        what="the run's callback was not delivered",
    )
    live.answer("GET", "/v1/runs/{run_id}", path_parameters=run_id)
    events = live.answer("GET", "/v1/runs/{run_id}/stream", path_parameters=run_id)
    assert "event: run.completed" in events  # an ended run's stream ends
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
    message = live.answer(
        "GET", "/v1/callback-deliveries/{delivery_id}/message", path_parameters=delivery_id
    )
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
    live.ended(f"/v1/batches/{batch['id']}", what="the batch did not end")
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
    _inbox_answers(apps.inbox, run["id"], message)


def _inbox_answers(inbox: Live, run_id: str, message: dict[str, Any]) -> None:
    """The receiver's answers, about the run's callback it received (and ``message``, the
    same callback signed again)."""
    events = inbox.answer("GET", "/v1/inbox")
    assert [event["run_id"] for event in events["items"]] == [run_id]
    inbox.answer(
        "GET", "/v1/inbox/{event_id}", path_parameters={"event_id": events["items"][0]["id"]}
    )
    inbox.answer("GET", "/v1/inbox/{event_id}", path_parameters={"event_id": "nope"}, expect=404)
    inbox.answer("GET", "/v1/expected", query={"state": "waiting"})
    inbox.answer("POST", "/v1/expected", body={"source": "runback", "run_id": run_id}, expect=422)
    case = inbox.schema["/webhooks/{source}"]["POST"].Case(path_parameters={"source": "runback"})
    forged = inbox.http.post(
        "/webhooks/runback", content=b"{}", headers={"Content-Type": "application/json"}
    )
    inbox.checked(case, forged, 401)
    again = inbox.http.post(
        "/webhooks/runback", content=message["body"].encode(), headers=message["headers"]
    )
    assert inbox.checked(case, again, 200)["duplicate"] is True
    inbox.answer("GET", "/healthz")


@pytest.mark.parametrize("app", ["api", "inbox"])
def test_no_generated_request_makes_the_server_fail(apps: Apps, app: str) -> None:
    live = apps.api if app == "api" else apps.inbox
    operations = [
        result.ok() for result in live.schema.get_all_operations() if isinstance(result, Ok)
    ]
    assert len(operations) > 5
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
