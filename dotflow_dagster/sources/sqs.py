"""``SQSSource``: payloads arrive as messages ``{"workflow_id": ..., "payload": ...}`` in an SQS queue.

Delivery is at-least-once, end to end. A scan receives messages (they become invisible for
``visibility_timeout_seconds``); the sensor stores each payload and writes its state; only
then does :meth:`SQSSource.acknowledge` delete the messages whose payloads were stored. A tick
that fails, a store that is down, a delete that fails: the messages become visible again and
are received again. Receiving one twice is harmless: the sensor dedupes by fingerprint (the
same payload is the same fingerprint, which it has already requested or the ledger already
holds; an SQS queue also delivers a message twice on rare occasions, by design).

Malformed messages are never deleted. They are logged by the sensor as bad items and become
visible again after the visibility timeout; give the queue a redrive policy (a dead-letter queue
and a ``maxReceiveCount``) and SQS moves them there after that many receives, for an operator
to look at. Without one they stay in the queue until its retention period ends, logged again
at each receive. The same holds for a well-formed message the sensor does not store (a
workflow_id it does not feed, a payload it cannot fingerprint): give each sensor a queue of
its own, for its workflows only.

At-least-once has one edge: a message stored and requested whose delete then fails (the
process dies between the sensor's state write and the delete, or the delete request fails) is
received again after the visibility timeout. If another payload for its workflow was requested
in between, it is requested once more, as the newest arrival; otherwise it is dropped by
fingerprint and deleted.
"""

import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson
from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from dotflow_dagster.sources.base import ArrivedPayload, BadPayload, PayloadSource, Scan, ScanItem, decode_json
from dotflow_dagster.workflow import validate_workflow_id

__all__ = ["SQSSource", "SQSSourceError"]

_LOGGER = logging.getLogger(__name__)
_BATCH = 10  # the most one ReceiveMessage or DeleteMessageBatch call takes
_FIELDS = ("workflow_id", "payload")
# sqs.<region>.amazonaws.com[.cn] and the legacy <region>.queue.amazonaws.com
_AWS_HOST = re.compile(r"^(?:sqs[.-](?P<a>[a-z0-9-]+)|(?P<b>[a-z0-9-]+)\.queue)\.amazonaws\.com(?:\.cn)?$")


class SQSSourceError(RuntimeError):
    """The queue could not be read (no such queue, access denied, endpoint unreachable).

    Attributes:
        queue_url: the queue.
    """

    def __init__(self, message: str, *, queue_url: str) -> None:
        super().__init__(message)
        self.queue_url = queue_url


def _describe(error: Exception) -> str:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = details.get("Code") or "error"
        message = details.get("Message") or ""
        return f"{code}: {message}" if message else str(code)
    return str(error) or type(error).__name__


