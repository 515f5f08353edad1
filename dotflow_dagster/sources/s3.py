"""``S3Source``: payloads arrive as ``<prefix><workflow_id>.json`` objects in an S3 bucket.

An S3 ``PUT`` is atomic (an object is never seen half-written), so writers need no temporary
names. Each scan lists the prefix once (``list_objects_v2``, paginated) and downloads only the
objects whose ETag is not the one the sensor already handled: a tick over 10,000 unchanged
objects is a few ``LIST`` requests and no ``GET``.
"""

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from dotflow_dagster.sources.base import ArrivedPayload, BadPayload, PayloadSource, Scan, ScanItem, decode_json
from dotflow_dagster.workflow import validate_workflow_id

if TYPE_CHECKING:
    from dagster_aws.s3 import S3Resource

__all__ = ["S3Source", "S3SourceError"]

_SUFFIX = ".json"
_CHUNK = 1 << 20
# GetObject errors meaning "not what was listed any more": looked at again on the next scan.
_GONE = {"NoSuchKey", "404", "PreconditionFailed", "412", "InvalidRange", "416"}
# GetObject errors that are this object's own (the listing worked): a bad item, once per ETag.
_REFUSED = {"AccessDenied", "403", "InvalidObjectState", "ObjectNotInActiveTierError"}


class S3SourceError(RuntimeError):
    """S3 could not be listed or read (no such bucket, access denied, endpoint unreachable).

    Attributes:
        bucket: the bucket.
        prefix: the source's prefix.
    """

    def __init__(self, message: str, *, bucket: str, prefix: str) -> None:
        super().__init__(message)
        self.bucket = bucket
        self.prefix = prefix


def _describe(error: Exception) -> str:
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = details.get("Code") or "error"
        message = details.get("Message") or ""
        return f"{code}: {message}" if message else str(code)
    return str(error) or type(error).__name__


def _error_code(error: ClientError) -> str:
    code = error.response.get("Error", {}).get("Code")
    if code:
        return str(code)
    return str(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))


