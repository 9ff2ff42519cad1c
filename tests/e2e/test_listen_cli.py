"""``runback listen`` against a real ``runback serve`` and a real handler on loopback: it
forwards each delivery's exact bytes, signed with the organization's secret, shows the
handler's answer, keeps to its URL prefix, stops cleanly on Ctrl-C, and replays one stored
delivery with an exit status saying how the handler answered. One server for the module."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from runback.core.verification import Verifier
from support.process import RUNBACK, ServeProcess, cli
from support.scripted import Reply, ScriptedServer, in_turn
from support.waiting import eventually, wait_for


class Served:
    def __init__(self, process: ServeProcess, key: str, secret: str) -> None:
        self.process, self.key, self.secret = process, key, secret
        self.env = {"RUNBACK_URL": process.url, "RUNBACK_API_KEY": key}
        self.http = httpx.Client(
            base_url=process.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )

    def run_to(self, callback_url: str) -> str:
        made = self.http.post(
            "/v1/models/runback/echo/runs",
            json={"input": {"to": callback_url}, "callback_url": callback_url},
        )
        assert made.status_code == 201, made.text
        return str(made.json()["id"])

    def deliveries(self, run_id: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.http.get(f"/v1/runs/{run_id}/callback").json()
        return found


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("listen") / "data"
    with ServeProcess(data_dir) as process:
        deadline = time.monotonic() + 30
        while "-d '{" not in process.output():  # the banner, printed whole after the start
            assert time.monotonic() < deadline, process.output()
            time.sleep(0.02)
        banner = process.output()
        [key] = re.findall(r"API key:\s+(rb_\S+)", banner)
        [secret] = re.findall(r"signing secret:\s+(whsec_\S+)", banner)
        made = Served(process, key, secret)
        yield made
        made.http.close()


def _listening(env: dict[str, str], out: Path, err: Path, *args: str) -> subprocess.Popen[bytes]:
    with out.open("wb") as stdout, err.open("wb") as stderr:
        return subprocess.Popen(
            [*RUNBACK, "listen", *args],
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, **env},
        )


@pytest.mark.timeout(60)
async def test_listen_forwards_exact_signed_bytes_of_its_prefix_and_shows_the_answer(
    served: Served, tmp_path: Path
) -> None:
    prefix = f"http://127.0.0.1:9/listened-{uuid.uuid4()}"
    out, err = tmp_path / "out", tmp_path / "err"
    with ScriptedServer(in_turn([], Reply(202, b"taken"))) as handler:
        listening = _listening(
            served.env, out, err, "--forward-to", f"{handler.url}/hook", "--url-prefix", prefix
        )
        try:
            await wait_for(lambda: "listening to" in err.read_text(), 30, what="the banner")
            served.run_to("http://127.0.0.1:9/elsewhere")
            run_id = served.run_to(f"{prefix}?token=s3cret")
            await wait_for(lambda: "-> 202" in out.read_text(), 30, what="the forwarded line")
            listening.send_signal(signal.SIGINT)
            status = listening.wait(timeout=15)
        finally:
            if listening.poll() is None:
                listening.kill()

    [seen] = handler.seen
    [delivery] = served.deliveries(run_id)
    assert status == 0
    assert seen.path == "/hook"
    assert seen.body == delivery["payload_bytes"].encode()
    assert (
        Verifier([served.secret]).verify(seen.body, seen.headers).webhook_id
        == seen.headers["webhook-id"]
    )
    [said] = out.read_text().splitlines()
    assert run_id in said
    assert f"{prefix.removeprefix('http://')}" in said
    assert "token" not in said  # a query string may carry a token: never shown
    assert "run.completed" in said


@pytest.mark.timeout(60)
async def test_replay_forwards_a_stored_delivery_and_exits_on_the_handler_s_answer(
    served: Served,
) -> None:
    run_id = served.run_to(f"http://127.0.0.1:9/replayed-{uuid.uuid4()}")

    async def delivered() -> bool:
        return bool(served.deliveries(run_id))

    await eventually(delivered, 30, what="the run's delivery")
    [delivery] = served.deliveries(run_id)

    with ScriptedServer(in_turn([Reply(500, b"handler\n broke")], Reply(200, b"ok"))) as handler:
        args = ("listen", "--replay", delivery["id"], "--forward-to", handler.url)
        refused = cli(*args, env=served.env)
        taken = cli(*args, "--json", env=served.env)
    missing = cli("listen", "--replay", str(uuid.uuid4()), "--forward-to", handler.url,
                  env=served.env)  # fmt: skip

    assert refused.returncode == 6, refused.stderr
    assert "-> 500" in refused.stdout
    assert "handler broke" in refused.stdout
    assert taken.returncode == 0, taken.stderr
    answered = json.loads(taken.stdout)
    assert answered["forwarded"]["status"] == 200
    assert answered["delivery"]["id"] == delivery["id"]
    for seen in handler.seen:
        assert seen.body == delivery["payload_bytes"].encode()
        Verifier([served.secret]).verify(seen.body, seen.headers)
    assert missing.returncode == 4
    assert "DELIVERY_NOT_FOUND" in missing.stderr


def _stream_of(*cursors: str) -> Reply:
    """A deliveries' stream that says these messages, then drops."""
    said = ""
    for cursor in cursors:
        message = {
            "delivery": {"id": f"d-{cursor}", "run_id": f"r-{cursor}", "webhook_id": "msg_x",
                         "callback_url": "http://x/cb", "created_at": "2026-12-06T10:00:00+00:00"},
            "headers": {"webhook-id": f"msg_{cursor}"},
            "body": json.dumps({"event": "run.completed", "cursor": cursor}),
        }  # fmt: skip
        said += f"event: delivery\nid: {cursor}\ndata: {json.dumps(message)}\n\n"
    return Reply(200, said.encode(), {"Content-Type": "text/event-stream"})


@pytest.mark.timeout(60)
async def test_listen_follows_a_dropped_stream_from_its_last_message(tmp_path: Path) -> None:
    out, err = tmp_path / "out", tmp_path / "err"
    api = ScriptedServer(in_turn([_stream_of("c1")], _stream_of("c2")))
    with api, ScriptedServer(in_turn([], Reply(204))) as handler:
        env = {"RUNBACK_URL": api.url, "RUNBACK_API_KEY": "rb_test"}
        listening = _listening(env, out, err, "--forward-to", handler.url, "--json")
        try:
            await wait_for(lambda: len(handler.seen) >= 2, 30, what="two forwarded deliveries")
            listening.send_signal(signal.SIGINT)
            status = listening.wait(timeout=15)
        finally:
            if listening.poll() is None:
                listening.kill()

    assert status == 0
    assert [s.headers["webhook-id"] for s in handler.seen[:2]] == ["msg_c1", "msg_c2"]
    assert [s.headers.get("Last-Event-ID") for s in api.seen[:2]] == [None, "c1"]
    said = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["forwarded"]["status"] for line in said[:2]] == [204, 204]
