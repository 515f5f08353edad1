"""Signed stores: an HMAC-SHA256 over every stored object, checked before anything is unpickled.

Checkpoints and payloads are pickled, so whoever can write to a store's directory or bucket can
make every worker that reads it run their code. A store given a ``signing_key`` signs every
object it writes (payloads, checkpoints, ledgers, decided markers, sensor state: everything
that goes through its byte primitives) and refuses, with ``UntrustedObjectError``, to return
an object whose signature is missing or wrong. The refusal happens where the bytes are read,
so nothing unverified reaches ``pickle.loads``.

The signature covers the object's key and its expiry header as well as its value: an object
copied under another key (another fingerprint's checkpoint folder, another workflow's payload)
is refused too, and an expiry cannot be moved. The stores' own copies (``copy_prefix``, and
the runner's reuse of another fingerprint's checkpoints) read a verified value and write it
signed for its new key.

A signed object is stored as::

    [expiry header, if written with a ttl] MAGIC  HMAC-SHA256(32 bytes)  value

where the HMAC is taken, with the signing key, over a fixed domain string, the key, the expiry
header and the value (each length-prefixed).
"""

import hashlib
import hmac

from dotflow_dagster.errors import StoreError

__all__ = [
    "MIN_SIGNING_KEY_BYTES",
    "ObjectSigner",
    "UntrustedObjectError",
    "is_signed",
    "refuse_signed_without_key",
]

# Starts with NUL like the expiry header's magic (neither a pickle, JSON nor text starts so),
# and differs from it, so a signed value without an expiry is never taken for a header.
SIGNATURE_MAGIC = b"\x00dotflow-hmac1\x00"
_DIGEST_SIZE = hashlib.sha256().digest_size
_DOMAIN = b"dotflow_dagster store object, signed v1\x00"
MIN_SIGNING_KEY_BYTES = 16


def is_signed(value: bytes) -> bool:
    """Whether ``value`` (a stored object without its expiry header) carries a signature."""
    return len(value) >= len(SIGNATURE_MAGIC) + _DIGEST_SIZE and value.startswith(SIGNATURE_MAGIC)


class UntrustedObjectError(StoreError):
    """A stored object failed its signature check, so it was not returned (nor unpickled).

    Raised by a signed store for an object that is unsigned, or whose signature does not match
    (changed, copied from another key, signed with another key), and by an unsigned store for
    a signed object it cannot check.

    Attributes:
        location: the store (a directory, ``s3://bucket/prefix``).
        key: the object's key in the store.
        reason: what was wrong.
    """

    def __init__(self, *, location: str, key: str, reason: str) -> None:
        self.location = location
        self.key = key
        self.reason = reason
        super().__init__(f"{location}: refused key {key!r}: {reason}; nothing was unpickled")

    def __reduce__(self):
        return _rebuild, (type(self), {"location": self.location, "key": self.key, "reason": self.reason})


def _rebuild(cls: type, fields: dict) -> Exception:
    return cls(**fields)


class ObjectSigner:
    """Signs stored objects with one secret and checks their signatures.

    The secret never appears in ``repr()``, ``str()`` or any message.

    Args:
        signing_key: the secret, at least 16 bytes (as UTF-8 when a ``str``). Use a random one,
            e.g. ``python -c "import secrets; print(secrets.token_urlsafe(32))"``.

    Raises:
        ValueError: the key is not a ``str``/``bytes`` or is shorter than 16 bytes.

    Example:
        >>> signer = ObjectSigner("correct horse battery staple")
        >>> signed = signer.sign(key="workflows/w/ledger.json", header=b"", value=b"{}")
        >>> signer.verify(key="workflows/w/ledger.json", header=b"", stored=signed, where="/tmp/store")
        b'{}'
        >>> signer
        ObjectSigner(<secret>)
    """

    __slots__ = ("_secret",)

    def __init__(self, signing_key: str | bytes) -> None:
        if isinstance(signing_key, str):
            secret = signing_key.encode()
        elif isinstance(signing_key, bytes | bytearray):
            secret = bytes(signing_key)
        else:
            raise ValueError(f"signing_key must be a str or bytes, got a {type(signing_key).__name__}")
        if len(secret) < MIN_SIGNING_KEY_BYTES:
            # Never the key itself, nor its length: only that it is too short.
            raise ValueError(
                f"signing_key is too short: it must be at least {MIN_SIGNING_KEY_BYTES} bytes "
                "(use a random one, e.g. secrets.token_urlsafe(32))"
            )
        self._secret = secret

    def __repr__(self) -> str:
        return "ObjectSigner(<secret>)"

    def _digest(self, *, key: str, header: bytes, value: bytes | memoryview) -> bytes:
        encoded_key = key.encode()
        mac = hmac.new(self._secret, _DOMAIN, hashlib.sha256)
        mac.update(len(encoded_key).to_bytes(4, "big"))
        mac.update(encoded_key)
        mac.update(len(header).to_bytes(4, "big"))
        mac.update(header)
        mac.update(value)
        return mac.digest()

    def sign(self, *, key: str, header: bytes, value: bytes) -> bytes:
        """The stored form of ``value`` at ``key`` (to follow ``header``): magic, HMAC, value."""
        return SIGNATURE_MAGIC + self._digest(key=key, header=header, value=value) + value

    def verify(self, *, key: str, header: bytes, stored: bytes, where: str) -> bytes:
        """Check what ``sign`` made (``stored``, read after ``header``) and return the value.

        Raises:
            UntrustedObjectError: unsigned, or the signature does not match; names ``where``
                (the store) and ``key``.
        """
        if stored.startswith(SIGNATURE_MAGIC) and not is_signed(stored):
            raise UntrustedObjectError(
                location=where, key=key, reason="it is truncated: shorter than its own signature"
            )
        if not is_signed(stored):
            raise UntrustedObjectError(
                location=where,
                key=key,
                reason=(
                    "it is not signed, and this store has a signing_key, so it accepts signed objects only "
                    "(written before signing was turned on, or by a writer without the key)"
                ),
            )
        start = len(SIGNATURE_MAGIC)
        claimed = stored[start : start + _DIGEST_SIZE]
        value = memoryview(stored)[start + _DIGEST_SIZE :]
        if not hmac.compare_digest(claimed, self._digest(key=key, header=header, value=value)):
            raise UntrustedObjectError(
                location=where,
                key=key,
                reason=(
                    "its HMAC-SHA256 signature does not match: it was changed, copied here from another key, "
                    "or signed with another signing_key"
                ),
            )
        return bytes(value)


def refuse_signed_without_key(*, key: str, stored: bytes, where: str) -> bytes:
    """For a store without a signing key: return ``stored``, unless it is a signed object.

    Raises:
        UntrustedObjectError: ``stored`` is signed; this store cannot check it.
    """
    if is_signed(stored):
        raise UntrustedObjectError(
            location=where,
            key=key,
            reason="it is signed (HMAC-SHA256) and this store has no signing_key to check it: give the store "
            "the signing_key it was written with",
        )
    return stored
