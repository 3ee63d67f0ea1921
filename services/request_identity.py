"""Which Restate server may invoke the reconcilers: request-identity keys in Restate's format.

Anyone who can reach the services endpoint could otherwise run `forceDrain` or a reconcile with
forged input. Restate signs each request with an ed25519 key; the SDK verifies the signature
against `publickeyv1_<base58 of the raw public key>` keys. The chart generates the bootstrap
Restate's private key and mounts it here too, so the public key is derived, never copied by hand.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.settings import Settings

PREFIX = "publickeyv1_"
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def base58(data: bytes) -> str:
    """Bitcoin-alphabet base58, as Restate encodes its key ids (leading zero bytes become '1')."""
    number = int.from_bytes(data, "big")
    digits = ""
    while number:
        number, rest = divmod(number, 58)
        digits = _BASE58[rest] + digits
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + digits


def public_key(private_pem: bytes) -> str:
    """The `publickeyv1_…` key of an ed25519 private key in PEM (PKCS#8, as `openssl genpkey` writes)."""
    key = serialization.load_pem_private_key(private_pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the request identity key must be an ed25519 private key")
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PREFIX + base58(raw)


def identity_keys(settings: Settings) -> list[str]:
    """Every key the services accept; empty means requests are not verified."""
    keys = list(settings.request_identity_keys)
    if settings.request_identity_private_key_file:
        keys.append(public_key(Path(settings.request_identity_private_key_file).read_bytes()))
    return keys