def _read_at_most(body: Any, limit: int) -> bytes:
    """Up to ``limit`` bytes of a streaming body (a read may return fewer than asked)."""
    chunks = []
    remaining = limit
    while remaining > 0:
        chunk = body.read(min(remaining, _CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class S3Source(PayloadSource):
    """Payloads as ``<prefix><workflow_id>.json`` objects in ``bucket`` (not in sub-"folders").

    Each object holds one JSON document, decoded with :func:`decode_json` (orjson, with
    integers beyond 64 bits kept exact): any JSON value is a payload. The key without ``prefix`` and ``.json`` is the workflow_id; a ``.json`` object whose name is
    not a valid workflow_id is a :class:`BadPayload`. Keys under a further ``/`` (listed with
    ``Delimiter="/"``, so never even returned), names starting with ``.`` and names not ending
    in ``.json`` are ignored. ``prefix`` is used as given: ``"inbox/"`` watches the "folder"
    ``inbox``, ``""`` the top of the bucket.

    An object's version is its ETag (without quotes): ``LastModified`` has a one-second
    resolution, an ETag changes with every new content. Only objects whose ETag differs from
    ``known`` are downloaded; re-uploading the same bytes gives the same ETag and is not read
    again (a multipart upload of the same bytes may get another ETag: it is read, and the
    sensor drops it by fingerprint). Locations are ``s3://<bucket>/<key>``; ``Scan.present``
    holds every candidate listed, bad ones included.

    Changed objects are read lazily, in key order:

    * one whose listed ``Size`` is over ``max_payload_bytes`` is bad without being downloaded;
      the download asks for at most ``max_payload_bytes + 1`` bytes (``Range``) and for the
      listed ETag (``IfMatch``), so an object replaced since the listing is never read whole:
      it is skipped and looked at again, with its new ETag, on the next scan;
    * one that does not parse is bad, with orjson's message, and so is one holding an integer
      of more than 4300 digits (Python's limit);
    * one deleted since the listing is skipped; one that cannot be read (``AccessDenied``) is
      bad, with S3's reason.

    Listing errors (no such bucket, access denied, endpoint unreachable) raise
    :class:`S3SourceError` naming the bucket: a missing inbox is a configuration error, never an
    empty inbox. So do unexpected download errors (a server error, a dropped connection): the
    tick fails and the next one retries, instead of marking the object bad for good.

    Args:
        bucket: the bucket payloads arrive in.
        prefix: the key prefix, usually ending in ``/``.
        s3: a dagster-aws ``S3Resource`` (its ``get_client()`` is called once, at the first
            scan, so it works outside a run too: pass the resource to the source directly,
            not through the sensor's resources), or a boto3 S3 client
            (``boto3.client("s3", ...)``).

    Raises:
        TypeError: ``s3`` is neither an ``S3Resource``-like object nor an S3 client.
        ValueError: ``bucket`` is empty.

    Example:
        >>> import boto3
        >>> from dotflow_dagster.sources import S3Source
        >>> s3 = boto3.client("s3", region_name="us-east-1")  # nothing is sent until a scan
        >>> source = S3Source("acme-payloads", "inbox/", s3=s3)
        >>> source.key
        's3:acme-payloads/inbox/'
        >>> source
        S3Source('acme-payloads', 'inbox/')
    """

    def __init__(self, bucket: str, prefix: str, *, s3: "S3Resource | BaseClient") -> None:
        if not isinstance(bucket, str) or not bucket:
            raise ValueError(f"S3Source needs a bucket name, not {bucket!r}")
        if not isinstance(prefix, str):
            raise ValueError(f"S3Source's prefix must be a str, not {prefix!r}")
        if isinstance(s3, BaseClient):
            service = s3.meta.service_model.service_name
            if service != "s3":
                raise TypeError(f"S3Source needs an S3 client, not a {service!r} client")
        elif not callable(getattr(s3, "get_client", None)):
            raise TypeError(f"S3Source's s3 must be a dagster-aws S3Resource or a boto3 S3 client, not {s3!r}")
        self._bucket = bucket
        self._prefix = prefix
        self._s3 = s3
        self._client: BaseClient | None = s3 if isinstance(s3, BaseClient) else None

    def __repr__(self) -> str:
        return f"S3Source({self._bucket!r}, {self._prefix!r})"

    @property
    def bucket(self) -> str:
        """The bucket."""
        return self._bucket

    @property
    def prefix(self) -> str:
        """The key prefix."""
        return self._prefix

    @property
    def key(self) -> str:
        """``"s3:<bucket>/<prefix>"``."""
        return f"s3:{self._bucket}/{self._prefix}"

    @property
    def client(self) -> BaseClient:
        """The boto3 S3 client (the resource's ``get_client()``, made once)."""
        if self._client is None:
            self._client = self._s3.get_client()  # type: ignore[union-attr]
        return self._client

    def _location(self, key: str) -> str:
        return f"s3://{self._bucket}/{key}"

    def _error(self, action: str, error: Exception) -> S3SourceError:
        return S3SourceError(f"cannot {action}: {_describe(error)}", bucket=self._bucket, prefix=self._prefix)

    def scan(self, *, known: Mapping[str, str], max_payload_bytes: int) -> Scan:
        """List the prefix now; download the changed objects lazily, in key order.

        Args:
            known: ``location -> ETag`` from the previous scans.
            max_payload_bytes: objects larger than this are bad without being downloaded.

        Raises:
            S3SourceError: the bucket cannot be listed (no such bucket, access denied, the
                endpoint is unreachable), naming the bucket.
            ValueError: ``max_payload_bytes`` is not an int >= 0.
        """
        if isinstance(max_payload_bytes, bool) or not isinstance(max_payload_bytes, int) or max_payload_bytes < 0:
            raise ValueError(f"max_payload_bytes must be an int >= 0, not {max_payload_bytes!r}")
        present: list[str] = []
        # (key, location, version, the ETag as listed (for IfMatch), size)
        changed: list[tuple[str, str, str, str, int]] = []
        known_version = known.get
        prefix_length = len(self._prefix)
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=self._prefix, Delimiter="/"
            )
            for page in pages:
                for entry in page.get("Contents", ()):
                    key = entry["Key"]
                    name = key[prefix_length:]
                    if not name or name[0] == "." or "/" in name or not name.endswith(_SUFFIX):
                        continue
                    etag = entry.get("ETag", "")
                    version = etag.strip('"')
                    location = self._location(key)
                    present.append(location)
                    if known_version(location) != version:
                        changed.append((key, location, version, etag, int(entry.get("Size", 0))))
        except (BotoCoreError, ClientError) as error:
            raise self._error(f"list {self._location(self._prefix)}", error) from error
        changed.sort()
        return Scan(present=frozenset(present), items=self._items(changed, max_payload_bytes))

    def _items(self, changed: list[tuple[str, str, str, str, int]], max_payload_bytes: int) -> Iterator[ScanItem]:
        prefix_length = len(self._prefix)
        for key, location, version, etag, size in changed:
            workflow_id = key[prefix_length : -len(_SUFFIX)]
            try:
                validate_workflow_id(workflow_id)
            except ValueError as error:
                yield BadPayload(location=location, version=version, reason=f"{location}: {error}")
                continue
            if size > max_payload_bytes:
                reason = f"{location} is {size} bytes, over max_payload_bytes={max_payload_bytes}"
                yield BadPayload(location=location, version=version, reason=reason, workflow_id=workflow_id)
                continue
            item = self._read(key, location, version, etag, size, workflow_id, max_payload_bytes)
            if item is not None:
                yield item

    def _read(
        self, key: str, location: str, version: str, etag: str, size: int, workflow_id: str, max_payload_bytes: int
    ) -> ScanItem | None:
        data = b""
        if size > 0:  # a Range on an empty object is refused (416): it parses as nothing anyway
            request: dict[str, Any] = {"Bucket": self._bucket, "Key": key, "Range": f"bytes=0-{max_payload_bytes}"}
            if etag:
                request["IfMatch"] = etag
            try:
                response = self.client.get_object(**request)
                body = response["Body"]
                try:
                    data = _read_at_most(body, max_payload_bytes + 1)
                finally:
                    body.close()
            except ClientError as error:
                code = _error_code(error)
                if code in _GONE:  # deleted or replaced since the listing: its new ETag is read next scan
                    return None
                if code in _REFUSED:
                    reason = f"cannot read {location}: {_describe(error)}"
                    return BadPayload(location=location, version=version, reason=reason, workflow_id=workflow_id)
                raise self._error(f"read {location}", error) from error
            except BotoCoreError as error:
                raise self._error(f"read {location}", error) from error
        if len(data) > max_payload_bytes:  # only if the store ignored Range or IfMatch
            reason = f"{location} is at least {len(data)} bytes, over max_payload_bytes={max_payload_bytes}"
            return BadPayload(location=location, version=version, reason=reason, workflow_id=workflow_id)
        try:
            payload = decode_json(data)
        except orjson.JSONDecodeError as error:
            reason = f"invalid JSON in {location}: {error}"
            return BadPayload(location=location, version=version, reason=reason, workflow_id=workflow_id)
        except ValueError as error:  # valid JSON, but an integer Python cannot hold
            reason = f"cannot read {location}: {error}"
            return BadPayload(location=location, version=version, reason=reason, workflow_id=workflow_id)
        return ArrivedPayload(workflow_id=workflow_id, payload=payload, location=location, version=version)
