"""Sealing secrets at rest: round trips, tampering, unknown and malformed keys, rotation."""

from __future__ import annotations

import base64

import pytest

from runback.core.sealing import (
    SEALED_PREFIX,
    MasterKey,
    MasterKeys,
    generate_master_key,
    open_value,
    sealed_key_id,
)
from runback.errors import ConfigError

OLD = generate_master_key("k1", lambda n: b"\x01" * n)
NEW = generate_master_key("k2", lambda n: b"\x02" * n)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def keys(*specs: str) -> MasterKeys:
    return MasterKeys.parse(specs)


def test_a_sealed_value_opens_to_the_plain_text() -> None:
    sealed = keys(OLD).seal(SECRET, context="row-1")

    assert keys(OLD).open(sealed, context="row-1") == SECRET


def test_a_sealed_value_names_its_key_and_hides_the_plain_text() -> None:
    sealed = keys(OLD).seal(SECRET)

    assert sealed.startswith(f"{SEALED_PREFIX}k1:")
    assert sealed_key_id(sealed) == "k1"
    assert SECRET not in sealed
    assert SECRET.removeprefix("whsec_") not in sealed


def test_each_seal_takes_a_fresh_nonce() -> None:
    assert keys(OLD).seal(SECRET) != keys(OLD).seal(SECRET)


def test_a_given_nonce_makes_the_seal_repeatable() -> None:
    fixed = keys(OLD).seal(SECRET, random_bytes=lambda n: b"\x00" * n)

    assert fixed == keys(OLD).seal(SECRET, random_bytes=lambda n: b"\x00" * n)


def test_a_tampered_value_does_not_open() -> None:
    sealed = keys(OLD).seal(SECRET)
    raw = bytearray(base64.b64decode(sealed.rsplit(":", 1)[1]))
    raw[-1] ^= 1
    tampered = f"{SEALED_PREFIX}k1:{base64.b64encode(raw).decode()}"

    with pytest.raises(ConfigError, match="does not open"):
        keys(OLD).open(tampered)


def test_a_value_sealed_for_another_row_does_not_open() -> None:
    sealed = keys(OLD).seal(SECRET, context="row-1")

    with pytest.raises(ConfigError, match="does not open"):
        keys(OLD).open(sealed, context="row-2")


def test_a_value_sealed_with_other_bytes_under_the_same_id_does_not_open() -> None:
    sealed = keys(OLD).seal(SECRET)
    impostor = generate_master_key("k1", lambda n: b"\x09" * n)

    with pytest.raises(ConfigError, match="not the key that sealed it"):
        keys(impostor).open(sealed)


@pytest.mark.parametrize(
    "garbled",
    [
        f"{SEALED_PREFIX}k1:",  # nothing after the key id
        f"{SEALED_PREFIX}k1:not base64!",  # not base64
        f"{SEALED_PREFIX}k1:{base64.b64encode(b'short').decode()}",  # shorter than nonce + tag
        f"{SEALED_PREFIX}k1",  # no separator after the key id
    ],
)
def test_a_garbled_value_raises_the_config_error(garbled: str) -> None:
    with pytest.raises(ConfigError):
        keys(OLD).open(garbled)


def test_a_value_sealed_with_an_unknown_key_says_which_key_to_add() -> None:
    sealed = keys(OLD).seal(SECRET)

    with pytest.raises(ConfigError, match=r"master key 'k1', which is not given: add 'k1:"):
        keys(NEW).open(sealed)


def test_plain_values_pass_through_open_value() -> None:
    assert open_value(SECRET, keys(OLD)) == SECRET
    assert open_value(SECRET, None) == SECRET


def test_a_sealed_value_without_master_keys_says_which_key_to_give() -> None:
    sealed = keys(OLD).seal(SECRET)

    with pytest.raises(ConfigError, match=r"no master key is given.*'k1:"):
        open_value(sealed, None)


def test_rotation_seals_with_the_first_key_and_opens_with_any() -> None:
    before = keys(OLD).seal(SECRET, context="row")
    rotating = keys(NEW, OLD)

    after = rotating.seal(SECRET, context="row")

    assert sealed_key_id(after) == "k2"
    assert rotating.open(before, context="row") == SECRET
    assert rotating.open(after, context="row") == SECRET
    assert not rotating.is_current(before)
    assert rotating.is_current(after)
    assert not rotating.is_current(SECRET)


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ((), "at least one master key"),  # none at all
        (("k1",), r"<id>:<base64"),  # no colon
        (("k1:not base64!",), "not standard base64"),  # undecodable
        ((f"k1:{base64.b64encode(b'x' * 16).decode()}",), "must be 32 bytes"),  # too short
        ((f":{base64.b64encode(b'x' * 32).decode()}",), "id ''"),  # empty id
        ((f"k 1:{base64.b64encode(b'x' * 32).decode()}",), "letters, digits"),  # bad id
        ((OLD, OLD.replace("AQEB", "AgIC")), "given twice"),  # two keys with one id
    ],
)
def test_malformed_master_keys_raise_a_clear_config_error(
    specs: tuple[str, ...], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        MasterKeys.parse(specs)


def test_a_key_never_shows_its_bytes() -> None:
    key = MasterKey.parse(OLD)

    assert "AQEB" not in repr(key)
    assert base64.b64encode(key.key).decode() not in repr(keys(OLD))


def test_generated_keys_parse() -> None:
    key = MasterKey.parse(generate_master_key("prod-2026.1"))

    assert key.id == "prod-2026.1"
    assert len(key.key) == 32
