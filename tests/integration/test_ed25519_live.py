"""An Ed25519-signed callback on the wire: real store (sealed at rest), the real dispatcher
and aiohttp sender, and a loopback receiver that checks ``v1a`` with PyNaCl (libsodium), an
Ed25519 implementation independent of the one runback signs with. The receiver answers 200
only to a valid signature, so a delivery that succeeds is one the receiver verified."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from aiohttp import web
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from runback.config import DeliveryConfig
from runback.core.clock import SystemClock
from runback.core.records import CallbackSecret, SecretType
from runback.core.retry import RetryPolicy
from runback.core.sealing import MasterKeys, generate_master_key
from runback.core.signing import new_callback_secret
from runback.core.states import DeliveryStatus
from runback.core.urlpolicy import LOOPBACK_ALLOW, UrlPolicy
from runback.core.verification import Verifier
from runback.store import Store
from support.factories import queued_run
from support.live import live_runtime
from support.receivers import LoopbackReceiver
from support.waiting import eventually

POLICY = RetryPolicy(delays=(0.25, 0.5), jitter=0.0)


class NaclReceiver:
    """Answers 200 when one ``v1a`` entry verifies with one of its public keys, else 401."""

    def __init__(self, *public_keys: str) -> None:
        self.keys = [VerifyKey(base64.b64decode(k.removeprefix("whpk_"))) for k in public_keys]
        self.verified: list[int] = []  # how many entries verified, per request

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        signed = b"%s.%s.%s" % (
            request.headers["webhook-id"].encode(),
            request.headers["webhook-timestamp"].encode(),
            body,
        )
        entries = [
            base64.b64decode(entry.removeprefix("v1a,"))
            for entry in request.headers.get("webhook-signature", "").split(" ")
            if entry.startswith("v1a,")
        ]
        count = sum(self._verifies(signature, signed) for signature in entries)
        self.verified.append(count)
        return web.Response(status=200 if count else 401)

    def _verifies(self, signature: bytes, signed: bytes) -> bool:
        for key in self.keys:
            try:
                key.verify(signed, signature)
            except BadSignatureError:
                continue
            return True
        return False


@asynccontextmanager
async def dispatching(store: Store) -> AsyncIterator[None]:
    """The executor and the dispatcher on their own loops, on the wall clock."""
    delivery = DeliveryConfig(retry=POLICY, url_policy=UrlPolicy.from_allow_list(LOOPBACK_ALLOW))
    async with live_runtime(store, delivery):
        yield


async def _ed25519_key(store: Store, *, age: timedelta = timedelta(0)) -> CallbackSecret:
    organization, _ = await store.accounts.ensure_default_organization(now=SystemClock().now())
    made = new_callback_secret(
        organization.id, label="asym", now=SystemClock().now() - age, kind=SecretType.ED25519
    )
    return await store.secrets.create(made)


async def _deliver(store: Store, receiver: LoopbackReceiver) -> DeliveryStatus:
    organization, _ = await store.accounts.ensure_default_organization(now=SystemClock().now())
    run = queued_run(
        organization_id=organization.id,
        now=SystemClock().now(),
        callback_url=receiver.url_for("/hook"),
    )
    await store.runs.insert(run)

    async def ended() -> bool:
        found = await store.deliveries.for_run(run.id, organization_id=organization.id)
        return bool(found) and found[0][0].status in (
            DeliveryStatus.SUCCEEDED,
            DeliveryStatus.FAILED,
        )

    await eventually(ended, what="the delivery to end", timeout=10)
    [(delivery, _)] = await store.deliveries.for_run(run.id, organization_id=organization.id)
    return delivery.status


async def test_libsodium_verifies_the_v1a_signature_of_a_delivered_callback(
    store: Store,
) -> None:
    sealed = Store(store.database, master_keys=MasterKeys.parse([generate_master_key("k1")]))
    key = await _ed25519_key(sealed)
    assert key.public_key is not None
    nacl = NaclReceiver(key.public_key)

    async with LoopbackReceiver(nacl) as receiver, dispatching(sealed):
        status = await _deliver(sealed, receiver)

    assert status is DeliveryStatus.SUCCEEDED
    assert nacl.verified == [1]
    [request] = receiver.requests
    assert "Runflow-Signature" not in request.headers
    # runback's own receiver, given only the public key, agrees.
    verified = Verifier([key.public_key]).verify(request.body, dict(request.headers))
    assert verified.scheme == "v1a"


async def test_a_receiver_holding_another_public_key_refuses_the_callback(
    store: Store,
) -> None:
    await _ed25519_key(store)
    stranger = new_callback_secret(
        (await store.accounts.ensure_default_organization(now=SystemClock().now()))[0].id,
        label=None,
        now=SystemClock().now(),
        kind=SecretType.ED25519,
    )
    assert stranger.public_key is not None
    nacl = NaclReceiver(stranger.public_key)

    async with LoopbackReceiver(nacl) as receiver, dispatching(store):
        status = await _deliver(store, receiver)

    assert status is DeliveryStatus.FAILED  # three attempts, each refused
    assert nacl.verified == [0, 0, 0]


async def test_during_a_rotation_receivers_holding_either_key_verify(store: Store) -> None:
    old = await _ed25519_key(store, age=timedelta(minutes=1))
    new = await _ed25519_key(store)
    assert old.public_key is not None
    assert new.public_key is not None
    holds_old, holds_new = NaclReceiver(old.public_key), NaclReceiver(new.public_key)

    async with (
        LoopbackReceiver(holds_old) as old_receiver,
        LoopbackReceiver(holds_new) as new_receiver,
        dispatching(store),
    ):
        assert await _deliver(store, old_receiver) is DeliveryStatus.SUCCEEDED
        assert await _deliver(store, new_receiver) is DeliveryStatus.SUCCEEDED

    [request] = old_receiver.requests
    assert request.headers["webhook-signature"].count("v1a,") == 2
