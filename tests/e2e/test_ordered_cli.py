"""``runback ordered`` as real processes on a data directory: on, ls with the head,
release, off, and the one-line errors."""

from __future__ import annotations

import subprocess
from pathlib import Path
from uuid import UUID

from runback.core.clock import SystemClock
from runback.core.delivery import pending_delivery
from runback.core.ids import new_id
from runback.core.retry import DEFAULT_RETRY_POLICY
from runback.core.states import DeliveryStatus
from runback.store import DATABASE_FILE, open_store, sqlite_url
from support.process import cli

URL = "https://receiver.example/hook"


def _ok(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = cli("ordered", *args, "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    return result


async def _callbacks(data_dir: Path, count: int) -> list[str]:
    """Commit ``count`` callbacks to ``URL`` in the default organization, oldest first."""
    async with open_store(sqlite_url(data_dir / DATABASE_FILE)) as store:
        clock = SystemClock()
        organization, _ = await store.accounts.ensure_default_organization(now=clock.now())
        made = []
        for n in range(count):
            delivery = pending_delivery(
                organization_id=organization.id,
                callback_url=URL,
                webhook_id=f"msg_{n}",
                body=b"{}",
                delivery_id=new_id(),
                now=clock.now(),
                policy=DEFAULT_RETRY_POLICY,
                is_automatic=True,
            )
            await store.outbox.add(delivery)
            made.append(str(delivery.id))
        return made


async def _status(data_dir: Path, delivery_id: str) -> tuple[DeliveryStatus, str | None]:
    async with open_store(sqlite_url(data_dir / DATABASE_FILE)) as store:
        organization, _ = await store.accounts.ensure_default_organization(now=SystemClock().now())
        found = await store.deliveries.get(UUID(delivery_id), organization_id=organization.id)
        assert found is not None
        return found[0].status, found[0].failure_reason_code


async def test_on_ls_release_and_off(data_dir: Path) -> None:
    assert _ok(data_dir, "on", URL).stdout == f"{URL} ordered\n"
    assert _ok(data_dir, "on", URL).stdout == f"{URL} was already ordered\n"
    assert _ok(data_dir, "list").stdout == f"{URL}  nothing in flight\n"
    head, following = await _callbacks(data_dir, 2)

    listed = _ok(data_dir, "ls").stdout
    released = _ok(data_dir, "release", URL).stdout

    assert listed.startswith(f"{URL}  2 in flight; head {head} pending, 0 attempts")
    assert released == f"released {head} (run -) after 0 attempts\n"
    assert await _status(data_dir, head) == (DeliveryStatus.FAILED, "released")
    assert f"1 in flight; head {following} pending" in _ok(data_dir, "ls").stdout
    assert _ok(data_dir, "off", URL).stdout == f"{URL} no longer ordered\n"
    assert _ok(data_dir, "ls").stdout == ""


def test_off_for_a_url_not_ordered_and_release_without_a_head_are_one_line_errors(
    data_dir: Path,
) -> None:
    off = cli("ordered", "off", URL, "--data-dir", str(data_dir))
    released = cli("ordered", "release", URL, "--data-dir", str(data_dir))

    assert (off.returncode, off.stderr.splitlines()[-1]) == (2, f"runback: {URL} is not ordered")
    assert released.returncode == 4  # nothing in flight: not found
    assert released.stderr.splitlines()[-1] == (
        f"runback: no ordered callback to {URL} is in flight"
    )
    assert "Traceback" not in off.stderr + released.stderr


def test_an_unknown_organization_is_a_one_line_error(data_dir: Path) -> None:
    result = cli("ordered", "on", URL, "--org", "nope", "--data-dir", str(data_dir))

    assert result.returncode == 4  # not found
    assert "no organization named nope" in result.stderr
