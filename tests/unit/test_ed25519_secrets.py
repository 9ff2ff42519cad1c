"""Ed25519 keys among callback secrets, in the store on both databases: sealed at rest like
HMAC secrets, their public keys plain and published, one current secret per type."""

from __future__ import annotations

from uuid import UUID

import pytest
from sqlalchemy import select

from runback.core.records import CallbackSecret, SecretType
from runback.core.sealing import MasterKeys, generate_master_key, sealed_key_id
from runback.core.signing import new_callback_secret
from runback.errors import SecretInUseError
from runback.store import Store
from runback.store.schema import callback_secrets
from runback.testing import ManualClock

OLD = generate_master_key("k1")
NEW = generate_master_key("k2")


def sealed_with(store: Store, *specs: str) -> Store:
    """The same database, opened with these master keys."""
    return Store(store.database, master_keys=MasterKeys.parse(specs))


async def create(
    store: Store, clock: ManualClock, kind: SecretType, organization_id: UUID | None = None
) -> CallbackSecret:
    if organization_id is None:
        organization, _ = await store.accounts.ensure_default_organization(now=clock.now())
        organization_id = organization.id
    clock.advance(1)  # created_at orders the secrets
    made = new_callback_secret(organization_id, label=kind.value, now=clock.now(), kind=kind)
    return await store.secrets.create(made)


async def raw_row(store: Store, secret_id: UUID) -> tuple[str, str, str | None]:
    """``secret``, ``type`` and ``public_key`` exactly as the database holds them."""
    async with store.database.read() as conn:
        query = select(
            callback_secrets.c.secret, callback_secrets.c.type, callback_secrets.c.public_key
        ).where(callback_secrets.c.id == secret_id)
        row = (await conn.execute(query)).one()
    return row.secret, row.type, row.public_key


async def test_the_private_key_is_sealed_at_rest_and_the_public_key_is_plain(
    store: Store, clock: ManualClock
) -> None:
    sealed = sealed_with(store, OLD)

    created = await create(sealed, clock, SecretType.ED25519)

    secret, kind, public_key = await raw_row(store, created.id)
    assert sealed_key_id(secret) == "k1"
    assert created.secret not in secret
    assert created.secret.removeprefix("whsk_") not in secret
    assert (kind, public_key) == ("ed25519", created.public_key)


async def test_every_reader_gets_the_plain_private_key_and_the_type(
    store: Store, clock: ManualClock
) -> None:
    sealed = sealed_with(store, OLD)
    created = await create(sealed, clock, SecretType.ED25519)

    [listed] = await sealed.secrets.list(created.organization_id)
    signing = await sealed.secrets.signing([created.organization_id])

    assert listed == created
    assert signing[created.organization_id] == [created]
    assert listed.type is SecretType.ED25519
    assert listed.secret.startswith("whsk_")


async def test_reseal_after_rotation_moves_ed25519_keys_too(
    store: Store, clock: ManualClock
) -> None:
    created = await create(sealed_with(store, OLD), clock, SecretType.ED25519)
    rotating = sealed_with(store, NEW, OLD)

    assert await rotating.secrets.reseal() == 1

    assert sealed_key_id((await raw_row(store, created.id))[0]) == "k2"
    found = await sealed_with(store, NEW).secrets.get(
        created.id, organization_id=created.organization_id
    )
    assert found == created


async def test_the_first_secret_of_each_type_is_current(store: Store, clock: ManualClock) -> None:
    hmac = await create(store, clock, SecretType.HMAC)
    ed25519 = await create(store, clock, SecretType.ED25519)
    second = await create(store, clock, SecretType.ED25519)

    assert (hmac.is_current, ed25519.is_current, second.is_current) == (True, True, False)


async def test_promoting_an_ed25519_key_demotes_only_the_current_ed25519_key(
    store: Store, clock: ManualClock
) -> None:
    hmac = await create(store, clock, SecretType.HMAC)
    old = await create(store, clock, SecretType.ED25519)
    new = await create(store, clock, SecretType.ED25519)

    await store.secrets.update(
        new.id, organization_id=new.organization_id, now=clock.now(), promote=True
    )

    current = {s.id for s in await store.secrets.list(hmac.organization_id) if s.is_current}
    assert current == {hmac.id, new.id}
    assert old.id not in current


async def test_the_current_ed25519_key_goes_only_after_the_other_ed25519_keys(
    store: Store, clock: ManualClock
) -> None:
    await create(store, clock, SecretType.HMAC)  # another type: it does not hold the key
    current = await create(store, clock, SecretType.ED25519)
    other = await create(store, clock, SecretType.ED25519)
    organization_id = current.organization_id

    with pytest.raises(SecretInUseError):
        await store.secrets.disable(current.id, organization_id=organization_id, now=clock.now())
    await store.secrets.disable(other.id, organization_id=organization_id, now=clock.now())
    gone = await store.secrets.disable(current.id, organization_id=organization_id, now=clock.now())

    assert gone is not None
    assert gone.disabled_at is not None


async def test_public_keys_are_the_active_ed25519_keys_oldest_first(
    store: Store, clock: ManualClock
) -> None:
    await create(store, clock, SecretType.HMAC)
    first = await create(store, clock, SecretType.ED25519)
    second = await create(store, clock, SecretType.ED25519)
    disabled = await create(store, clock, SecretType.ED25519)
    await store.secrets.disable(
        disabled.id, organization_id=disabled.organization_id, now=clock.now()
    )
    other_org = await store.accounts.create_organization("other", now=clock.now())
    theirs = await create(store, clock, SecretType.ED25519, other_org.id)

    everyone = await store.secrets.public_keys()
    ours = await store.secrets.public_keys(first.organization_id)

    assert everyone == [(s.id, s.public_key) for s in (first, second, theirs)]
    assert ours == [(s.id, s.public_key) for s in (first, second)]


async def test_public_keys_never_open_the_private_keys(store: Store, clock: ManualClock) -> None:
    created = await create(sealed_with(store, OLD), clock, SecretType.ED25519)

    # Without the master key the private keys would not open: the public ones still read.
    assert await store.secrets.public_keys() == [(created.id, created.public_key)]
