"""API keys are kept per process and checked against one revision counter per request: a key
revoked in one process fails on the very next request in every other."""

from __future__ import annotations

from sqlalchemy import delete, select

from runback.core.ids import hash_api_key, visible_prefix
from runback.store import Store
from runback.store.schema import api_keys, memberships
from runback.testing import ManualClock


async def test_a_key_revoked_by_another_process_fails_on_the_next_request(
    store_pair: tuple[Store, Store], clock: ManualClock
) -> None:
    serving, other = store_pair
    organization, _ = await serving.accounts.ensure_default_organization(now=clock.now())
    key = await serving.accounts.create_api_key([organization.id], now=clock.now())
    kept = await serving.accounts.create_api_key([organization.id], now=clock.now())
    assert await serving.accounts.organizations_of(key) == [organization.id]
    assert await serving.accounts.organizations_of(kept) == [organization.id]

    await other.accounts.revoke_key(visible_prefix(key), now=clock.now())

    assert await serving.accounts.organizations_of(key) == []
    assert await serving.accounts.organizations_of(kept) == [organization.id]


async def test_a_seen_key_is_answered_without_reading_it_again_until_a_revocation(
    store: Store, clock: ManualClock
) -> None:
    organization, _ = await store.accounts.ensure_default_organization(now=clock.now())
    key = await store.accounts.create_api_key([organization.id], now=clock.now())
    doomed = await store.accounts.create_api_key([organization.id], now=clock.now())
    assert await store.accounts.organizations_of(key) == [organization.id]
    async with store.database.write() as conn:  # behind the store's back: no revision bump
        key_id = select(api_keys.c.id).where(api_keys.c.key_hash == hash_api_key(key))
        await conn.execute(delete(memberships).where(memberships.c.api_key_id.in_(key_id)))

    assert await store.accounts.organizations_of(key) == [organization.id]  # as kept

    await store.accounts.revoke_key(visible_prefix(doomed), now=clock.now())

    assert await store.accounts.organizations_of(key) == []  # read again: no memberships


async def test_an_unknown_key_is_not_kept(store: Store, clock: ManualClock) -> None:
    organization, _ = await store.accounts.ensure_default_organization(now=clock.now())
    assert await store.accounts.organizations_of("rb_not_yet") == []

    key = await store.accounts.create_api_key([organization.id], now=clock.now())

    assert await store.accounts.organizations_of(key) == [organization.id]
