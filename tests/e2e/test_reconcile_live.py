"""The reconciler with real processes: a ``runback serve`` whose callback was retried to
exhaustion while ``runback receive`` was down records the run anyway, once the receiver is
up and told to expect it, from a poll of the sender's API."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path
from typing import Any

import httpx

from support.process import ServeProcess, cli
from support.waiting import eventually


def closed_port() -> int:
    """A loopback port nothing listens on (the receiver's, before it starts)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_a_callback_lost_while_the_receiver_was_down_is_reconciled_from_a_poll(
    data_dir: Path, key: str, tmp_path: Path
) -> None:
    port = closed_port()
    retrying_briefly = {"RUNBACK_RETRY_DELAYS": "1s,1s"}
    with ServeProcess(data_dir, env=retrying_briefly) as sender:
        async with httpx.AsyncClient(
            base_url=sender.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
        ) as api:
            secret = (await api.post("/v1/callback-secrets", json={"label": "e2e"})).json()
            created = await api.post(
                "/v1/models/runback/thumbnail/runs",
                json={
                    "input": {"width": 32, "height": 24},
                    "callback_url": f"http://127.0.0.1:{port}/webhooks/mine",
                    "metadata": {"order": "A-17"},
                },
            )
            assert created.status_code == 201, created.text
            run_id = created.json()["id"]

            async def gave_up() -> bool:
                callback = (await api.get(f"/v1/runs/{run_id}")).json()["callback"]
                return callback is not None and callback["status_code"] == "failed"

            await eventually(gave_up, timeout=30, what="the sender giving the callback up")
            run = (await api.get(f"/v1/runs/{run_id}")).json()

        inbox_dir = tmp_path / "inbox"
        inbox_key = cli("keys", "create", "--data-dir", str(inbox_dir)).stdout.strip()
        config = tmp_path / "receive.toml"
        config.write_text(
            "[sources.mine]\n"
            f'sender_url = "{sender.url}"\n'
            'sender_key_env = "E2E_SENDER_KEY"\n'
            "reconcile_after = 1\n"
        )
        receiving = ServeProcess(
            inbox_dir,
            command="receive",
            args=(
                *("--secret", secret["plain_secret"], "--config", str(config)),
                *("--callback-allow", "127.0.0.0/8"),
            ),
            env={"E2E_SENDER_KEY": key},
            port=port,
        )
        with receiving as receiver:
            async with httpx.AsyncClient(
                base_url=receiver.url,
                headers={"Authorization": f"Bearer {inbox_key}"},
                timeout=10,
            ) as inbox:
                expected = await inbox.post(
                    "/v1/expected", json={"source": "mine", "run_id": run_id}
                )
                assert expected.status_code == 201, expected.text

                seen: list[dict[str, Any]] = []

                async def recorded() -> bool:
                    items = (await inbox.get("/v1/inbox")).json()["items"]
                    if not items:
                        return False
                    seen[:] = [(await inbox.get(f"/v1/inbox/{items[0]['id']}")).json()]
                    copies = seen[0]["copies"]
                    return bool(copies) and all(c["state"] == "copied" for c in copies)

                await eventually(recorded, timeout=30, what="the run reconciled and copied")
                [event] = seen
                [item] = (await inbox.get("/v1/expected")).json()["items"]

    assert (event["run_id"], event["event"], event["reconciled"]) == (
        run_id,
        "run.completed",
        True,
    )
    [receipt] = event["receipts"]
    assert receipt["scheme"] == "reconciled"
    body = httpx.Response(200, content=receipt["body"].encode()).json()
    assert (body["status"], body["metadata"]) == ("succeeded", {"order": "A-17"})
    assert body["completed_at"] == run["completed_at"]
    [entry] = run["output"]["outputs"]
    [copy] = event["copies"]
    stored = (inbox_dir / "files" / copy["stored_key"]).read_bytes()
    assert hashlib.sha256(stored).hexdigest() == copy["sha256"] == entry["sha256"]
    assert (item["state"], item["event_id"]) == ("reconciled", event["id"])
