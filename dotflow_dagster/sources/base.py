"""The source interface: where payloads arrive, for ``payload_change_sensor``.

A source lists what is there now and reads only what changed since the sensor last looked.
The sensor keeps, per source, a small map ``location -> version`` (a file's ``mtime:ctime:size``,
an S3 object's ETag, ...) in the store, not in Dagster's cursor, so a tick over 10,000
unchanged files opens none of them and the cursor stays small. Items are yielded one at a time;
a bad one (unreadable, not JSON, too large, a name that is no workflow_id) is a
:class:`BadPayload`, and never stops the others.

Implementing a source::

    class MySource(PayloadSource):
        key = "my-source"

        def scan(self, *, known, max_payload_bytes):
            listing = dict(list_things())       # location -> version, listed once
            return Scan(present=frozenset(listing), items=self._read(listing, known, max_payload_bytes))

        def _read(self, listing, known, max_payload_bytes):
            for location, version in listing.items():
                if known.get(location) == version:
                    continue                    # unchanged: never read
                ...
                yield ArrivedPayload(workflow_id=..., payload=..., location=location, version=version)

Decode what arrives with :func:`decode_json`, as every source here does, so one document means
one payload whichever source (or the Lambda handler) reads it.
"""

import json
import re
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = ["ArrivedPayload", "BadPayload", "PayloadSource", "Scan", "ScanItem", "decode_json"]

# orjson reads integers in [-2**63, 2**64) exactly, longer ones as floats (10**30 + 1 becomes
# 1e+30) and refuses those beyond a double's range. Every such integer is written with at least
# 19 digits: finding no run of 19 digits in the bytes proves none is there, in a fraction of
# orjson's own time (a byte translation and one substring search, both at C speed).
_LONG_RUN = 19
_DIGITS_AS_ONES = bytes(0x31 if 0x30 <= byte <= 0x39 else 0x30 for byte in range(256))
_ONES = b"1" * _LONG_RUN
# A JSON integer token that long: after a structural character, whitespace or the start, and
# before one or the end (so not a float's digits, an exponent or the inside of a \u escape).
_LONG_INTEGER = re.compile(rb"(?:^|(?<=[\s:,\[]))-?[0-9]{%d,}(?=[\s,\]}]|$)" % _LONG_RUN)


def decode_json(data: bytes) -> Any:
    """Decode one JSON document as orjson does, keeping integers beyond 64 bits exact.

    orjson accepts strict JSON only (no ``NaN``, no lone surrogates, UTF-8) and is fast, but
    reads an integer beyond 64 bits as a float, so two payloads differing in its last digits
    would get one fingerprint. When the bytes hold a run of 19 digits or more, the document is
    decoded again with the standard library, which keeps integers exact; when orjson refused
    one (beyond 1e308), it is accepted if the document is otherwise what orjson accepts. Other
    documents cost orjson's time and a scan for such a run (about a fifth more).

    Args:
        data: the document's bytes, UTF-8.

    Returns:
        The decoded value: ``dict``, ``list``, ``str``, ``int``, ``float``, ``bool`` or ``None``.

    Raises:
        orjson.JSONDecodeError: the bytes are not one JSON document (orjson's message).
        ValueError: valid JSON that Python cannot hold exactly: an integer of more decimal
            digits than ``sys.get_int_max_str_digits()`` (4300 by default), or a long integer
            nested too deeply for the standard library's decoder. The message says which.

    Example:
        >>> decode_json(b'{"id": 100000000000000000000000000001, "v": 1.5}')
        {'id': 100000000000000000000000000001, 'v': 1.5}
    """
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        if not _has_long_digit_run(data) or not _valid_but_for_long_integers(data):
            raise
        return _decode_exactly(data)
    if not _has_long_digit_run(data):
        return document
    return _decode_exactly(data)


def _has_long_digit_run(data: bytes) -> bool:
    return _ONES in data.translate(_DIGITS_AS_ONES)


def _valid_but_for_long_integers(data: bytes) -> bool:
    """Whether orjson accepts the document once every long integer in it is replaced by ``0``."""
    try:
        orjson.loads(_LONG_INTEGER.sub(b"0", data))
    except orjson.JSONDecodeError:
        return False
    return True


def _decode_exactly(data: bytes) -> Any:
    # Only documents orjson accepts (long integers aside) come here, so json.loads reads the
    # same values: both round floats correctly, and neither meets NaN or a lone surrogate.
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ValueError(
            "it holds an integer beyond 64 bits and is nested too deeply to be read with exact integers"
        ) from None
    except ValueError as error:  # int() refuses over sys.get_int_max_str_digits() digits
        raise ValueError(
            f"it holds an integer of more than {sys.get_int_max_str_digits()} digits, which Python refuses "
            f"to read ({error})"
        ) from None


@dataclass(frozen=True)
class ArrivedPayload:
    """A payload that arrived for a workflow.

    Attributes:
        workflow_id: which workflow it is for (a file's name without ``.json``, a message field).
        payload: the decoded payload.
        location: where it came from, for messages (a path, ``s3://bucket/key``, a message id).
        version: what identifies this content at ``location`` (``mtime:ctime:size``, an ETag).
    """

    workflow_id: str
    payload: Any
    location: str
    version: str


@dataclass(frozen=True)
class BadPayload:
    """Something at ``location`` that cannot be a payload; logged once per ``version``.

    Attributes:
        location: where it is.
        version: its version; the sensor reads it again only when this changes.
        reason: what is wrong, for the operator (``"invalid JSON at line 3: ..."``).
        workflow_id: the workflow it was meant for, if known.
    """

    location: str
    version: str
    reason: str
    workflow_id: str | None = None


ScanItem = ArrivedPayload | BadPayload


@dataclass(frozen=True)
class Scan:
    """One look at a source.

    Attributes:
        present: every location there now (so the sensor forgets deleted ones), or ``None``
            when the source cannot tell (a queue).
        items: the new or changed items, read lazily, one at a time.
    """

    present: frozenset[str] | None
    items: Iterator[ScanItem]


class PayloadSource(ABC):
    """Where payloads arrive. Subclasses implement :meth:`scan` (and may override the rest)."""

    @property
    @abstractmethod
    def key(self) -> str:
        """A stable name for this source's sensor state, e.g. ``"directory:/srv/inbox"``."""

    @abstractmethod
    def scan(self, *, known: Mapping[str, str], max_payload_bytes: int) -> Scan:
        """List the source once; its items are those whose version differs from ``known``.

        Must not read an item whose version is unchanged. An item that is not ready yet (a
        half-written file) is neither yielded nor bad: it is looked at again on the next scan.
        """

    def acknowledge(self, items: Sequence[ScanItem]) -> None:
        """Called after each tick with the items whose payloads are durably stored (or were
        already known): a queue deletes their messages. Bad or conflicting items are never
        passed, so a queue leaves them to its redrive (dead-letter) queue."""
        return None
