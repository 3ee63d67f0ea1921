"""Request identity keys in Restate's `publickeyv1_` format."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key

from services import request_identity
from services.settings import Settings


def pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize(
    ("data", "encoded"),
    [
        pytest.param(b"", "", id="empty"),
        pytest.param(b"\0\0\x01", "112", id="leading-zeros"),
        pytest.param(b"hello world", "StV1DL6CwTryKyV", id="text"),
    ],
)
def test_base58_uses_the_bitcoin_alphabet(data: bytes, encoded: str) -> None:
    assert request_identity.base58(data) == encoded


def test_public_key_is_the_base58_of_the_raw_ed25519_key() -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))  # RFC 8032 test key: all-zero seed
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert raw.hex().startswith("3b6a27bc")
    derived = request_identity.public_key(pem(key))
    assert derived == "publickeyv1_" + request_identity.base58(raw)


def test_other_key_types_are_refused_with_a_clear_message() -> None:
    rsa = generate_private_key(public_exponent=65537, key_size=1024)
    data = rsa.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="ed25519"):
        request_identity.public_key(data)


def test_keys_from_settings_combine_the_list_and_the_mounted_private_key(tmp_path: Path) -> None:
    key_file = tmp_path / "private.pem"
    key_file.write_bytes(pem(Ed25519PrivateKey.generate()))
    settings = Settings(request_identity_keys=("publickeyv1_given",), request_identity_private_key_file=str(key_file))
    keys = request_identity.identity_keys(settings)
    assert keys[0] == "publickeyv1_given"
    assert keys[1].startswith("publickeyv1_")
    assert len(keys) == 2
    assert request_identity.identity_keys(Settings()) == []
