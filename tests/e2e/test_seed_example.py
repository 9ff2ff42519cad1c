"""The seed's own example (``seeds/000``, the Runflow guide, kept verbatim in
``docs/front-doors/runflow-runs.md``): its curl line, run as written against ``runback
serve`` with only the host (and the guide's ``https://...`` placeholders) changed, ends with
a ``run.completed`` callback whose output URL serves the PNG."""

from __future__ import annotations

import asyncio
import io
import os
import re
import sys
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiohttp import web
from PIL import Image

from support.process import ServeProcess, cli
from support.receivers import LoopbackReceiver
from support.s3 import free_port
from support.waiting import eventually, wait_for

PAGES = Path(__file__).resolve().parents[2] / "docs" / "front-doors"
PAGE = PAGES / "runflow-runs.md"
HOSTED = "https://api.runflow.io"


def _portrait(format: str = "PNG") -> bytes:
    image = Image.new("RGB", (96, 64), "white")
    image.paste((30, 30, 200), (30, 16, 66, 48))
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


def _seed_curl(page: Path = PAGE) -> str:
    """The guide's curl command, as the guide writes it."""
    found = re.search(r"curl -X POST .*?\n```", page.read_text(), re.DOTALL)
    assert found is not None, "the seed's curl example left its page"
    return found[0].removesuffix("```")


