"""The command line: errors are one readable line, never a traceback."""

from __future__ import annotations

import socket
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from runback.core.runs import Ending, end_run
from runback.store import DATABASE_FILE, open_store, sqlite_url
from support.factories import queued_run
from support.process import cli


@pytest.mark.parametrize(
    ("args", "env", "says"),
    [
        (["serve", "--port", "70000"], {}, "--port must be at most 65535"),  # out of range
        (  # not a number: named as it was set, a variable (serve has no such flag)
            ["serve"],
            {"RUNBACK_ATTEMPT_TIMEOUT": "soon"},
            "RUNBACK_ATTEMPT_TIMEOUT must be a number",
        ),
        (["serve", "--callback-allow", "10.0.0.0/99"], {}, "10.0.0.0/99"),  # not a CIDR
        (["receive"], {}, "--insecure"),  # no secret: it would accept unsigned callbacks
        (["receive", "--secret", "whsec_!!"], {}, "secret 1"),  # not a secret's form
    ],
)
def test_a_bad_setting_is_one_line_on_stderr(
    tmp_path: Path, args: list[str], env: dict[str, str], says: str
) -> None:
    result = cli(*args, "--data-dir", str(tmp_path / "d"), env=env)

    assert result.returncode in (1, 2)
    assert result.stderr.count("\n") == 1, result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr


def test_a_database_from_a_newer_runback_is_refused_in_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    assert cli("keys", "create", "--data-dir", str(data_dir)).returncode == 0
    with sqlite3.connect(data_dir / "runback.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff'")

    result = cli("keys", "create", "--data-dir", str(data_dir))

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.strip().endswith("upgrade runback to use it")
    assert result.stderr.count("\n") == 1


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = cli("serve", "--port", str(port), "--data-dir", str(tmp_path / "d"))

    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_migrate_shows_its_progress_over_the_revisions_it_applies(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")

    first = cli("migrate", "--data-dir", data_dir)
    again = cli("migrate", "--data-dir", data_dir)

    assert first.returncode == 0, first.stderr
    head = first.stdout.split()[-1]
    assert f"{int(head)}/{int(head)} revision {head}" in first.stderr
    assert again.returncode == 0, again.stderr
    assert "migrating" not in again.stderr  # at the head already: nothing to show


async def test_prune_deletes_what_outlived_retention_and_says_how_much(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert cli("migrate", "--data-dir", str(data_dir)).returncode == 0
    long_ago = datetime.now(UTC) - timedelta(days=40)
    async with open_store(sqlite_url(data_dir / DATABASE_FILE)) as store:
        organization, _ = await store.accounts.ensure_default_organization(now=long_ago)
        old = queued_run(organization_id=organization.id, now=long_ago, callback_url=None)
        await store.runs.insert(old)
        await store.outbox.end(old, end_run(old, Ending.canceled(), now=long_ago), None)
        recent = queued_run(organization_id=organization.id, now=datetime.now(UTC))
        await store.runs.insert(recent)

    pruned = cli("prune", "--data-dir", str(data_dir))

    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.startswith("pruned 1 runs, 0 deliveries, 0 batches older than 30 days")
    async with open_store(sqlite_url(data_dir / DATABASE_FILE)) as store:
        assert await store.runs.get(old.id) is None
        assert await store.runs.get(recent.id) is not None
