"""``pip install runback`` is the light part: verify a callback, use a framework adapter, run
``runback verify``, call the API with ``runback.Client``; the server commands say how to get
the server. Installed offline, in a fresh virtual environment, from wheels built in this
run."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from runback.core.signing import generate_secret, signature_headers

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements.lock"
SERVER_ONLY = (
    "aiohttp", "fastapi", "orjson", "pydantic", "sqlalchemy", "starlette", "typer", "uvicorn",
)  # fmt: skip

VERIFY = """
import sys
from datetime import UTC, datetime

import runback
from runback.receiver import verify
from runback.receiver.events import event_keys

body = sys.stdin.buffer.read()
headers = dict(arg.split("=", 1) for arg in sys.argv[1:])
secret = headers.pop("secret")
verified = verify(body, headers, [secret])
assert verified.scheme == "v1", verified
event_keys({"event": "run.completed"}, webhook_id=verified.webhook_id, body=body)
try:
    runback.ModelRegistry
except ModuleNotFoundError as exc:
    print(exc)
"""

FASTAPI_APP = """
import asyncio, json, sys
from typing import Annotated

from fastapi import Depends, FastAPI
from runback.receiver.starlette import VerifiedWebhook, Webhook, install

app = FastAPI()
install(app)
verified = VerifiedWebhook([sys.argv[1]])


@app.post("/webhook")
async def receive(webhook: Annotated[Webhook, Depends(verified)]) -> dict[str, str]:
    return {"event": webhook.json()["event"]}


