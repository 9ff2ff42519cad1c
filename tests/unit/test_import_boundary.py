"""The receiver is an import boundary: verifying a callback loads no server, no database.

Checked in a fresh interpreter, since this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys

import runback
import runback.receiver

# Third-party packages of the server half and of the framework adapters.
HEAVY = (
    "aiohttp",
    "aiosqlite",
    "alembic",
    "django",
    "fastapi",
    "flask",
    "obstore",
    "sqlalchemy",
    "starlette",
    "uvicorn",
)
ADAPTERS = {"runback.receiver.django", "runback.receiver.flask", "runback.receiver.starlette"}

SCRIPT = """
import json, sys
from datetime import UTC, datetime

import runback
import runback.receiver
from runback.receiver.events import event_keys, output_refs
from runback.receiver.handlers import HandlerRegistry
from runback.core.signing import generate_secret, signature_headers

secret = generate_secret()
body = b'{"event":"run.completed"}'
headers = signature_headers(
    body=body, msg_id="msg_1", timestamp=1, current=secret, active=[secret]
)
verified = runback.receiver.verify(body, headers, [secret], now=datetime.fromtimestamp(1, UTC))
assert verified.scheme == "v1", verified
assert runback.verify(body, headers, [secret], now=datetime.fromtimestamp(1, UTC)) == verified
event_keys({"event": "run.completed"}, webhook_id="msg_1", body=body)
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after_verifying() -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stdout))


def test_verifying_a_callback_imports_no_server_database_or_framework() -> None:
    modules = _modules_after_verifying()

    assert not {name for name in modules if name.split(".")[0] in HEAVY}
    assert not {name for name in modules if name.startswith("runback.store")}
    assert not {
        name for name in modules if name.startswith(("runback.provider", "runback.receiving"))
    }
    assert not modules & ADAPTERS


CLIENT = """
import json, sys

import runback

with runback.Client("http://127.0.0.1:1", "rb_key", retries=0) as client:
    assert client.runs is not None
print(json.dumps(sorted(sys.modules)))
"""


def test_the_api_client_imports_no_server_database_or_framework() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CLIENT], capture_output=True, text=True, check=True, timeout=60
    )
    modules = set(json.loads(done.stdout))

    assert "httpx" in modules
    assert not {name for name in modules if name.split(".")[0] in (*HEAVY, "orjson", "pydantic")}
    assert not {
        name
        for name in modules
        if name.startswith(("runback.store", "runback.provider", "runback.receiving"))
    }


def test_receiver_public_names_are_pinned() -> None:
    assert set(runback.receiver.__all__) == {
        "DEFAULT_TOLERANCE",
        "BodyDifference",
        "InvalidSecretError",
        "LatestSequences",
        "MalformedSignatureError",
        "MissingSignatureError",
        "SignatureMismatchError",
        "TimestampOutsideToleranceError",
        "VerificationCause",
        "VerificationError",
        "Verified",
        "Verifier",
        "verify",
    }


def test_every_receiver_public_name_exists() -> None:
    for name in runback.receiver.__all__:
        assert hasattr(runback.receiver, name), name


def test_the_serving_names_of_the_root_load_on_first_use() -> None:
    assert runback.ModelRegistry.__name__ == "ModelRegistry"
    assert runback.RunContext.__module__ == "runback.provider.context"


UNTRACED = """
import json, sys

from runback.tracing import configured

tracing = configured(enabled=False)
with tracing.span("execute", parent="00-" + "1" * 32 + "-" + "2" * 16 + "-01"):
    assert tracing.traceparent() is None
print(json.dumps(sorted(sys.modules)))
"""


def test_tracing_off_imports_no_opentelemetry() -> None:
    done = subprocess.run(
        [sys.executable, "-c", UNTRACED], capture_output=True, text=True, check=True, timeout=60
    )
    modules = set(json.loads(done.stdout))

    assert "runback.tracing" in modules
    assert not {name for name in modules if name.startswith("opentelemetry")}
