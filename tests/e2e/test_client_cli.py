"""``runback runs``, ``deliveries`` and ``secrets`` against a real ``runback serve``: tables
with headers and whole ids, ``--json`` that parses, one exit status per kind of failure,
``--version``, and help that shows defaults and variables. One server for the module."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

import runback
from support.process import ServeProcess, cli
from support.scripted import ScriptedServer, in_turn, json_reply


class Served:
    def __init__(self, process: ServeProcess, key: str, receiver: ScriptedServer) -> None:
        self.receiver = receiver
        self.env = {"RUNBACK_URL": process.url, "RUNBACK_API_KEY": key}
        self.http = httpx.Client(
            base_url=process.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    def run(self, model: str = "runback/echo", client_ref: str | None = None, **input: Any) -> str:
        body = {"input": input, "callback_url": f"{self.receiver.url}/cb"}
        if client_ref is not None:
            body["client_ref"] = client_ref
        made = self.http.post(f"/v1/models/{model}/runs", json=body)
        assert made.status_code == 201, made.text
        return str(made.json()["id"])

    def cli(self, *args: str, **env: str) -> Any:
        return cli(*args, env={**self.env, **env})


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("cli") / "data"
    made = cli("keys", "create", "--data-dir", str(data_dir))
    assert made.returncode == 0, made.stderr
    with (
        ScriptedServer(in_turn([], json_reply(200, {}))) as receiver,
        ServeProcess(data_dir) as process,
    ):
        served = Served(process, made.stdout.strip(), receiver)
        yield served
        served.http.close()


def _lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines()]


def _ended(served: Served, run_id: str) -> None:
    waited = served.cli("runs", "wait", run_id, "--timeout", "30", "--json")
    assert waited.returncode == 0, waited.stderr
    assert json.loads(waited.stdout)["status_code"] == "succeeded"


def test_runs_are_listed_shown_and_redelivered(served: Served) -> None:
    ref = f"ref-{uuid.uuid4()}"
    run_id = served.run(n=1, client_ref=ref)
    _ended(served, run_id)

    table = served.cli("runs", "list", "--limit", "5")
    listed = served.cli("runs", "list", "--json", "--status", "succeeded", "--client-ref", ref)
    shown = served.cli("runs", "show", run_id)
    again = served.cli("runs", "redeliver", run_id, "--json")

    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split()[:3] == ["id", "model", "status"]
    assert any(row.startswith(run_id) for row in rows)  # the id whole, first
    assert [run["id"] for run in _lines(listed.stdout)] == [run_id]
    assert shown.stdout.split()[:2] == ["field", "value"]
    assert run_id in shown.stdout
    assert f"{served.receiver.url}/cb" in shown.stdout
    assert json.loads(again.stdout)["run_id"] == run_id


def test_a_run_is_cancelled_and_a_wait_times_out(served: Served) -> None:
    run_id = served.run("runback/sleep", seconds=60)

    timed_out = served.cli("runs", "wait", run_id, "--timeout", "0.5")
    cancelled = served.cli("runs", "cancel", run_id, "--json")

    assert timed_out.returncode == 7
    assert "did not end" in timed_out.stderr
    assert json.loads(cancelled.stdout)["id"] == run_id


def test_deliveries_are_listed_shown_redelivered_and_recovered(served: Served) -> None:
    run_id = served.run(n=2)
    _ended(served, run_id)
    deadline = time.monotonic() + 30
    while not (found := served.http.get(f"/v1/runs/{run_id}/callback").json()):
        assert time.monotonic() < deadline, "no delivery"
    delivery_id = found[0]["id"]

    table = served.cli("deliveries", "list", run_id)
    shown = served.cli("deliveries", "show", delivery_id, "--json")
    again = served.cli("deliveries", "redeliver", delivery_id, "--json")
    recovered = served.cli(
        "deliveries", "recover", "--from", "2026-01-01", "--to", "2026-01-02", "--json"
    )

    header, *rows = table.stdout.splitlines()
    assert header.split()[:3] == ["id", "event", "status"]
    assert rows[0].startswith(delivery_id)
    assert json.loads(shown.stdout)["payload_bytes"] == found[0]["payload_bytes"]
    made = json.loads(again.stdout)
    assert (made["run_id"], made["is_automatic"]) == (run_id, False)
    assert recovered.returncode == 0, recovered.stderr
    assert json.loads(recovered.stdout)["queued"] == 0


def test_secrets_are_created_listed_promoted_and_disabled(served: Served) -> None:
    label = f"cli-{uuid.uuid4()}"
    first = json.loads(served.cli("secrets", "create", "--type", "ed25519", "--json").stdout)
    made = served.cli("secrets", "create", "--type", "ed25519", "--label", label)
    [second] = [s for s in served.http.get("/v1/callback-secrets").json()["items"]
                if s["label"] == label]  # fmt: skip
    promoted = served.cli("secrets", "promote", second["id"], "--json")
    disabled = served.cli("secrets", "disable", first["id"], "--json")
    table = served.cli("secrets", "list")
    shown = served.cli("secrets", "show", second["id"], "--json")

    assert first["public_key"]
    assert second["public_key"] in made.stdout
    assert json.loads(promoted.stdout)["is_current"] is True
    assert json.loads(disabled.stdout)["disabled_at"] is not None
    header, *rows = table.stdout.splitlines()
    assert header.split()[:3] == ["id", "type", "current"]
    assert any(row.startswith(second["id"]) for row in rows)
    assert json.loads(shown.stdout)["label"] == label


@pytest.mark.parametrize(
    ("args", "env", "status", "says"),
    [
        (["runs", "show", str(uuid.uuid4())], {}, 4, "RUN_NOT_FOUND"),  # no such run
        (["secrets", "list"], {"RUNBACK_API_KEY": "rb_unknown"}, 3, "UNAUTHORIZED"),
        (["runs", "list", "--url", "http://127.0.0.1:9"], {}, 5, "failed"),  # nobody there
        (["runs", "list"], {"RUNBACK_API_KEY": ""}, 2, "RUNBACK_API_KEY"),  # no key at all
        (["runs", "list"], {"RUNBACK_URL": "ftp://x"}, 2, "RUNBACK_URL"),  # not an API's URL
        (["deliveries", "recover", "--from", "soon", "--to", "x"], {}, 2, "ISO 8601"),
    ],
)
def test_each_kind_of_failure_has_its_exit_status_and_one_line(
    served: Served, args: list[str], env: dict[str, str], status: int, says: str
) -> None:
    failed = served.cli(*args, **env)

    assert failed.returncode == status, failed.stderr
    assert says in failed.stderr
    assert "Traceback" not in failed.stderr


def test_version_help_and_completion_show_defaults_and_variables_never_the_key(
    served: Served,
) -> None:
    version = cli("--version")
    serve_help = cli("serve", "--help")
    listen_help = served.cli("listen", "--help")
    completion = cli("--show-completion", "bash")

    assert version.stdout.strip() == f"runback {runback.__version__}"
    assert "[env RUNBACK_HOST; 127.0.0.1]" in " ".join(serve_help.stdout.split())
    said = " ".join(listen_help.stdout.split())
    assert "[env RUNBACK_URL; http://127.0.0.1:8000]" in said
    assert "[env RUNBACK_API_KEY]" in said
    assert "[default: 10.0" in said
    assert "Exit status: 0 done" in said
    assert served.env["RUNBACK_API_KEY"] not in listen_help.stdout
    assert completion.returncode == 0, completion.stderr
    assert "complete" in completion.stdout


def test_recover_follows_the_recovery_until_none_is_pending() -> None:
    recovery = {"id": "rec1", "from": "2026-01-01T00:00:00+00:00",
                "to": "2026-01-02T00:00:00+00:00", "created_at": "2026-01-02T00:00:00+00:00",
                "queued": 2, "skipped": 1}  # fmt: skip
    steps = [
        json_reply(201, {**recovery, "pending": 2}),
        json_reply(200, {**recovery, "pending": 1, "delivered": 1}),
    ]
    done = json_reply(200, {**recovery, "pending": 0, "delivered": 1, "failed": 1})
    with ScriptedServer(in_turn(steps, done)) as api:
        recovered = cli(
            "deliveries", "recover", "--from", "2026-01-01", "--to", "2026-01-02T00:00+00:00",
            env={"RUNBACK_URL": api.url, "RUNBACK_API_KEY": "rb_test"},
        )  # fmt: skip

    assert recovered.returncode == 0, recovered.stderr
    assert recovered.stdout == (
        "recovery rec1: 2 queued, 1 skipped; 1 delivered, 1 failed, 0 pending\n"
    )
    assert [(s.method, s.path) for s in api.seen] == [
        ("POST", "/v1/callback-deliveries/recoveries"),
        ("GET", "/v1/callback-deliveries/recoveries/rec1"),
        ("GET", "/v1/callback-deliveries/recoveries/rec1"),
    ]
    assert json.loads(api.seen[0].body) == {
        "from": "2026-01-01T00:00:00+00:00", "to": "2026-01-02T00:00:00+00:00",
    }  # fmt: skip


def test_trigger_sends_a_signed_ping_and_says_what_came_back(served: Served) -> None:
    answered = served.cli("trigger", f"{served.receiver.url}/ping?token=secret")
    free_port = _closed_port()
    refused = served.cli("trigger", f"http://127.0.0.1:{free_port}/hook", "--json")

    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.startswith("ok: 127.0.0.1:")
    assert "token" not in answered.stdout  # a query string may carry a token
    [ping] = [s for s in served.receiver.seen if s.path.startswith("/ping")]
    assert json.loads(ping.body)["event"] == "test.ping"
    assert refused.returncode == 6
    said = json.loads(refused.stdout)
    assert said["ok"] is False
    assert said["failure"] == "connection_error"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
