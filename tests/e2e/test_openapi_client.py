"""A client generated from the OpenAPI document by a standard generator
(``openapi-python-client``) works against a live ``runback serve``: it creates a run,
reads it back until it ends, and lists it."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from support.process import ServeProcess, cli

ROOT = Path(__file__).resolve().parents[2]
GENERATOR_BIN = ROOT / ".venv-openapi" / "bin"
"""The generator's own venv (``make test`` builds it from requirements-openapi.lock): it
pins an older typer than runback's CLI runs on."""
GENERATOR = GENERATOR_BIN / "openapi-python-client"
PACKAGE = "runback_generated_client"


@pytest.fixture
def generated(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    data_dir = tmp_path / "data"
    key = cli("keys", "create", "--data-dir", str(data_dir)).stdout.strip()
    with ServeProcess(data_dir) as server:
        document = tmp_path / "openapi.json"
        document.write_bytes(httpx.get(f"{server.url}/openapi.json").content)
        assert GENERATOR.exists(), f"{GENERATOR} is missing: 'make test' installs it"
        # The generator formats its output with ruff, which it finds on PATH.
        path = f"{GENERATOR_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
        command = [str(GENERATOR), "generate", "--path", str(document), "--meta", "none"]
        made = subprocess.run(
            [*command, "--output-path", str(tmp_path / PACKAGE)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PATH": path},
            check=False,
        )
        assert made.returncode == 0, made.stdout + made.stderr
        assert "Endpoint will not be generated" not in made.stdout + made.stderr, made.stdout
        sys.path.insert(0, str(tmp_path))
        try:
            yield server.url, key, tmp_path
        finally:
            sys.path.remove(str(tmp_path))
            for name in [n for n in sys.modules if n.split(".")[0] == PACKAGE]:
                del sys.modules[name]


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_a_generated_client_creates_and_reads_a_run(generated: tuple[str, str, Path]) -> None:
    url, key, _ = generated
    client_module = _module("client")
    create_run, get_run = _module("api.runs.create_run"), _module("api.runs.get_run")
    list_runs, models = _module("api.runs.list_runs"), _module("models")
    client: Any = client_module.AuthenticatedClient(base_url=url, token=key)
    with client:
        body = models.CreateRunRunCreate.from_dict({"input": {"n": 7}, "client_ref": "gen"})
        made = create_run.sync(model="runback/echo", client=client, body=body)
        assert isinstance(made, models.Run), made
        assert made.status_code == models.RunStatus.QUEUED
        assert made.client_ref == "gen"

        deadline = time.monotonic() + 20
        while True:
            found = get_run.sync(run_id=str(made.id), client=client)
            assert isinstance(found, models.RunDetail), found
            if found.status_code == models.RunStatus.SUCCEEDED:
                break
            assert time.monotonic() < deadline, f"the run did not end: {found}"
            time.sleep(0.05)
        assert found.id == made.id
        assert found.input_.to_dict() == {"n": 7}
        assert found.completed_at is not None

        listed = list_runs.sync(client=client, client_ref="gen")
        assert isinstance(listed, models.PageRun)
        assert [run.id for run in listed.items] == [made.id]

        missing = get_run.sync_detailed(run_id="nope", client=client)
        assert missing.status_code == 404
        assert isinstance(missing.parsed, models.Error)
        assert missing.parsed.code == "RUN_NOT_FOUND"
