"""What a payload-change sensor keeps in the store: ``sensors/<name>/state.json``.

Kept apart from ``sensor.py`` so that ``verify`` checks the document without importing Dagster.
The state is bookkeeping: losing it costs one more read of every item in the source, whose
payloads the sensor then drops by fingerprint (see ``SensorState.from_bytes``).

Example:
    >>> state = SensorState(versions={"/srv/inbox/orders.json": "1:2:3"})
    >>> SensorState.from_bytes(state.to_bytes()).versions
    {'/srv/inbox/orders.json': '1:2:3'}
    >>> SensorState.from_bytes(b'{"versions": ')
    Traceback (most recent call last):
    ...
    ValueError: not JSON: unexpected end of data: line 1 column 14 (char 13)
"""

from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["FORMAT", "RequestedRun", "SensorState", "state_key"]

#: The ``format`` this version writes and reads.
FORMAT = 1


def state_key(sensor_name: str) -> str:
    """The store key of a sensor's state: ``sensors/<sensor_name>/state.json``."""
    return f"sensors/{sensor_name}/state.json"


@dataclass
class RequestedRun:
    """What the sensor last requested for one workflow_id.

    Attributes:
        fingerprint: the payload's fingerprint.
        decisions: the ledger's decision count when it was requested.
        issued: requests issued since the ledger reached that count.
    """

    fingerprint: str
    decisions: int
    issued: int


@dataclass
class SensorState:
    """Kept in the store, not in Dagster's cursor: per-location versions grow with the source.

    ``versions`` maps each location to the version last handled, so unchanged items are never
    read again; ``requested`` feeds run keys; ``pending`` lists workflows whose retention must
    be looked at again until their requests have run.
    """

    versions: dict[str, str] = field(default_factory=dict)
    requested: dict[str, RequestedRun] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)
    # Set by every change, so an idle tick over thousands of files rewrites nothing.
    dirty: bool = False
    # False for a source that cannot list what is there (a queue: ``Scan.present is None``): its
    # locations are message ids, never listed again, so remembering them would grow forever.
    remember: bool = True

    @classmethod
    def from_bytes(cls, data: bytes) -> "SensorState":
        """Parse a stored state, checking every field.

        Raises:
            ValueError: the bytes are not JSON, or a field has a type no writer produces; the
                message says which. The sensor then starts from an empty state: every item in
                its source is read again once, payloads already decided or requested are
                dropped by fingerprint, and a request repeated for a run not yet launched keeps
                its run key.
        """
        try:
            document = orjson.loads(data)
        except orjson.JSONDecodeError as error:
            raise ValueError(f"not JSON: {error}") from None
        if not isinstance(document, dict):
            raise ValueError(f"a JSON {_kind(document)}, not an object")
        written_format = document.get("format", FORMAT)
        if type(written_format) is not int or written_format != FORMAT:
            raise ValueError(f"format {written_format!r}; this version reads format {FORMAT}")
        versions = document.get("versions", {})
        if not isinstance(versions, dict) or not all(isinstance(value, str) for value in versions.values()):
            raise ValueError("versions is not an object of strings")
        requested = document.get("requested", {})
        if not isinstance(requested, dict):
            raise ValueError(f"requested is a JSON {_kind(requested)}, not an object")
        pending = document.get("pending", [])
        if not isinstance(pending, list) or not all(isinstance(value, str) for value in pending):
            raise ValueError("pending is not a list of strings")
        return cls(
            versions=dict(versions),
            requested={workflow_id: _requested(workflow_id, value) for workflow_id, value in requested.items()},
            pending=set(pending),
        )

    def to_bytes(self) -> bytes:
        """The document to store."""
        return orjson.dumps(
            {
                "format": FORMAT,
                "versions": self.versions,
                "requested": {key: vars(value) for key, value in self.requested.items()},
                "pending": sorted(self.pending),
            }
        )

    def handled(self, location: str, version: str) -> None:
        """Remember that ``location`` was handled at ``version`` (unless the source is a queue)."""
        if self.remember:
            self.versions[location] = version
            self.dirty = True


def _requested(workflow_id: str, value: Any) -> RequestedRun:
    if (
        not isinstance(value, dict)
        or set(value) != {"fingerprint", "decisions", "issued"}
        or not isinstance(value["fingerprint"], str)
        or not all(type(value[name]) is int and value[name] >= 0 for name in ("decisions", "issued"))
    ):
        raise ValueError(
            f"requested[{workflow_id!r}] is not {{\"fingerprint\": <string>, \"decisions\": <count>, "
            "\"issued\": <count>}"
        )
    return RequestedRun(fingerprint=value["fingerprint"], decisions=value["decisions"], issued=value["issued"])


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number"
    )
