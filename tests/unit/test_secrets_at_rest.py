"""Callback secrets at rest: sealed in the database with the master key, plain to every caller.

Stores with master keys share the ``store`` fixture's database (SQLite and PostgreSQL), so a
test can write with one key set and read with another, as processes restarted with a rotated
``RUNBACK_MASTER_KEYS`` would.
"""

from __future__ import annotations

import logging
from uuid import UUID

import pytest
from sqlalchemy import select

from runback.core.records import CallbackSecret
from runback.core.sealing import MasterKeys, generate_master_key, sealed_key_id
from runback.core.signing import new_callback_secret, runflow_signature
from runback.errors import ConfigError
from runback.provider.server import warn_unsealed
from runback.settings import load_settings
from runback.store import Store
from runback.store.schema import callback_secrets
from runback.testing import ManualClock
from support.harness import make_harness

OLD = generate_master_key("k1")
NEW = generate_master_key("k2")


def sealed_with(store: Store, *specs: str) -> Store:
    """The same database, opened with these master keys (none: plain, as without any)."""
    return Store(store.database, master_keys=MasterKeys.parse(specs) if specs else None)


async def create_secret(store: Store, clock: ManualClock) -> CallbackSecret:
    organization, _ = await store.accounts.ensure_default_organization(now=clock.now())
    made = new_callback_secret(organization.id, label="primary", now=clock.now())
    return await store.secrets.create(made)


async def raw_secret(store: Store, secret_id: UUID) -> str:
    """The ``secret`` column exactly as the database holds it."""
    async with store.database.read() as conn:
        query = select(callback_secrets.c.secret).where(callback_secrets.c.id == secret_id)
        value: str = (await conn.execute(query)).scalar_one()
    return value


async def test_the_database_row_never_holds_the_plain_secret(
    store: Store, clock: ManualClock
) -> None:
    sealed = sealed_with(store, OLD)

    created = await create_secret(sealed, clock)

    raw = await raw_secret(store, created.id)
    assert sealed_key_id(raw) == "k1"
    assert created.secret not in raw
    assert created.secret.removeprefix("whsec_") not in raw


async def test_every_reader_gets_the_plain_secret(store: Store, clock: ManualClock) -> None:
    sealed = sealed_with(store, OLD)
    created = await create_secret(sealed, clock)
    org = created.organization_id

    assert created.secret.startswith("whsec_")
    assert [s.secret for s in await sealed.secrets.list(org)] == [created.secret]
    found = await sealed.secrets.get(created.id, organization_id=org)
    assert found is not None
    assert found.secret == created.secret
    assert [s.secret for s in (await sealed.secrets.signing([org]))[org]] == [created.secret]
    renamed = await sealed.secrets.update(
        created.id, organization_id=org, now=clock.now(), label="renamed"
    )
    assert renamed is not None
    assert renamed.secret == created.secret


async def test_without_a_master_key_secrets_are_stored_plain(
    store: Store, clock: ManualClock
) -> None:
    created = await create_secret(store, clock)

    assert await raw_secret(store, created.id) == created.secret


async def test_callbacks_are_signed_with_the_plain_secret(store: Store, clock: ManualClock) -> None:
    sealed = sealed_with(store, OLD)
    created = await create_secret(sealed, clock)
    h = await make_harness(sealed, clock)
    run = await h.submit()

    await h.executor.run_until_idle()
    await h.dispatcher.deliver_due()

    (request,) = h.sender.requests
    assert request.headers["Runflow-Signature"] == runflow_signature(created.secret, request.body)
    delivery, _ = await h.only_delivery(run.id)
    assert delivery.signing_secret_id == created.id


async def test_reseal_seals_the_plain_secrets_of_before(store: Store, clock: ManualClock) -> None:
    created = await create_secret(store, clock)
    sealed = sealed_with(store, OLD)

    assert await sealed.secrets.reseal() == 1

    assert sealed_key_id(await raw_secret(store, created.id)) == "k1"
    assert [s.secret for s in await sealed.secrets.list(created.organization_id)] == [
        created.secret
    ]


async def test_reseal_after_rotation_moves_every_secret_to_the_new_key(
    store: Store, clock: ManualClock
) -> None:
    created = await create_secret(sealed_with(store, OLD), clock)
    rotating = sealed_with(store, NEW, OLD)

    assert await rotating.secrets.reseal() == 1
    assert await rotating.secrets.reseal() == 0  # nothing left under the old key

    assert sealed_key_id(await raw_secret(store, created.id)) == "k2"
    rotated = sealed_with(store, NEW)  # the old key dropped
    found = await rotated.secrets.get(created.id, organization_id=created.organization_id)
    assert found is not None
    assert found.secret == created.secret


async def test_a_secret_sealed_with_a_key_no_longer_given_fails_clearly(
    store: Store, clock: ManualClock
) -> None:
    created = await create_secret(sealed_with(store, OLD), clock)
    dropped_too_soon = sealed_with(store, NEW)

    with pytest.raises(ConfigError, match=r"master key 'k1', which is not given: add 'k1:"):
        await dropped_too_soon.secrets.list(created.organization_id)
    with pytest.raises(ConfigError, match="'k1'"):
        await dropped_too_soon.secrets.reseal()


async def test_sealed_secrets_without_any_master_key_stop_the_start(
    store: Store, clock: ManualClock
) -> None:
    await create_secret(sealed_with(store, OLD), clock)

    with pytest.raises(ConfigError, match="sealed with master key 'k1' but no master key"):
        await store.secrets.reseal()


def testwarn_unsealed_come_comma_separated_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNBACK_MASTER_KEYS", f"{NEW}, {OLD}")

    settings = load_settings()

    assert settings.master_keys == (NEW, OLD)
    keys = settings.config().database.master_keys
    assert keys is not None
    assert keys.current.id == "k2"
    assert [k.id for k in keys.older] == ["k1"]
    assert NEW.split(":")[1] not in repr(settings)


def test_a_malformed_master_key_stops_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNBACK_MASTER_KEYS", "k1:c2hvcnQ=")

    with pytest.raises(ConfigError, match=r"^RUNBACK_MASTER_KEYS .*32 bytes"):
        load_settings()


def test_serving_without_a_master_key_warns(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        warn_unsealed(load_settings().config().database)

    assert "plain text" in caplog.text
