"""``/metrics`` of real processes, scraped over HTTP and parsed as Prometheus parses it:
``runback serve`` after runs whose callbacks succeed and fail, ``runback receive`` after
callbacks whose output copies wait; and the Grafana dashboard asks only for what they expose.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from runback.core.signing import generate_secret, signature_headers
from support.metrics import Scrape
from support.process import ServeProcess, cli
from support.receivers import LoopbackReceiver, answer
from support.waiting import eventually

DASHBOARD = Path(__file__).parents[2] / "docs" / "grafana" / "runback.json"
SECRET = generate_secret()


@pytest.fixture(scope="module")
def serving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServeProcess, str]]:
    """``runback serve`` whose breaker opens at a destination's first failure, and its key."""
    data_dir = tmp_path_factory.mktemp("metrics") / "data"
    key = cli("keys", "create", "--data-dir", str(data_dir)).stdout.strip()
    env = {"RUNBACK_BREAKER_THRESHOLD": "1", "RUNBACK_BREAKER_WINDOW_SECONDS": "0"}
    with ServeProcess(data_dir, env=env) as process:
        yield process, key


@pytest.fixture(scope="module")
def receiving(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """``runback receive`` verifying with ``SECRET``."""
    inbox_dir = tmp_path_factory.mktemp("metrics") / "inbox"
    args = ("--secret", SECRET, "--callback-allow", "127.0.0.0/8")
    with ServeProcess(inbox_dir, command="receive", args=args) as process:
        yield process


async def _scrape(url: str) -> Scrape:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{url}/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


def _host(receiver: LoopbackReceiver) -> str:
    return f"127.0.0.1:{receiver.port}"


async def test_serve_counts_runs_deliveries_attempts_and_circuits_by_bounded_labels(
    serving: tuple[ServeProcess, str],
) -> None:
    server, key = serving
    async with (
        LoopbackReceiver(answer(200)) as ok,
        LoopbackReceiver(answer(410)) as gone,
        httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
        ) as client,
    ):
        submissions = [
            ("runback/echo", ok.url_for("/hook")),
            ("runback/echo", ok.url_for("/hook")),
            ("runback/fail", ok.url_for("/hook")),
            # a 410 fails its delivery at once; its URL carries a token
            ("runback/echo", gone.url_for("/hook?token=s3cr3t")),
        ]
        for model, url in submissions:
            created = await client.post(
                f"/v1/models/{model}/runs", json={"input": {}, "callback_url": url}
            )
            assert created.status_code == 201, created.text

        async def all_delivered() -> bool:
            scrape = await _scrape(server.url)
            ended = sum(
                scrape.get("runback_deliveries_total", outcome=o) for o in ("succeeded", "failed")
            )
            return (
                ended == 4 and scrape.get("runback_destination_circuit_state", host=_host(gone)) > 0
            )

        await eventually(all_delivered, timeout=20, what="four deliveries ended, a circuit open")
        scrape = await _scrape(server.url)

    assert scrape.get("runback_runs_total", model="runback/echo", status="succeeded") == 3
    assert scrape.get("runback_runs_total", model="runback/fail", status="failed") == 1
    assert scrape.get("runback_run_duration_seconds_count", model="runback/echo") == 3
    assert scrape.get("runback_deliveries_total", outcome="succeeded") == 3
    assert scrape.get("runback_deliveries_total", outcome="failed") == 1
    assert scrape.label_values("runback_deliveries", "outcome") == {"succeeded", "failed"}
    assert scrape.get("runback_deliveries_failed_total", reason="gone") == 1
    assert scrape.get("runback_delivery_attempts_total", outcome="succeeded") == 3
    assert scrape.get("runback_delivery_attempts_total", outcome="gone") == 1
    latency = "runback_delivery_attempt_duration_seconds_count"
    assert (scrape.get(latency, host=_host(ok)), scrape.get(latency, host=_host(gone))) == (3, 1)
    # opened by its one failure (2), half-open once its second has passed (1)
    assert scrape.get("runback_destination_circuit_state", host=_host(gone)) in (1, 2)
    assert scrape.label_values("runback_queue_depth", "queue") == {"runs", "deliveries"}
    for sample in scrape.samples:  # no URL, path or query string in any label
        for label, value in sample.labels.items():
            assert not re.search(r"[?@=]|s3cr3t|token|hook|://", value), sample
            assert label == "model" or "/" not in value, sample
    assert scrape.label_values(latency.removesuffix("_count"), "host") == {_host(ok), _host(gone)}


