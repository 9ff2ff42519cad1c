"""The OpenAPI document, fuzzed with schemathesis against a real server: no 5xx, and every
error in the contract's envelope. Bounded here (``RUNBACK_FUZZ_EXAMPLES`` per operation,
default 20); ``make soak`` asks for more."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from support.process import ServeProcess, cli

EXAMPLES = int(os.environ.get("RUNBACK_FUZZ_EXAMPLES", "20"))


def test_no_generated_request_makes_the_server_fail(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = cli("keys", "create", "--data-dir", str(data_dir)).stdout.strip()
    with ServeProcess(data_dir) as server:
        schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        operations = [
            result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)
        ]
        assert len(operations) > 10
        for operation in operations:

            @given(case=operation.as_strategy())
            @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
            def fuzz(case: schemathesis.Case[Any]) -> None:
                response = case.call(headers={"Authorization": f"Bearer {key}"}, timeout=10)
                where = f"{case.method} {case.formatted_path}"
                assert response.status_code < 500, (where, response.text)
                if response.status_code >= 400 and "json" in response.headers.get(
                    "content-type", ""
                ):
                    assert {"code", "message"} <= set(response.json()), (where, response.text)

            fuzz()