async def post(body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    # The ASGI call a server makes, by hand: nothing but FastAPI is installed.
    sent: list[dict] = []
    chunks = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/webhook", "raw_path": b"/webhook", "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


body = sys.stdin.buffer.read()
headers = json.loads(sys.argv[2])
print(asyncio.run(post(body, headers)))
print(asyncio.run(post(body + b" ", headers)))
"""


def _run(
    *args: str | Path, stdin: bytes = b"", timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        input=stdin.decode(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


@pytest.fixture(scope="module")
def light(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A fresh environment with ``pip install runback`` from local wheels, and the wheels."""
    base = tmp_path_factory.mktemp("light")
    wheels, venv = base / "wheels", base / "venv"
    pip = (sys.executable, "-m", "pip")
    _ok(_run(*pip, "wheel", "-q", "--no-deps", "-w", wheels, ROOT))
    # The light part's dependencies and FastAPI, as the lock pins them (from the machine's
    # indexes and cache: built here, then installed with the network shut).
    _ok(_run(*pip, "wheel", "-q", "-c", LOCK, "-w", wheels, "httpx", "idna", "uuid-utils",
             "fastapi"))  # fmt: skip
    _ok(_run(sys.executable, "-m", "venv", venv))
    python = venv / "bin" / "python"
    _ok(_run(python, "-m", "pip", "install", "-q", "--no-index", "--find-links", wheels, "runback"))
    return python, wheels


def _signed() -> tuple[bytes, dict[str, str], str]:
    secret = generate_secret()
    body = orjson.dumps({"event": "run.completed", "run_id": "r1"})
    headers = signature_headers(
        body=body, msg_id="msg_r1", timestamp=int(time.time()), current=secret, active=[secret]
    )
    return body, dict(headers), secret


def test_the_light_install_has_no_server_dependency(light: tuple[Path, Path]) -> None:
    python, _ = light
    for name in SERVER_ONLY:
        done = _run(python, "-c", f"import {name}")
        assert "ModuleNotFoundError" in done.stderr, name


CLIENT = """
import asyncio

import runback
from runback.errors import TransportError

# Nothing listens on port 1: the call is made, and refused, without any server code.
with runback.Client("http://127.0.0.1:1", "rb_key", retries=0) as client:
    try:
        client.models.list()
    except TransportError as exc:
        print("sync:", type(exc).__name__)


async def main() -> None:
    async with runback.AsyncClient("http://127.0.0.1:1", "rb_key", retries=0) as client:
        try:
            await client.runs.get("r1")
        except TransportError as exc:
            print("async:", type(exc).__name__)


asyncio.run(main())
"""


def test_the_light_install_has_the_api_client(light: tuple[Path, Path]) -> None:
    python, _ = light

    said = _ok(_run(python, "-c", CLIENT))

    assert said.splitlines() == ["sync: TransportError", "async: TransportError"]


def test_the_light_install_verifies_a_callback(light: tuple[Path, Path]) -> None:
    python, _ = light
    body, headers, secret = _signed()
    args = [f"{name}={value}" for name, value in headers.items()]

    said = _ok(_run(python, "-c", VERIFY, *args, f"secret={secret}", stdin=body))

    assert "pip install 'runback[server]'" in said  # a server name, asked for, says how


def test_runback_verify_works_and_a_server_command_says_how_to_get_the_server(
    light: tuple[Path, Path], tmp_path: Path
) -> None:
    python, _ = light
    runback = python.parent / "runback"
    body, headers, secret = _signed()
    (tmp_path / "body").write_bytes(body)
    (tmp_path / "headers.json").write_bytes(orjson.dumps(headers))

    verified = _run(runback, "verify", "--secret", secret, "--headers",
                    tmp_path / "headers.json", "--body", tmp_path / "body")  # fmt: skip
    (tmp_path / "changed").write_bytes(body.replace(b"r1", b"r2"))
    changed = _run(runback, "verify", "--secret", secret, "--headers",
                   tmp_path / "headers.json", "--body", tmp_path / "changed")  # fmt: skip
    served = _run(runback, "serve", "--port", "0")
    keys = _run(runback, "keys", "create")
    inbox = _run(
        runback, "verify", "--secret", secret, "--event", "0193b7e4-0000-7000-8000-000000000000"
    )

    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("valid: v1 signature of msg_r1")
    assert changed.returncode == 1
    assert changed.stderr.startswith("invalid (wrong_secret): webhook-signature matches no secret")
    for refused in (served, keys, inbox):
        assert refused.returncode == 2
        assert refused.stderr.count("\n") == 1, refused.stderr
        assert "pip install 'runback[server]'" in refused.stderr
        assert "Traceback" not in refused.stderr


def test_the_fastapi_adapter_runs_with_fastapi_added_alone(light: tuple[Path, Path]) -> None:
    python, wheels = light
    _ok(_run(python, "-m", "pip", "install", "-q", "--no-index", "--find-links", wheels,
             "fastapi"))  # fmt: skip
    body, headers, secret = _signed()

    said = _ok(_run(python, "-c", FASTAPI_APP, secret, orjson.dumps(headers).decode(), stdin=body))

    accepted, refused = said.splitlines()
    assert accepted == '(200, b\'{"event":"run.completed"}\')'
    assert refused.startswith('(401, b\'{"code":"INVALID_SIGNATURE"')


NO_OTEL = """
import io, json, logging

from runback import logs
from runback.errors import ConfigError
from runback.tracing import Tracing, configured

tracing = configured(enabled=False)
with tracing.span("execute", parent="00-" + "1" * 32 + "-" + "2" * 16 + "-01") as span:
    span.set_attribute("runback.run_id", "r1")
print("span:", tracing.traceparent())
try:
    configured(enabled=True)
except ConfigError as exc:
    print("on:", exc)
stream = io.StringIO()
logs.configure(level="info", format="json", stream=stream)
with logs.bound(run_id="r1"):
    logging.getLogger("runback").info("key rb_%s", "A" * 43)
print("log:", json.loads(stream.getvalue())["message"], json.loads(stream.getvalue())["run_id"])
"""


def test_the_light_install_logs_and_traces_nothing_without_the_otel_extra(
    light: tuple[Path, Path],
) -> None:
    python, _ = light

    said = _ok(_run(python, "-c", NO_OTEL)).splitlines()

    assert said[0] == "span: None"
    assert said[1].startswith("on: RUNBACK_OTEL is on but OpenTelemetry is not installed")
    assert "pip install 'runback[otel]'" in said[1]
    assert said[2] == "log: key rb_*** r1"