def _callback(run_id: str, files: LoopbackReceiver) -> tuple[bytes, dict[str, str]]:
    payload: dict[str, Any] = {
        "event": "run.completed",
        "run_id": run_id,
        "status": "succeeded",
        "output": {"outputs": [{"type": "image", "url": files.url_for(f"/{run_id}.png")}]},
    }
    body = orjson.dumps(payload)
    headers = signature_headers(
        body=body, msg_id=f"msg_{run_id}", timestamp=int(time.time()), current=SECRET,
        active=[SECRET],
    )  # fmt: skip
    return body, {**headers, "Content-Type": "application/json"}


async def test_receive_times_its_acknowledgements_and_counts_the_copies_it_owes(
    receiving: ServeProcess,
) -> None:
    async with (
        LoopbackReceiver(answer(503)) as files,  # every copy fails and waits for its retry
        httpx.AsyncClient(base_url=receiving.url, timeout=10) as http,
    ):
        for run_id in ("r-1", "r-2", "r-3", "r-3"):  # the last one a duplicate
            body, headers = _callback(run_id, files)
            answered = await http.post("/webhooks/runback", content=body, headers=headers)
            assert answered.status_code == 200, answered.text

        async def three_copies_owed() -> bool:
            scrape = await _scrape(receiving.url)
            return scrape.get("runback_queue_depth", queue="copies") == 3

        # A copy under way is not pending: the first read may catch one (the next comes
        # once the backlog's cache expires).
        await eventually(three_copies_owed, timeout=15, what="three copies pending")
        scrape = await _scrape(receiving.url)

    assert scrape.get("runback_receiver_ack_duration_seconds_count") == 4
    assert scrape.get("runback_receiver_ack_duration_seconds_sum") > 0
    assert scrape.label_values("runback_queue_depth", "queue") == {"copies"}
    assert scrape.families["runback_receiver_ack_duration_seconds"].type == "histogram"


def _expressions(dashboard: dict[str, Any]) -> list[str]:
    panels = list(dashboard["panels"])
    for panel in dashboard["panels"]:
        panels.extend(panel.get("panels", []))
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


# Names in PromQL that are not series: functions, keywords, aggregation clauses.
_PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "rate", "irate", "increase",
    "histogram_quantile", "le", "on", "ignoring", "group_left", "group_right", "and", "or",
    "unless", "topk", "bottomk", "clamp_min", "clamp_max", "vector", "time", "delta",
    "deriv", "abs", "label_replace", "offset", "bool", "max_over_time", "min_over_time",
    "avg_over_time", "sum_over_time", "changes", "resets", "scalar", "sort", "sort_desc",
    "absent",
}  # fmt: skip


def _series_names(expr: str) -> set[str]:
    """The series an expression reads: identifiers outside braces, strings and durations,
    that are not PromQL's own words or label names in a by/without clause."""
    bare = re.sub(r"\{[^}]*\}|\"[^\"]*\"|\[[^\]]*\]", " ", expr)
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", " ", bare)
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare))
    return {n for n in names if n not in _PROMQL_WORDS and not re.fullmatch(r"[0-9e]+", n)}


async def test_the_grafana_dashboard_asks_only_for_series_the_processes_expose(
    serving: tuple[ServeProcess, str], receiving: ServeProcess
) -> None:
    dashboard = orjson.loads(DASHBOARD.read_bytes())
    exposed = (await _scrape(serving[0].url)).sample_names() | (
        await _scrape(receiving.url)
    ).sample_names()

    expressions = _expressions(dashboard)
    used = set().union(*(_series_names(e) for e in expressions))

    assert len(expressions) >= 8
    assert used, expressions
    assert used <= exposed, sorted(used - exposed)
    assert {v["name"] for v in dashboard["templating"]["list"]} >= {"datasource"}
    for panel in dashboard["panels"]:
        if panel.get("type") != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