def _type_name(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"


class SQSSource(PayloadSource):
    """Payloads as messages ``{"workflow_id": "<id>", "payload": <any JSON value>}`` in an SQS queue.

    Each scan receives up to ``max_batches`` batches of 10 messages (``ReceiveMessage``: the
    first long-polls for ``wait_time_seconds``, the next ones are asked for only while batches
    come back full), each hidden from other consumers for ``visibility_timeout_seconds``, which
    must outlast one tick. These three are class attributes: set them on an instance or a
    subclass to tune throughput (the defaults take up to 100 messages per tick).

    A message's location is ``sqs:<queue name>:<MessageId>`` and its version its ``MessageId``.
    ``Scan.present`` is ``None``: a queue cannot be listed. ``known`` is not used: a message
    still in the queue was not deleted, so it is yielded again, and the sensor drops it by
    fingerprint; a message received twice in one scan is yielded once.

    A message is a :class:`BadPayload`, never deleted, when its body is over
    ``max_payload_bytes``, is not JSON (bodies are decoded with :func:`decode_json`, which keeps
    integers beyond 64 bits exact; one of more than 4300 digits is refused), is not an object, lacks ``workflow_id`` or ``payload``,
    has other fields, or has an invalid workflow_id. Whether the sensor feeds that workflow is
    the sensor's to check.

    Messages are yielded in the order they were received. A standard queue does not keep the
    order messages were sent in; a FIFO queue does within a message group (send with
    ``MessageGroupId=<workflow_id>`` if the order of one workflow's payloads matters). Several
    messages for one workflow in one scan each get a run request, in that order: the last one
    becomes the input, the earlier ones stay in the ledger's history as superseded.

    Receipt handles are kept in memory from :meth:`scan` to :meth:`acknowledge`, as the sensor
    does within one tick; use one source per sensor.

    Args:
        queue_url: the queue's URL (``https://sqs.<region>.amazonaws.com/<account>/<name>``).
        endpoint_url: the SQS endpoint, for a local or compatible server; AWS's by default.
        region_name: the region; by default the one in an AWS queue URL, else boto3's default.
        client: a boto3 SQS client to use instead (then give neither ``endpoint_url`` nor
            ``region_name``). Without one, a client is made at the first scan.

    Raises:
        ValueError: ``queue_url`` names no queue, or ``client`` comes with ``endpoint_url`` or
            ``region_name``.
        TypeError: ``client`` is not an SQS client.

    Example:
        >>> from dotflow_dagster.sources import SQSSource
        >>> source = SQSSource("https://sqs.eu-west-1.amazonaws.com/123456789012/payloads")  # no client yet
        >>> source.key, source.queue_name
        ('sqs:https://sqs.eu-west-1.amazonaws.com/123456789012/payloads', 'payloads')
        >>> source.region_name
        'eu-west-1'
    """

    max_batches: int = 10
    wait_time_seconds: int = 1
    visibility_timeout_seconds: int = 120

    def __init__(
        self,
        queue_url: str,
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        client: BaseClient | None = None,
    ) -> None:
        parts = urlsplit(queue_url) if isinstance(queue_url, str) else None
        name = parts.path.rstrip("/").rpartition("/")[2] if parts is not None else ""
        if parts is None or not parts.scheme or not parts.netloc or not name:
            raise ValueError(f"SQSSource needs a queue URL like https://sqs.<region>.amazonaws.com/<account>/<name>, "
                             f"not {queue_url!r}")
        if client is not None:
            if endpoint_url is not None or region_name is not None:
                raise ValueError("SQSSource: give either client, or endpoint_url and region_name, not both")
            service = getattr(getattr(getattr(client, "meta", None), "service_model", None), "service_name", None)
            if service != "sqs":
                raise TypeError(f"SQSSource needs a boto3 SQS client, not {client!r}")
        if region_name is None:
            match = _AWS_HOST.match(parts.hostname or "")
            if match:
                region_name = match.group("a") or match.group("b")
        self._queue_url = queue_url
        self._queue_name = name
        self._endpoint_url = endpoint_url
        self._region_name = region_name
        self._client = client
        self._receipts: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"SQSSource({self._queue_url!r})"

    @property
    def queue_url(self) -> str:
        """The queue's URL."""
        return self._queue_url

    @property
    def queue_name(self) -> str:
        """The queue's name: the URL's last part."""
        return self._queue_name

    @property
    def region_name(self) -> str | None:
        """The region the client is made for (given, or read from an AWS queue URL)."""
        return self._region_name

    @property
    def key(self) -> str:
        """``"sqs:<queue URL>"``."""
        return f"sqs:{self._queue_url}"

    @property
    def client(self) -> BaseClient:
        """The boto3 SQS client (the one given, or one made once)."""
        if self._client is None:
            import boto3

            self._client = boto3.client("sqs", endpoint_url=self._endpoint_url, region_name=self._region_name)
        return self._client

    def _location(self, message_id: str) -> str:
        return f"sqs:{self._queue_name}:{message_id}"

    def scan(self, *, known: Mapping[str, str], max_payload_bytes: int) -> Scan:
        """Receive a few batches of messages now; parse them lazily, in the order received.

        Args:
            known: not used (see the class docstring).
            max_payload_bytes: messages whose body is larger than this are bad.

        Raises:
            SQSSourceError: the queue cannot be read (no such queue, access denied, the endpoint
                is unreachable), naming the queue.
            ValueError: ``max_payload_bytes`` is not an int >= 0.
        """
        if isinstance(max_payload_bytes, bool) or not isinstance(max_payload_bytes, int) or max_payload_bytes < 0:
            raise ValueError(f"max_payload_bytes must be an int >= 0, not {max_payload_bytes!r}")
        receipts: dict[str, str] = {}
        messages: list[dict[str, Any]] = []
        for batch in range(max(1, self.max_batches)):
            try:
                response = self.client.receive_message(
                    QueueUrl=self._queue_url,
                    MaxNumberOfMessages=_BATCH,
                    WaitTimeSeconds=self.wait_time_seconds if batch == 0 else 0,
                    VisibilityTimeout=self.visibility_timeout_seconds,
                    AttributeNames=["ApproximateReceiveCount"],
                )
            except (BotoCoreError, ClientError) as error:
                if not messages:
                    raise SQSSourceError(
                        f"cannot receive from SQS queue {self._queue_url}: {_describe(error)}", queue_url=self._queue_url
                    ) from error
                # Those received stay handled; the rest wait for the next tick.
                _LOGGER.warning("SQS queue %s: receiving stopped after %d message(s): %s",
                                self._queue_url, len(messages), _describe(error))
                break
            received = response.get("Messages", [])
            for message in received:
                location = self._location(message["MessageId"])
                if location not in receipts:  # received again within this scan: one item
                    messages.append(message)
                receipts[location] = message["ReceiptHandle"]  # the latest handle is the valid one
            if len(received) < _BATCH:
                break
        self._receipts = receipts
        return Scan(present=None, items=self._items(messages, max_payload_bytes))

    def _items(self, messages: list[dict[str, Any]], max_payload_bytes: int) -> Iterator[ScanItem]:
        for message in messages:
            yield self._parse(message, max_payload_bytes)

    def _parse(self, message: dict[str, Any], max_payload_bytes: int) -> ScanItem:
        message_id = message["MessageId"]
        location = self._location(message_id)
        count = message.get("Attributes", {}).get("ApproximateReceiveCount")
        kept = f" (left in the queue{f', received {count} time(s)' if count else ''}: "
        kept += "its redrive policy, if any, moves it to the dead-letter queue)"

        def bad(reason: str, workflow_id: str | None = None) -> BadPayload:
            return BadPayload(location=location, version=message_id, reason=reason + kept, workflow_id=workflow_id)

        body = message.get("Body", "")
        data = body.encode("utf-8", "surrogatepass")
        if len(data) > max_payload_bytes:
            return bad(f"message {location} is {len(data)} bytes, over max_payload_bytes={max_payload_bytes}")
        try:
            document = decode_json(data)
        except orjson.JSONDecodeError as error:
            return bad(f"invalid JSON in message {location}: {error}")
        except ValueError as error:  # valid JSON, but an integer Python cannot hold
            return bad(f"cannot read message {location}: {error}")
        if not isinstance(document, dict):
            return bad(f"message {location} is {_type_name(document)}, not an object "
                       '{"workflow_id": ..., "payload": ...}')
        missing = [field for field in _FIELDS if field not in document]
        others = sorted(field for field in document if field not in _FIELDS)
        workflow_id = document.get("workflow_id")
        try:
            validate_workflow_id(workflow_id)
        except ValueError as error:
            if "workflow_id" in missing:
                return bad(f"message {location} has no 'workflow_id' field")
            return bad(f"message {location}: {error}")
        if missing:
            return bad(f"message {location} has no 'payload' field", workflow_id)
        if others:
            return bad(f"message {location} has unknown field(s) {', '.join(map(repr, others))} (only "
                       "'workflow_id' and 'payload')", workflow_id)
        return ArrivedPayload(workflow_id=workflow_id, payload=document["payload"], location=location, version=message_id)

    def acknowledge(self, items: Sequence[ScanItem]) -> None:
        """Delete the messages of ``items`` whose payloads the sensor stored, in batches of 10.

        Only :class:`ArrivedPayload` items from the last scan are deleted; :class:`BadPayload`
        items and locations this source did not receive in its last scan are ignored. Never
        raises: a message that cannot be deleted is logged (``logging``, this module's logger)
        and is received again after its visibility timeout, where the sensor drops it by
        fingerprint.
        """
        entries = []
        for item in items:
            if not isinstance(item, ArrivedPayload):
                continue
            handle = self._receipts.pop(item.location, None)
            if handle is not None:
                entries.append((item.location, handle))
        for start in range(0, len(entries), _BATCH):
            chunk = entries[start : start + _BATCH]
            try:
                response = self.client.delete_message_batch(
                    QueueUrl=self._queue_url,
                    Entries=[{"Id": str(index), "ReceiptHandle": handle} for index, (_, handle) in enumerate(chunk)],
                )
            except (BotoCoreError, ClientError) as error:
                _LOGGER.warning("SQS queue %s: cannot delete %d handled message(s), they will be received again: %s",
                                self._queue_url, len(chunk), _describe(error))
                continue
            for failure in response.get("Failed", []):
                index = int(failure.get("Id", -1))
                location = chunk[index][0] if 0 <= index < len(chunk) else "?"
                _LOGGER.warning("SQS queue %s: cannot delete handled message %s, it will be received again: %s: %s",
                                self._queue_url, location, failure.get("Code"), failure.get("Message"))
