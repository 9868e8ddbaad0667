"""Field encryption (AES-256-GCM, key ids, rotation), blind indexes, and prefixed sortable ids."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from cryptography.exceptions import InvalidTag

from usefirst.kit.crypto import FieldCipher, KeyNotFound, hash_api_key, new_api_secret, new_key
from usefirst.kit.ids import PREFIXES, has_prefix, new_id

KEY_1 = bytes(range(32))
KEY_2 = bytes(range(100, 132))
BLIND_INDEX_KEY = bytes(range(32, 96))
CROCKFORD = set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")


def make_cipher(
    keys: dict[str, bytes] | None = None, active_key_id: str = "k1", blind: bytes = BLIND_INDEX_KEY
) -> FieldCipher:
    return FieldCipher(
        keys={"k1": KEY_1} if keys is None else keys,
        active_key_id=active_key_id,
        blind_index_key=blind,
    )


# Encryption


@pytest.mark.parametrize("plaintext", ["11010519491231002X", "张三", "", "a:b:c", "x" * 5_000])
def test_round_trip(plaintext: str) -> None:
    cipher = make_cipher()
    ciphertext = cipher.encrypt(plaintext, field="national_id")
    assert ciphertext.startswith("v1:k1:")
    assert plaintext not in ciphertext or plaintext == ""
    assert cipher.decrypt(ciphertext, field="national_id") == plaintext


def test_ciphertext_layout() -> None:
    ciphertext = make_cipher().encrypt("张三", field="name")
    version, key_id, token = ciphertext.split(":")
    raw = base64.urlsafe_b64decode(token)
    # 12-byte nonce + UTF-8 plaintext (6 bytes) + 16-byte tag.
    assert (version, key_id, len(raw)) == ("v1", "k1", 12 + 6 + 16)


def test_ciphertext_differs_each_time() -> None:
    cipher = make_cipher()
    ciphertexts = {cipher.encrypt("+8613800138000", field="phone") for _ in range(20)}
    assert len(ciphertexts) == 20
    assert {cipher.decrypt(c, field="phone") for c in ciphertexts} == {"+8613800138000"}


def test_wrong_field_fails_to_decrypt() -> None:
    cipher = make_cipher()
    ciphertext = cipher.encrypt("+8613800138000", field="phone")
    with pytest.raises(InvalidTag):
        cipher.decrypt(ciphertext, field="email")


def test_tampered_ciphertext_fails_to_decrypt() -> None:
    cipher = make_cipher()
    version, key_id, token = cipher.encrypt("张三", field="name").split(":")
    raw = bytearray(base64.urlsafe_b64decode(token))
    raw[14] ^= 0x01
    tampered = f"{version}:{key_id}:{base64.urlsafe_b64encode(bytes(raw)).decode()}"
    with pytest.raises(InvalidTag):
        cipher.decrypt(tampered, field="name")


def test_ciphertext_under_another_key_with_same_id_fails() -> None:
    ciphertext = make_cipher().encrypt("张三", field="name")
    impostor = make_cipher(keys={"k1": KEY_2})
    with pytest.raises(InvalidTag):
        impostor.decrypt(ciphertext, field="name")


def test_key_rotation_keeps_old_ciphertexts_readable() -> None:
    old = make_cipher()
    old_ciphertext = old.encrypt("11010519491231002X", field="national_id")

    rotated = make_cipher(keys={"k1": KEY_1, "k2": KEY_2}, active_key_id="k2")
    new_ciphertext = rotated.encrypt("11010519491231002X", field="national_id")

    assert rotated.active_key_id == "k2"
    assert rotated.key_id_of(old_ciphertext) == "k1"
    assert rotated.key_id_of(new_ciphertext) == "k2"
    assert new_ciphertext.startswith("v1:k2:")
    assert rotated.decrypt(old_ciphertext, field="national_id") == "11010519491231002X"
    assert rotated.decrypt(new_ciphertext, field="national_id") == "11010519491231002X"
    # The old keyring cannot read what the new key wrote.
    with pytest.raises(KeyNotFound, match="'k2'"):
        old.decrypt(new_ciphertext, field="national_id")


def test_unknown_key_id_raises_key_not_found() -> None:
    cipher = make_cipher()
    ciphertext = cipher.encrypt("张三", field="name").replace("v1:k1:", "v1:k9:", 1)
    with pytest.raises(KeyNotFound, match="'k9'"):
        cipher.decrypt(ciphertext, field="name")


def test_unknown_version_is_rejected() -> None:
    cipher = make_cipher()
    ciphertext = cipher.encrypt("张三", field="name").replace("v1:", "v2:", 1)
    with pytest.raises(ValueError, match="unknown ciphertext version 'v2'"):
        cipher.decrypt(ciphertext, field="name")


def test_active_key_must_be_in_the_keyring() -> None:
    with pytest.raises(KeyNotFound, match="'k2'"):
        make_cipher(keys={"k1": KEY_1}, active_key_id="k2")


@pytest.mark.parametrize("size", [0, 16, 24, 31, 33, 64])
def test_bad_encryption_key_sizes_rejected(size: int) -> None:
    with pytest.raises(ValueError, match="must be 32 bytes"):
        make_cipher(keys={"k1": bytes(size)})
    with pytest.raises(ValueError, match="must be 32 bytes"):
        make_cipher(keys={"k1": KEY_1, "old": bytes(size)})


@pytest.mark.parametrize("size", [0, 16, 31])
def test_short_blind_index_key_rejected(size: int) -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        make_cipher(blind=bytes(size))


def test_key_id_must_not_contain_a_colon() -> None:
    with pytest.raises(ValueError, match="must not contain ':'"):
        make_cipher(keys={"k:1": KEY_1}, active_key_id="k:1")


def test_new_key_is_32_random_bytes() -> None:
    first, second = new_key(), new_key()
    assert len(first) == len(second) == 32
    assert first != second
    make_cipher(keys={"fresh": first}, active_key_id="fresh")


# Blind indexes


def test_blind_index_is_deterministic_and_keyed() -> None:
    cipher = make_cipher()
    value = cipher.blind_index("11010519491231002X", field="national_id")
    expected = hmac.new(
        BLIND_INDEX_KEY, b"national_id\x0011010519491231002X", hashlib.sha256
    ).hexdigest()
    assert value == expected
    assert len(value) == 64
    assert cipher.blind_index("11010519491231002X", field="national_id") == value
    # Independent of the encryption keys: survives rotation.
    rotated = make_cipher(keys={"k1": KEY_1, "k2": KEY_2}, active_key_id="k2")
    assert rotated.blind_index("11010519491231002X", field="national_id") == value
    # A different blind index key gives a different index.
    other = make_cipher(blind=bytes(range(1, 33)))
    assert other.blind_index("11010519491231002X", field="national_id") != value


def test_blind_index_is_field_separated() -> None:
    cipher = make_cipher()
    assert cipher.blind_index("+8613800138000", field="phone") != cipher.blind_index(
        "+8613800138000", field="national_id"
    )
    # The separator stops field/value boundaries from sliding.
    assert cipher.blind_index("b", field="ab") != cipher.blind_index("ab", field="a")
    assert cipher.blind_index("a", field="phone") != cipher.blind_index("b", field="phone")


# API keys


def test_api_secrets_and_hashes() -> None:
    secret = new_api_secret("sk_test")
    assert secret.startswith("sk_test_")
    assert len(secret) == len("sk_test_") + 43  # 32 bytes, base64url without padding
    assert new_api_secret("sk_test") != secret
    assert hash_api_key("abc") == hashlib.sha256(b"abc").hexdigest()


# Ids


@pytest.mark.parametrize(
    ("kind", "prefix"), [("order", "ord"), ("shopper", "shp"), ("event", "evt")]
)
def test_new_id_prefix_and_length(kind: str, prefix: str) -> None:
    value = new_id(kind)
    head, _, body = value.partition("_")
    assert head == prefix
    assert len(body) == 26
    assert set(body) <= CROCKFORD
    assert has_prefix(value, kind)
    assert not has_prefix(value, "merchant")


def test_id_prefixes_match_the_contract() -> None:
    assert {
        kind: PREFIXES[kind]
        for kind in [
            "shopper",
            "merchant",
            "order",
            "payment",
            "refund",
            "dispute",
            "case",
            "event",
        ]
    } == {
        "shopper": "shp",
        "merchant": "mer",
        "order": "ord",
        "payment": "pay",
        "refund": "ref",
        "dispute": "dsp",
        "case": "cas",
        "event": "evt",
    }
    with pytest.raises(KeyError):
        new_id("unicorn")


def test_new_id_time_part_is_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    body = new_id("order").partition("_")[2]
    after = time.time_ns() // 1_000_000
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    millis = 0
    for character in body[:10]:
        millis = millis * 32 + alphabet.index(character)
    assert before <= millis <= after


def test_new_ids_sort_by_creation_order() -> None:
    created = []
    for _ in range(5):
        created.append(new_id("payment"))
        time.sleep(0.002)
    assert sorted(created) == created
    assert len(set(created)) == 5


def test_ids_within_one_millisecond_are_unique() -> None:
    assert len({new_id("event") for _ in range(2_000)}) == 2_000
