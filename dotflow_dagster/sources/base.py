"""The source interface: where payloads arrive, for ``payload_change_sensor``.

A source lists what is there now and reads only what changed since the sensor last looked.
The sensor keeps, per source, a small map ``location -> version`` (a file's ``mtime_ns:size``,
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
"""

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["ArrivedPayload", "BadPayload", "PayloadSource", "Scan", "ScanItem"]


@dataclass(frozen=True)
class ArrivedPayload:
    """A payload that arrived for a workflow.

    Attributes:
        workflow_id: which workflow it is for (a file's name without ``.json``, a message field).
        payload: the decoded payload.
        location: where it came from, for messages (a path, ``s3://bucket/key``, a message id).
        version: what identifies this content at ``location`` (``mtime_ns:size``, an ETag).
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