async def test_the_seed_s_curl_example_runs_against_runback(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = cli("keys", "create", "--data-dir", str(data_dir)).stdout.strip()
    image = _portrait()

    async def serve(request: web.Request) -> web.StreamResponse:
        if request.method == "GET":
            return web.Response(body=image, content_type="image/png")
        return web.Response(status=200)

    with ServeProcess(data_dir) as server:
        async with LoopbackReceiver(serve) as outside:
            command = (
                _seed_curl()
                .replace(HOSTED, server.url)
                .replace('"https://..."', f'"{outside.url_for("/portrait.png")}"')
                .replace('"..."', '"a sunny beach"')
                .replace("https://your-server.com", outside.url)
            )
            curl = await asyncio.create_subprocess_exec(
                "bash", "-c", command.rstrip() + ' -s -w "\n%{http_code}"',
                env={**os.environ, "RUNFLOW_API_KEY": key},
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, _ = await asyncio.wait_for(curl.communicate(), timeout=30)
            body, status = out.decode().rsplit("\n", 1)
            assert status == "201", body
            run = orjson.loads(body)
            assert (run["status_code"], run["callback_url"]) == (
                "queued", f"{outside.url}/webhook/runflow",
            )  # fmt: skip

            def called_back() -> bool:
                return any(r.method == "POST" for r in outside.requests)

            await wait_for(called_back, timeout=30, what="the callback")
            [callback] = [r for r in outside.requests if r.method == "POST"]
            sent = orjson.loads(callback.body)
            [entry] = sent["output"]["outputs"]
            async with httpx.AsyncClient() as client:
                picture = await client.get(entry["url"])

    assert (sent["event"], sent["run_id"], sent["status"]) == (
        "run.completed", run["id"], "succeeded",
    )  # fmt: skip
    assert sent["output"]["prompt"] == "a sunny beach"
    assert picture.status_code == 200
    assert Image.open(io.BytesIO(picture.content)).size == (96, 64)


async def test_the_headshots_seed_s_curl_example_runs_against_runback(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = cli("keys", "create", "--data-dir", str(data_dir)).stdout.strip()
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("photo1.jpg", "photo2.jpg"):
        (photos / name).write_bytes(_portrait("JPEG"))

    with ServeProcess(data_dir) as server:
        async with LoopbackReceiver() as outside:
            command = (
                _seed_curl(PAGES / "headshots.md")
                .replace(HOSTED, server.url)
                .replace("YOUR_API_KEY", key)
                .replace("https://yourapp.com", outside.url)
                .replace("/path/to/", f"{photos}/")
            )
            curl = await asyncio.create_subprocess_exec(
                "bash", "-c", command.rstrip() + ' -s -w "\n%{http_code}"',
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            out, _ = await asyncio.wait_for(curl.communicate(), timeout=30)
            body, status = out.decode().rsplit("\n", 1)
            assert status == "200", body
            headshots_id = orjson.loads(body)["data"]["headshots_id"]
            await wait_for(lambda: len(outside.requests) == 1, timeout=60, what="the callback")
            sent = orjson.loads(outside.requests[0].body)
            async with httpx.AsyncClient() as client:  # the receiver copies all 60 at once
                pictures = await asyncio.gather(*(client.get(u) for u in sent["image_urls"]))

    assert outside.requests[0].path == "/webhook/headshots"
    assert (sent["event"], sent["headshots_id"]) == ("headshots.completed", headshots_id)
    assert len(sent["image_urls"]) == 60
    assert {picture.status_code for picture in pictures} == {200}
    assert {Image.open(io.BytesIO(p.content)).size for p in pictures} == {(512, 512)}


async def test_the_runware_seed_s_task_runs_against_runback(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = cli("keys", "create", "--data-dir", str(data_dir)).stdout.strip()
    found = re.search(r"```json\n(\{.*?\})\n```", (PAGES / "runware.md").read_text(), re.DOTALL)
    assert found is not None, "the seed's task left its page"

    with ServeProcess(data_dir) as server:
        async with LoopbackReceiver() as outside:
            task = found[1].replace("https://api.example.com", outside.url)
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                answer = await client.post(
                    "/v1",
                    content=f"[{task}]",
                    headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
                )
                await wait_for(lambda: len(outside.requests) == 1, timeout=60, what="the result")
                sent = orjson.loads(outside.requests[0].body)
                picture = await client.get(sent["imageURL"])

    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "data": [{"taskType": "imageInference", "taskUUID": "a770f077-f413-47de-9dac-be0b26a35da6"}]
    }
    assert outside.requests[0].path == "/webhooks/runware"
    assert (sent["taskUUID"], sent["width"], sent["height"]) == (
        "a770f077-f413-47de-9dac-be0b26a35da6", 1024, 1024,
    )  # fmt: skip
    assert Image.open(io.BytesIO(picture.content)).size == (1024, 1024)


HANDLERS = Path(__file__).resolve().parent / "seed_handlers"
NODE_PATH = "/usr/share/nodejs"
"""Where Debian's node-express lives (``make test`` installs it when absent)."""


def _handler_command(kind: str, folder: Path, port: int) -> list[str]:
    """The seed's handler of ``kind``, as written but for its port, ready to run."""
    if kind == "flask":
        (folder / "runware_flask.py").write_text((HANDLERS / "runware_flask.txt").read_text())
        return [sys.executable, "-m", "flask", "--app", "runware_flask", "run", "--port", str(port)]
    script = (HANDLERS / "runware_express.txt").read_text()
    (folder / "runware_express.js").write_text(script.replace("listen(3000)", f"listen({port})"))
    return ["node", "runware_express.js"]


class SeedHandler:
    """A seed's handler in its own process, its output read line by line."""

    def __init__(self, process: asyncio.subprocess.Process, kind: str) -> None:
        self.process, self.kind = process, kind
        self.lines: list[str] = []

    @classmethod
    async def start(cls, command: list[str], folder: Path, kind: str, **env: str) -> SeedHandler:
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=folder,
            env={**os.environ, "PYTHONUNBUFFERED": "1", "NODE_PATH": NODE_PATH, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(process, kind)

    async def until(self, said: str, times: int = 1) -> list[str]:
        """Its lines until ``said`` has begun ``times`` of them (60 s at most per line)."""
        assert self.process.stdout is not None
        while sum(line.strip().startswith(said) for line in self.lines) < times:
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout=60)
            assert line, f"the {self.kind} handler stopped: {''.join(self.lines)}"
            self.lines.append(line.decode())
        return [line.strip() for line in self.lines if line.strip().startswith(said)]

    async def stop(self) -> None:
        self.process.terminate()
        await self.process.wait()


@pytest.mark.parametrize("kind", ["flask", "express"])
async def test_the_runware_seed_s_handlers_receive_three_results(tmp_path: Path, kind: str) -> None:
    data_dir = tmp_path / "data"
    key = cli("keys", "create", "--data-dir", str(data_dir)).stdout.strip()
    port = free_port()
    handler = await SeedHandler.start(
        _handler_command(kind, tmp_path, port), tmp_path, kind, WEBHOOK_TOKEN="s3cret"
    )
    task = {
        "taskType": "imageInference",
        "taskUUID": "6c1e1f6e-3c39-4d0c-9a57-0b5c3c8f1a11",
        "positivePrompt": "three foxes in a snowy forest",
        "width": 320,
        "height": 256,
        "numberResults": 3,
        "webhookURL": f"http://127.0.0.1:{port}/webhooks/runware?token=s3cret",
    }
    auth = {"Authorization": f"Bearer {key}"}
    try:
        with ServeProcess(data_dir) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                answer = await client.post("/v1", json=[task], headers=auth)
                assert answer.status_code == 200, answer.text
                completed = await handler.until("Task completed", times=3)
                [run] = (await client.get("/v1/runs", headers=auth)).json()["items"]
                log: list[dict[str, Any]] = []

                async def recorded() -> bool:  # each 200 is recorded just after it came
                    log[:] = (
                        await client.get(f"/v1/runs/{run['id']}/callback", headers=auth)
                    ).json()
                    return [d["status_code"] for d in log] == ["succeeded"] * 3

                await eventually(recorded, timeout=15, what="three delivered results")
                images = [orjson.loads(d["payload_bytes"])["imageURL"] for d in log]
                pictures = [await client.get(url) for url in images]
    finally:
        await handler.stop()

    assert completed == [f"Task completed: {task['taskUUID']}"] * 3
    assert {Image.open(io.BytesIO(p.content)).size for p in pictures} == {(320, 256)}


EXPRESS_DB = """const db = {
  runs: { upsert: async (row) => console.log("saved", row.run_id, row.status) },
};
"""
FASTAPI_DB = """class _Runs:
    async def upsert(self, **row):
        print("saved", row["run_id"], row["status"], flush=True)


class db:
    runs = _Runs()


"""


def _runflow_handler(kind: str, folder: Path, port: int) -> list[str]:
    """The seed's Runflow handler of ``kind``, with the ``db`` it saves to, ready to run."""
    if kind == "fastapi":
        handler = (HANDLERS / "runflow_fastapi.txt").read_text()
        (folder / "runflow_fastapi.py").write_text(FASTAPI_DB + handler)
        return [sys.executable, "-m", "uvicorn", "runflow_fastapi:app", "--port", str(port)]
    # An ES module finds express through node_modules (not NODE_PATH); express's own
    # requires still go through NODE_PATH.
    (folder / "node_modules").symlink_to(NODE_PATH)
    handler = (HANDLERS / "runflow_express.txt").read_text()
    script = EXPRESS_DB + handler.replace("listen(3000)", f"listen({port})")
    (folder / "runflow_express.mjs").write_text(script)
    return ["node", "runflow_express.mjs"]


@pytest.mark.parametrize("kind", ["express", "fastapi"])
async def test_the_runflow_seeds_handlers_save_the_callback(tmp_path: Path, kind: str) -> None:
    data_dir = tmp_path / "data"
    key = cli("keys", "create", "--data-dir", str(data_dir)).stdout.strip()
    port = free_port()
    handler = await SeedHandler.start(_runflow_handler(kind, tmp_path, port), tmp_path, kind)
    image = _portrait()

    async def serve_image(request: web.Request) -> web.StreamResponse:
        return web.Response(body=image, content_type="image/png")

    try:
        with ServeProcess(data_dir) as server:
            async with LoopbackReceiver(serve_image) as images:
                body = {
                    "input": {"image_url": images.url_for("/p.png"), "prompt": "studio"},
                    "callback_url": f"http://127.0.0.1:{port}/webhook/runflow",
                }
                async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
                    made = await client.post(
                        "/v1/models/runflow/background-replace/runs",
                        json=body,
                        headers={"Authorization": f"Bearer {key}"},
                    )
                assert made.status_code == 201, made.text
                saved = await handler.until("saved")
    finally:
        await handler.stop()

    assert [line.split() for line in saved] == [["saved", made.json()["id"], "succeeded"]]


HEADSHOTS_AROUND = """const express = require("express");
const app = express();
app.use(express.json({ limit: "5mb" }));
const db = {
  saveHeadshots: async (row) => console.log("saved", row.headshots_id, row.image_urls.length),
};
"""


async def test_the_headshots_seed_s_express_handler_saves_the_sixty_urls(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = cli("keys", "create", "--data-dir", str(data_dir)).stdout.strip()
    port = free_port()
    # The seed's snippet, verbatim, with the app and db it leaves to the reader around it.
    handler = (HANDLERS / "headshots_express.txt").read_text()
    script = f"{HEADSHOTS_AROUND}{handler}\napp.listen({port});\n"
    (tmp_path / "headshots_express.js").write_text(script)
    express = await SeedHandler.start(["node", "headshots_express.js"], tmp_path, "express")
    photo = _portrait("JPEG")

    async def serve_photo(request: web.Request) -> web.StreamResponse:
        return web.Response(body=photo, content_type="image/jpeg")

    try:
        with ServeProcess(data_dir) as server:
            async with (
                LoopbackReceiver(serve_photo) as photos,
                httpx.AsyncClient(base_url=server.url, timeout=30) as client,
            ):
                made = await client.post(
                    "/api/v1/images/generate-headshots",
                    json={
                        "callback_url": f"http://127.0.0.1:{port}/webhook/headshots",
                        "input_images": [photos.url_for("/me.jpg")],
                    },
                    headers={"x-api-key": key},
                )
                assert made.status_code == 200, made.text
                saved = await express.until("saved")
    finally:
        await express.stop()

    headshots_id = made.json()["data"]["headshots_id"]
    assert [line.split() for line in saved] == [["saved", headshots_id, "60"]]
