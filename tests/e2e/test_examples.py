"""Every example in the docs is a file, and it runs."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from support.process import ServeProcess, cli
from support.receivers import LoopbackReceiver
from support.waiting import wait_for

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


async def test_the_first_run_example_ends_with_a_succeeded_run_and_a_callback(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    key = cli("keys", "create", "--data-dir", str(data_dir)).stdout.strip()
    with ServeProcess(data_dir) as server:
        async with LoopbackReceiver() as receiver:
            process = await asyncio.create_subprocess_exec(
                str(EXAMPLES / "first_run.sh"),
                receiver.url_for("/hook"),
                env={**os.environ, "RUNBACK_URL": server.url, "RUNBACK_KEY": key},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(process.communicate(), timeout=60)
            assert process.returncode == 0, err.decode()
            await wait_for(lambda: len(receiver.requests) == 1, timeout=15, what="the callback")

    final = json.loads(out.decode().splitlines()[-1])
    assert final["status_code"] == "succeeded"
    assert final["output"] == {"hello": "world"}
    assert json.loads(receiver.requests[0].body)["run_id"] == final["id"]
