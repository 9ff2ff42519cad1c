"""``runback verify`` as a subprocess: one line and one exit status per cause, headers as JSON
or as raw lines, and ``--event`` reading a receipt from runback receive's inbox."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import orjson
import pytest

from runback.cli.verify import EXIT_CODES
from runback.core.ids import new_id
from runback.core.inbox import Receipt
from runback.errors import VerificationCause
from runback.store import DATABASE_FILE, open_store, sqlite_url
from runback.store.arrivals import EventDraft
from support.process import cli
from support.verify_cases import BODY, CASES, NOW, SECRET, STRANGER, TS, Case, signed


def _files(tmp_path: Path, body: bytes, headers: dict[str, str]) -> list[str]:
    (tmp_path / "body").write_bytes(body)
    (tmp_path / "headers.json").write_bytes(orjson.dumps(headers))
    return ["--headers", str(tmp_path / "headers.json"), "--body", str(tmp_path / "body")]


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_cause_is_one_line_and_its_own_exit_status(tmp_path: Path, name: str) -> None:
    case: Case = CASES[name]
    secrets = [arg for secret in case.secrets for arg in ("--secret", secret)]
    strict = ["--require-standard"] if case.require_standard else []

    done = cli(
        "verify", *secrets, *strict, "--at", str(TS), *_files(tmp_path, case.body, case.headers)
    )

    if case.cause is None:
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("valid: v1 signature of msg_")
        assert "secret whsec_AAECAwQFBg..." in done.stdout
        return
    assert done.returncode == EXIT_CODES[VerificationCause(case.cause)]
    assert done.stderr.startswith(f"invalid ({case.cause}): ")
    assert done.stderr.count("\n") == 1, done.stderr
    for words in case.says:
        assert words in done.stderr


def test_exit_statuses_are_distinct_and_documented_in_help() -> None:
    shown = cli("verify", "--help")

    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES) == len(VerificationCause)
    assert not {0, 2} & set(EXIT_CODES.values())
    for cause, code in EXIT_CODES.items():
        assert f"  {code:<3} invalid: {cause}" in shown.stdout


def test_a_secret_not_of_its_form_is_secret_format(tmp_path: Path) -> None:
    bare = SECRET.removeprefix("whsec_")

    done = cli("verify", "--secret", bare, "--at", str(TS), *_files(tmp_path, BODY, signed()))

    assert done.returncode == EXIT_CODES[VerificationCause.SECRET_FORMAT]
    assert done.stderr.startswith("invalid (secret_format): secret 1 does not start with whsec_")
    assert "takes whsec_ before it" in done.stderr
    assert bare not in done.stderr  # a secret is never echoed


def test_headers_as_raw_http_lines_are_read(tmp_path: Path) -> None:
    lines = "POST /hook HTTP/1.1\r\nHost: receiver.example:8000\r\n" + "".join(
        f"{name}: {value}\r\n" for name, value in signed().items()
    )
    (tmp_path / "headers.txt").write_text(lines)
    (tmp_path / "body").write_bytes(BODY)

    done = cli("verify", "--secret", SECRET, "--at", str(TS), "--headers",
               str(tmp_path / "headers.txt"), "--body", str(tmp_path / "body"))  # fmt: skip

    assert done.returncode == 0, done.stderr


def test_a_header_given_twice_is_malformed(tmp_path: Path) -> None:
    lines = "".join(f"{name}: {value}\n" for name, value in signed().items())
    (tmp_path / "headers.txt").write_text(lines + "webhook-id: other\n")
    (tmp_path / "body").write_bytes(BODY)

    done = cli("verify", "--secret", SECRET, "--at", str(TS), "--headers",
               str(tmp_path / "headers.txt"), "--body", str(tmp_path / "body"))  # fmt: skip

    assert done.returncode == EXIT_CODES[VerificationCause.MALFORMED_HEADER]


async def _keep(data_dir: Path, body: bytes, headers: dict[str, str]) -> str:
    """A receipt kept in the receiver's inbox as runback receive keeps one; its event id."""
    async with open_store(sqlite_url(data_dir / DATABASE_FILE)) as store:
        receipt = Receipt(new_id(), None, "default", body, json.dumps(headers), "v1", None, NOW)
        draft = EventDraft("default", "key-1", "run.completed", None, None, None, None, None,
                           "msg_1", wants_handler=False)  # fmt: skip
        event_id, _ = await store.inbox.accept(receipt, draft, [])
    return str(event_id)


def test_an_inbox_event_is_verified_as_of_its_arrival(tmp_path: Path) -> None:
    data_dir = tmp_path / "receive"
    data_dir.mkdir()
    event_id = asyncio.run(_keep(data_dir, BODY, signed(ts=TS - 60)))

    valid = cli("verify", "--event", event_id, "--data-dir", str(data_dir), "--secret", SECRET)
    wrong = cli("verify", "--event", event_id, "--data-dir", str(data_dir), "--secret", STRANGER)
    from_env = cli("verify", "--event", event_id, "--data-dir", str(data_dir),
                   env={"RUNBACK_RECEIVE_SECRETS": SECRET})  # fmt: skip

    assert valid.returncode == 0, valid.stderr
    assert valid.stdout.startswith(f"valid: event {event_id} (receipt 1 of 1, source default): ")
    assert wrong.returncode == EXIT_CODES[VerificationCause.WRONG_SECRET]
    assert wrong.stderr.startswith(f"invalid (wrong_secret): event {event_id}")
    assert from_env.returncode == 0, from_env.stderr


def test_an_unknown_event_a_missing_inbox_and_mixed_inputs_are_usage_errors(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "receive"
    data_dir.mkdir()
    asyncio.run(_keep(data_dir, BODY, signed()))
    unknown = cli("verify", "--event", str(new_id()), "--data-dir", str(data_dir),
                  "--secret", SECRET)  # fmt: skip
    nowhere = cli("verify", "--event", str(new_id()), "--data-dir", str(tmp_path / "none"),
                  "--secret", SECRET)  # fmt: skip
    mixed = cli("verify", "--event", str(new_id()), "--secret", SECRET,
                *_files(tmp_path, BODY, signed()))  # fmt: skip
    not_an_id = cli("verify", "--event", "nope", "--secret", SECRET)

    for refused in (unknown, nowhere, mixed, not_an_id):
        assert refused.returncode == 2
        assert refused.stderr.count("\n") == 1, refused.stderr
    assert "there is no event" in unknown.stderr
    assert "there is no runback receive database" in nowhere.stderr
    assert not (tmp_path / "none").exists()  # looking made nothing
    assert "not an event id" in not_an_id.stderr
