"""``S3Store``: checkpoints, ledgers and payloads in an S3 bucket (or any S3-compatible endpoint).

Every primitive is one S3 request (or two): reads are ``GetObject`` and a key's version is its
``ETag``; a compare-and-swap write is a conditional ``PutObject`` (``If-None-Match: *`` to create,
``If-Match: <etag>`` to replace), so two writers never both win. The run lock is a *lease*: an
object written with the same conditional writes and renewed by a heartbeat, which a crashed
holder leaves behind for at most ``lease_seconds``. Nothing depends on local files or locks, so
one bucket serves any number of machines, containers or Lambda invocations.
"""

import concurrent.futures
import json
import logging
import math
import os
import re
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from dotflow_dagster.errors import RunInProgressError, StoreError
from dotflow_dagster.stores.base import (
    _INTERNAL,
    _SEGMENT,
    DotflowStore,
    _check_ttl,
    validate_key,
    wait_for_lock,
)

# The TTL header and the signature are the same on disk and on S3: a store's objects are the
# bytes LocalStore writes.
from dotflow_dagster.stores.local import (
    _TTL_HEADER_SIZE,
    _has_header,
    _open,
    _reseal,
    _seal,
    _without_header,
)

__all__ = ["Lease", "LeaseLostError", "S3Store"]

logger = logging.getLogger("dotflow_dagster")

# The lease object of a workflow: beside its keys, hidden from listings (and so from clear and
# prune) like LocalStore's ``#run.lock``, and unreachable by any valid key (keys never hold "#").
_LEASE_NAME = f"{_INTERNAL}run.lease"
_LEASE_FORMAT = 1
# S3 reports times to the second (Last-Modified, Date): a lease counts as expired only when the
# server's clock says it is older than its lease_seconds plus this, so never too early.
_SERVER_CLOCK_RESOLUTION = 1.0
# A holder stops trusting its lease this far (as a share of lease_seconds) before others may take
# it over, so a write it started in time cannot land after a takeover.
_HOLDER_SAFETY_SHARE = 0.25
# Liveness of listed keys (their TTL header) is read with this many concurrent requests.
_LIST_WORKERS = 8
# Remember this many versions known to hold a value without a TTL (they never expire).
_BARE_VERSIONS = 4096
# DeleteObjects takes at most this many keys per request.
_DELETE_BATCH = 1000

_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")
_LOST_RACE = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})
_ABSENT = frozenset({"NoSuchKey", "404", "NotFound"})


def _rebuild(cls: type, fields: dict) -> Exception:
    return cls(**fields)


class LeaseLostError(StoreError):
    """This process no longer holds the run lease of a workflow, so it must write nothing more.

    Raised before a write under ``workflows/<workflow_id>/`` (a checkpoint, the ledger) once the
    lease was taken over, deleted, or could not be renewed before it expired, and by
    ``Lease.check()``. Nothing was written; another run may be running the workflow now. Running
    the payload again resumes at the step whose checkpoint was refused.

    Attributes:
        workflow_id: the workflow.
        location: the store (``s3://bucket/prefix``).
        reason: how the lease was lost.
        key: the key whose write was refused, if any.
    """

    def __init__(self, *, workflow_id: str, location: str, reason: str, key: str | None = None) -> None:
        self.workflow_id = workflow_id
        self.location = location
        self.reason = reason
        self.key = key
        refused = f"refused to write {key!r}" if key else "must write nothing more"
        super().__init__(
            f"the run lease of workflow {workflow_id!r} in {location} was lost ({reason}); this run {refused} "
            "and stops: another run may hold the workflow now. Running the payload again resumes at its last "
            "checkpoint"
        )

    def __reduce__(self):
        return _rebuild, (
            type(self),
            {"workflow_id": self.workflow_id, "location": self.location, "reason": self.reason, "key": self.key},
        )


def _error_code(error: ClientError) -> str:
    code = error.response.get("Error", {}).get("Code")
    if code:
        return str(code)
    return str(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "unknown"))


def _lost_race(error: ClientError) -> bool:
    """A conditional request whose condition failed (412), or that raced another one (409)."""
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return _error_code(error) in _LOST_RACE or status == 412


def _absent(error: ClientError) -> bool:
    return _error_code(error) in _ABSENT


def _retried(error: ClientError) -> bool:
    return bool(error.response.get("ResponseMetadata", {}).get("RetryAttempts"))


def _client_of(s3: Any) -> Any:
    """The boto3 S3 client of a dagster-aws ``S3Resource`` (anything with ``get_client()``), or ``s3`` itself."""
    get_client = getattr(s3, "get_client", None)
    if callable(get_client):
        return get_client()
    if all(callable(getattr(s3, name, None)) for name in ("get_object", "put_object", "get_paginator")):
        return s3
    raise TypeError(
        f"s3 must be a dagster-aws S3Resource (or anything with get_client()) or a boto3 S3 client, got {s3!r}"
    )


def _check_prefix(prefix: str) -> str:
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a string, got {prefix!r}")
    if prefix and (not prefix.endswith("/") or _INTERNAL in prefix):
        raise ValueError(f"prefix {prefix!r} must be empty or end with '/' (a folder, e.g. 'dotflow/')")
    if prefix:
        try:
            validate_key(prefix[:-1])
        except ValueError as error:
            raise ValueError(f"prefix {prefix!r} is invalid: {error}") from None
    return prefix


def _check_listing_prefix(prefix: str) -> None:
    """A listing prefix: ``""``, a key, a ``/``-terminated folder, or a folder and a partial segment."""
    folder, _, rest = prefix.rpartition("/")
    if folder:
        validate_key(folder)
    if rest and not _SEGMENT.fullmatch(rest):
        raise ValueError(f"listing prefix {prefix!r} is invalid: {rest!r} must match [A-Za-z0-9._-]+")


def _is_store_key(key: str) -> bool:
    """Whether an object name (below the store's prefix) is a key of the store, not internal or foreign."""
    if _INTERNAL in key:
        return False
    try:
        validate_key(key)
    except ValueError:
        return False
    return True


def _workflow_of(key: str) -> str | None:
    """The workflow id of a key under ``workflows/<workflow_id>/``, else ``None``."""
    if not key.startswith("workflows/"):
        return None
    parts = key.split("/", 2)
    return parts[1] if len(parts) > 1 else None


class Lease:
    """The run lease of one workflow, held by this process: what ``S3Store.run_lock`` yields.

    A heartbeat thread renews it every ``lease_seconds / 3``. It is lost when another writer
    changed or deleted its object (a takeover), or when it could not be renewed before it
    expired; from then on the store refuses this process's writes under
    ``workflows/<workflow_id>/`` with ``LeaseLostError``, and so does ``check()``.

    Attributes:
        workflow_id: the workflow.
        owner: who holds it (``pid <pid> on <host>``), as others see it.
        token: a unique id of this holding.
        lease_seconds: how long it lasts unless renewed.
    """

    def __init__(
        self, *, store: "S3Store", workflow_id: str, s3_key: str, owner: str, token: str, lease_seconds: float
    ) -> None:
        self.workflow_id = workflow_id
        self.owner = owner
        self.token = token
        self.lease_seconds = lease_seconds
        self._store = store
        self._s3_key = s3_key
        self._etag = ""
        self._valid_until = 0.0
        self._renewals = 0
        self._lost: str | None = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def __repr__(self) -> str:
        state = f"lost: {self._lost}" if self._lost else "held"
        return f"<Lease of workflow {self.workflow_id!r} in {self._store.location} by {self.owner} ({state})>"

    @property
    def lost(self) -> str | None:
        """``None`` while held; once lost, why (as this process last saw it, without a request)."""
        return self._lost

    def check(self) -> None:
        """Raise ``LeaseLostError`` unless this process still holds the lease.

        Asks S3 (one ``HeadObject``), so a takeover is seen at once; the store calls it before
        every write under the workflow's keys. Call it before a side effect of your own that
        must not happen twice.
        """
        self._verify(key=None)

    # -- internals ----------------------------------------------------------------------------------

    def _document(self) -> bytes:
        now = time.time()
        return json.dumps(
            {
                "format": _LEASE_FORMAT,
                "workflow_id": self.workflow_id,
                "owner": self.owner,
                "token": self.token,
                "lease_seconds": self.lease_seconds,
                "expires_at": now + self.lease_seconds,
                "renewals": self._renewals,
            },
            sort_keys=True,
        ).encode()

    def _confirmed(self, etag: str, started: float) -> None:
        """A write of the lease object started at ``started`` (monotonic) succeeded with ``etag``."""
        self._etag = etag
        # Others take it over only once S3 says it is lease_seconds old, and S3 stamped it after
        # the request started: trusting it until started + lease_seconds (less a margin) is safe.
        self._valid_until = started + self.lease_seconds * (1 - _HOLDER_SAFETY_SHARE)

    def _lose(self, reason: str) -> None:
        if self._lost is None:
            self._lost = reason
            logger.error(
                "workflow %s: run lease in %s lost (%s); refusing further writes",
                self.workflow_id,
                self._store.location,
                reason,
            )
        self._stop.set()

    def _raise_if_lost(self, key: str | None) -> None:
        if self._lost is not None:
            raise LeaseLostError(
                workflow_id=self.workflow_id, location=self._store.location, reason=self._lost, key=key
            )

    def _renew(self) -> None:
        """Rewrite the lease object if it is still ours (``If-Match``); lose it if it is not."""
        self._renewals += 1
        started = time.monotonic()
        etag = self._store._put_lease(self._s3_key, self._document(), IfMatch=self._etag)
        if etag is None:
            self._lose("its object was changed or deleted by another writer: taken over")
        else:
            self._confirmed(etag, started)

    def _verify(self, key: str | None) -> None:
        with self._lock:
            self._raise_if_lost(key)
            if time.monotonic() >= self._valid_until:
                # Not renewed in time (a starved heartbeat): renewing now is safe, because a
                # takeover would have changed the object and this conditional write then fails.
                try:
                    self._renew()
                except StoreError as error:
                    self._lose(f"it expired and could not be renewed: {error}")
            else:
                etag = self._store._lease_etag(self._s3_key)
                if etag != self._etag:
                    self._lose(
                        "its object was deleted" if etag is None else "its object was overwritten by another writer"
                    )
            self._raise_if_lost(key)

    def _beat(self) -> None:
        interval = self.lease_seconds / 3
        while not self._stop.wait(interval):
            with self._lock:
                if self._lost is not None:
                    return
                try:
                    self._renew()
                except Exception as error:  # a StoreError, or a transport error botocore let through
                    if time.monotonic() >= self._valid_until:
                        self._lose(f"it could not be renewed before it expired: {error}")
                        return
                    logger.warning(
                        "workflow %s: could not renew the run lease in %s, retrying: %s",
                        self.workflow_id,
                        self._store.location,
                        error,
                    )

    def _start_heartbeat(self) -> None:
        self._heartbeat = threading.Thread(
            target=self._beat, name=f"dotflow-lease-{self.workflow_id}", daemon=True
        )
        self._heartbeat.start()

    def _release(self) -> None:
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=self.lease_seconds)
        with self._lock:
            if self._lost is None:
                self._store._delete_lease(self._s3_key, self._etag)
                self._lost = "released when its block ended"


class S3Store(DotflowStore):
    """A store in an S3 bucket (AWS, or an S3-compatible endpoint such as MinIO or moto).

    Keys live at ``<prefix><key>`` in ``bucket``. A key's version is its ``ETag``; a
    compare-and-swap write is a conditional ``PutObject`` (``If-None-Match: *`` for a key
    expected absent, ``If-Match`` otherwise), so the ledger never loses an update however many
    writers race. Values written with a ``ttl`` carry the same small expiry header as
    LocalStore's files (and read as absent once expired); a listing reads each listed object's
    first bytes to leave expired keys out, a few requests at a time.

    The run lock is a lease: the object ``<prefix>workflows/<workflow_id>/#run.lease`` (hidden
    from listings, so from ``clear`` and pruning), created with ``If-None-Match: *`` and holding
    its owner (pid, host, a token), ``lease_seconds`` and ``expires_at``. A heartbeat thread
    renews it (``If-Match`` on its ETag) every ``lease_seconds / 3``; the holder deletes it when
    its block ends. A lease S3 says has not been written for ``lease_seconds`` (by S3's own
    clock, so the machines' clocks need not agree) is taken over with ``If-Match``: a crashed
    holder blocks its workflow for at most ``lease_seconds`` (plus a second). A holder whose
    lease was taken over, deleted, or not renewed in time is told so: every write of this store
    under ``workflows/<workflow_id>/`` first checks the lease (one ``HeadObject``) and raises
    ``LeaseLostError`` once it is lost, so the run stops before its next checkpoint.

    S3 failures (no such bucket, access denied, an unreachable endpoint) raise ``StoreError``
    naming the bucket, the object and the S3 error code. A key that is simply not there reads
    as absent.

    With a ``signing_key`` every object is signed with HMAC-SHA256 over its key, expiry and
    value, and a read refuses an object that is unsigned, changed or copied from another key
    (``UntrustedObjectError``, naming the bucket and prefix and the key) before anything is
    unpickled; ``copy_prefix`` then downloads, checks and re-signs each object instead of
    copying it server-side. The lease objects are JSON, never unpickled, and not signed.

    Args:
        bucket: the bucket; it must exist.
        prefix: ``""`` (the whole bucket) or a folder ending with ``/``, e.g. ``"dotflow/"``.
        s3: a dagster-aws ``S3Resource`` (its ``get_client()`` is called once), or, without
            Dagster (a Lambda handler, a Celery worker), a boto3 S3 client. The endpoint URL,
            region, credentials and retries are theirs.
        lease_seconds: how long a run lease lasts unless renewed (at least 1): how long a
            crashed run blocks its workflow. Renewed every third of it.
        signing_key: sign and check every object with this secret (at least 16 bytes); see
            ``stores/signing.py``. ``None``: unsigned.

    Example:
        >>> import boto3
        >>> client = boto3.client("s3", region_name="us-east-1")
        >>> store = S3Store("my-bucket", "dotflow/", s3=client)
        >>> store.location
        's3://my-bucket/dotflow/'

        In Dagster, pass the ``S3Resource`` (``endpoint_url``, credentials and all):

        >>> from dagster_aws.s3 import S3Resource
        >>> S3Store("my-bucket", s3=S3Resource(region_name="eu-west-1"), lease_seconds=120)
        S3Store('my-bucket', '')
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        s3: Any,
        lease_seconds: float = 60.0,
        signing_key: str | bytes | None = None,
    ) -> None:
        super().__init__(signing_key=signing_key)
        if not isinstance(bucket, str) or not _BUCKET.fullmatch(bucket):
            raise ValueError(f"bucket must be an S3 bucket name (no 's3://', no '/'), got {bucket!r}")
        if (
            isinstance(lease_seconds, bool)
            or not isinstance(lease_seconds, int | float)
            or not 1 <= lease_seconds < math.inf
        ):
            raise ValueError(f"lease_seconds must be a finite number of seconds >= 1, got {lease_seconds!r}")
        self.bucket = bucket
        self.prefix = _check_prefix(prefix)
        self.lease_seconds = float(lease_seconds)
        self.client = _client_of(s3)
        self._leases: dict[str, Lease] = {}
        self._leases_lock = threading.Lock()
        self._bare_versions: OrderedDict[str, None] = OrderedDict()
        self._bare_lock = threading.Lock()

    def __repr__(self) -> str:
        signed = ", signing_key=<secret>" if self.signed else ""
        return f"S3Store({self.bucket!r}, {self.prefix!r}{signed})"

    @property
    def location(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _s3_key(self, key: str) -> str:
        return self.prefix + validate_key(key)

    # -- S3 errors --------------------------------------------------------------------------------

    def _failure(self, action: str, subject: str, s3_key: str, error: Exception) -> StoreError:
        if isinstance(error, ClientError):
            message = error.response.get("Error", {}).get("Message")
            detail = f"{_error_code(error)}: {message}" if message else _error_code(error)
        else:
            detail = f"{type(error).__name__}: {error}"
        return StoreError(
            f"S3Store {self.location}: cannot {action} {subject} (bucket {self.bucket!r}, object {s3_key!r}): {detail}"
        )

    @contextmanager
    def _s3_errors(self, action: str, subject: str, s3_key: str) -> Iterator[None]:
        """Turn a boto3 failure raised by the block into a ``StoreError`` saying what failed where."""
        try:
            yield
        except (ClientError, BotoCoreError) as error:
            raise self._failure(action, subject, s3_key, error) from error

    # -- requests ---------------------------------------------------------------------------------

    def _get(self, action: str, subject: str, s3_key: str) -> tuple[bytes, dict] | None:
        """The object's bytes and the ``GetObject`` response, or ``None`` when there is no object."""
        with self._s3_errors(action, subject, s3_key):
            try:
                response = self.client.get_object(Bucket=self.bucket, Key=s3_key)
            except ClientError as error:
                if _absent(error):
                    return None
                raise
            return response["Body"].read(), response

    def _read_head(
        self, action: str, subject: str, s3_key: str, *, if_match: str | None = None
    ) -> tuple[bool, str | None] | None:
        """Read only the TTL header: ``(live, etag)``; ``None`` when absent or (``if_match``) changed."""
        conditions = {} if if_match is None else {"IfMatch": if_match}
        with self._s3_errors(action, subject, s3_key):
            try:
                response = self.client.get_object(
                    Bucket=self.bucket, Key=s3_key, Range=f"bytes=0-{_TTL_HEADER_SIZE - 1}", **conditions
                )
            except ClientError as error:
                if _absent(error) or (if_match is not None and _lost_race(error)):
                    return None
                if _error_code(error) == "InvalidRange":
                    return True, if_match  # an empty object: a value without a TTL
                raise
            head = response["Body"].read()
        return _without_header(head) is not None, response.get("ETag")

    def _put(self, subject: str, s3_key: str, raw: bytes, **conditions: str) -> str | None:
        """``PutObject``; return the new ETag, or ``None`` when a condition failed (lost the race)."""
        with self._s3_errors("write", subject, s3_key):
            try:
                return self.client.put_object(Bucket=self.bucket, Key=s3_key, Body=raw, **conditions)["ETag"]
            except ClientError as error:
                if not (conditions and _lost_race(error)):
                    raise
                if _retried(error):
                    # A retried request may have failed its condition against its own first
                    # attempt, which did land: then the object holds exactly these bytes.
                    current = self._get("write", subject, s3_key)
                    if current is not None and current[0] == raw:
                        return current[1]["ETag"]
                return None

    def _remember_bare(self, version: str) -> None:
        with self._bare_lock:
            self._bare_versions[version] = None
            self._bare_versions.move_to_end(version)
            while len(self._bare_versions) > _BARE_VERSIONS:
                self._bare_versions.popitem(last=False)

    def _is_bare(self, version: str) -> bool:
        with self._bare_lock:
            return version in self._bare_versions

    def _objects(self, prefix: str) -> list[tuple[str, int]]:
        """Every store key (expired ones included) under the string ``prefix``, with its size, sorted."""
        _check_listing_prefix(prefix)
        s3_prefix = self.prefix + prefix
        found = []
        with self._s3_errors("list", f"keys under {prefix!r}", s3_prefix):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=s3_prefix):
                for item in page.get("Contents", ()):
                    key = item["Key"][len(self.prefix) :]
                    if item["Key"].startswith(self.prefix) and _is_store_key(key):
                        found.append((key, int(item.get("Size", 0))))
        return sorted(found)

    def _liveness(self, objects: list[tuple[str, int]], action: str) -> list[bool | None]:
        """Per object: ``True`` live, ``False`` expired, ``None`` gone meanwhile."""

        def live(entry: tuple[str, int]) -> bool | None:
            key, size = entry
            if size < _TTL_HEADER_SIZE:
                return True  # too short to carry an expiry
            head = self._read_head(action, f"key {key!r}", self.prefix + key)
            return None if head is None else head[0]

        needs_reading = sum(1 for _, size in objects if size >= _TTL_HEADER_SIZE)
        if needs_reading <= 1:
            return [live(entry) for entry in objects]
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(_LIST_WORKERS, needs_reading)) as pool:
            return list(pool.map(live, objects))

    # -- leases guard the writes of their workflow ----------------------------------------------------

    def _guard(self, key: str) -> None:
        """Refuse a write under ``workflows/<id>/`` once this store's lease of ``<id>`` is lost."""
        workflow_id = _workflow_of(key)
        if workflow_id is None:
            return
        with self._leases_lock:
            lease = self._leases.get(workflow_id)
        if lease is not None:
            lease._verify(key)

    # -- primitives ---------------------------------------------------------------------------

    def read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        found = self._get("read", f"key {key!r}", self._s3_key(key))
        if found is None:
            return None, None
        raw, response = found
        data = _open(raw, key=key, signer=self._signer, where=self._where())
        if data is None:
            return None, None
        version = response["ETag"]
        if not _has_header(raw):
            self._remember_bare(version)  # a value without a TTL: this version never expires
        return data, version

    def write_bytes(self, key: str, data: bytes, *, ttl: float | None = None) -> None:
        _check_ttl(ttl)
        s3_key = self._s3_key(key)
        self._guard(key)
        raw = _seal(data, ttl, key=key, signer=self._signer)
        version = self._put(f"key {key!r}", s3_key, raw)
        if not _has_header(raw) and version:
            self._remember_bare(version)

    def write_bytes_if(
        self, key: str, data: bytes, *, expected_version: str | None, ttl: float | None = None
    ) -> bool:
        _check_ttl(ttl)
        s3_key = self._s3_key(key)
        subject = f"key {key!r}"
        self._guard(key)
        raw = _seal(data, ttl, key=key, signer=self._signer)
        if expected_version is not None:
            if not self._is_bare(expected_version):
                # An expired value is absent, whatever its version: look at its header first.
                head = self._read_head("write", subject, s3_key, if_match=expected_version)
                if head is None or not head[0]:
                    return False
            return self._put(subject, s3_key, raw, IfMatch=expected_version) is not None
        for _ in range(5):
            if self._put(subject, s3_key, raw, IfNoneMatch="*") is not None:
                return True
            head = self._read_head("write", subject, s3_key)
            if head is None:
                continue  # deleted meanwhile: try to create it again
            live, version = head
            if live or version is None:
                return False
            # Expired, so absent as far as readers know: replace exactly that expired object.
            return self._put(subject, s3_key, raw, IfMatch=version) is not None
        return False

    def delete(self, key: str) -> bool:
        s3_key = self._s3_key(key)
        subject = f"key {key!r}"
        self._guard(key)
        head = self._read_head("delete", subject, s3_key)
        if head is None:
            return False
        with self._s3_errors("delete", subject, s3_key):
            self.client.delete_object(Bucket=self.bucket, Key=s3_key)
        return head[0]

    def list_keys(self, prefix: str) -> list[str]:
        objects = self._objects(prefix)
        return [key for (key, _), live in zip(objects, self._liveness(objects, "list"), strict=True) if live]

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key under ``prefix`` (expired ones too); return how many live ones were removed."""
        objects = self._objects(prefix)
        for workflow_id in sorted({_workflow_of(key) for key, _ in objects} - {None}):
            self._guard(f"workflows/{workflow_id}/")
        live = self._liveness(objects, "delete")
        keys = [key for (key, _), state in zip(objects, live, strict=True) if state is not None]
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]
            s3_prefix = self.prefix + prefix
            with self._s3_errors("delete", f"keys under {prefix!r}", s3_prefix):
                response = self.client.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": [{"Key": self.prefix + key} for key in batch], "Quiet": True},
                )
            errors = response.get("Errors") or []
            if errors:
                first = errors[0]
                raise StoreError(
                    f"S3Store {self.location}: cannot delete key {first.get('Key', '')[len(self.prefix):]!r} "
                    f"(bucket {self.bucket!r}, object {first.get('Key')!r}): {first.get('Code')}: "
                    f"{first.get('Message')} ({len(errors)} of {len(batch)} deletes failed)"
                )
        return sum(1 for state in live if state)

    def copy_prefix(self, source: str, destination: str) -> int:
        """Copy every live key under the folder ``source`` under ``destination``, expiry included.

        Server-side, unless the store is signed: then each object is downloaded, checked, and
        uploaded signed for its new key.
        """
        copied = 0
        for key in self.list_keys(source):
            target = destination + key[len(source) :]
            s3_target = self._s3_key(target)
            self._guard(target)
            if self._signer is not None:
                found = self._get("read", f"key {key!r}", self._s3_key(key))
                copy = None if found is None else _reseal(
                    found[0], source=key, target=target, signer=self._signer, where=self._where()
                )
                if copy is not None:
                    self._put(f"key {target!r}", s3_target, copy)
                    copied += 1
                continue
            with self._s3_errors("write", f"key {target!r}", s3_target):
                try:
                    self.client.copy_object(
                        Bucket=self.bucket, Key=s3_target, CopySource={"Bucket": self.bucket, "Key": self.prefix + key}
                    )
                except ClientError as error:
                    if _absent(error):
                        continue  # deleted meanwhile
                    raise
            copied += 1
        return copied

    def read_raw(self, key: str) -> bytes | None:
        found = self._get("read", f"key {key!r}", self._s3_key(key))
        return None if found is None else found[0]

    # -- the run lease --------------------------------------------------------------------------------

    def _lease_key(self, workflow_id: str) -> str:
        return f"{self.prefix}workflows/{workflow_id}/{_LEASE_NAME}"

    def _put_lease(self, s3_key: str, raw: bytes, **conditions: str) -> str | None:
        return self._put("the run lease", s3_key, raw, **conditions)

    def _lease_etag(self, s3_key: str) -> str | None:
        with self._s3_errors("check", "the run lease", s3_key):
            try:
                return self.client.head_object(Bucket=self.bucket, Key=s3_key)["ETag"]
            except ClientError as error:
                if _absent(error):
                    return None
                raise

    def _delete_lease(self, s3_key: str, etag: str) -> None:
        """Delete the lease object if it is still ours; a failure only leaves it to expire."""
        try:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=s3_key, IfMatch=etag)
            except ClientError as error:
                if _lost_race(error) or _absent(error):
                    return  # taken over meanwhile, or already gone
                # An endpoint without conditional deletes: check, then delete.
                if self._lease_etag(s3_key) == etag:
                    self.client.delete_object(Bucket=self.bucket, Key=s3_key)
        except (ClientError, BotoCoreError, StoreError) as error:
            logger.warning(
                "could not release the run lease %s in bucket %s (it expires by itself): %s", s3_key, self.bucket, error
            )

    def _lease_holder(self, s3_key: str) -> tuple[str, str, bool] | None:
        """The present lease: ``(description, etag, expired)``, or ``None`` when there is none."""
        found = self._get("read", "the run lease", s3_key)
        if found is None:
            return None
        raw, response = found
        try:
            document = json.loads(raw)
            owner = str(document["owner"])
            seconds = float(document["lease_seconds"])
            expires_at = float(document["expires_at"])
        except Exception:
            owner, seconds, expires_at = "an unreadable lease", self.lease_seconds, None
        remaining = self._remaining(response, seconds, expires_at)
        if remaining is None:
            description = f"{owner}, lease in {self.location} of unknown age"
            return description, response["ETag"], False
        expired = remaining <= 0
        state = "expired" if expired else f"expires in {remaining:.1f} s unless renewed"
        return f"{owner}, lease in {self.location} {state}", response["ETag"], expired

    @staticmethod
    def _remaining(response: dict, seconds: float, expires_at: float | None) -> float | None:
        """Seconds until the lease may be taken over, by S3's clock when it tells its time."""
        modified = response.get("LastModified")
        date = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        if isinstance(modified, datetime) and date:
            try:
                now = parsedate_to_datetime(date)
            except (TypeError, ValueError):
                now = None
            if now is not None and now.tzinfo is not None:
                age = (now - modified).total_seconds()
                return seconds + _SERVER_CLOCK_RESOLUTION - age
        if expires_at is not None:
            return expires_at - time.time()  # no server clock: trust the holder's
        return None

    def _try_lease(self, workflow_id: str) -> Lease | str:
        """Take the lease without waiting: the ``Lease``, else a description of its holder."""
        with self._leases_lock:
            held = self._leases.get(workflow_id)
        if held is not None:
            return f"{held.owner}, lease in {self.location} held by this process"
        s3_key = self._lease_key(workflow_id)
        holder = "another run"
        for _ in range(3):
            lease = Lease(
                store=self,
                workflow_id=workflow_id,
                s3_key=s3_key,
                owner=f"pid {os.getpid()} on {socket.gethostname()}",
                token=uuid.uuid4().hex,
                lease_seconds=self.lease_seconds,
            )
            started = time.monotonic()
            etag = self._put_lease(s3_key, lease._document(), IfNoneMatch="*")
            if etag is None:
                present = self._lease_holder(s3_key)
                if present is None:
                    continue  # released meanwhile
                holder, present_etag, expired = present
                if not expired:
                    return holder
                started = time.monotonic()
                etag = self._put_lease(s3_key, lease._document(), IfMatch=present_etag)
                if etag is None:
                    continue  # renewed, released or taken over by another run meanwhile
                logger.warning("workflow %s: took over an expired run lease (%s)", workflow_id, holder)
            lease._confirmed(etag, started)
            with self._leases_lock:
                if workflow_id in self._leases:  # another thread of this process won meanwhile
                    self._delete_lease(s3_key, etag)
                    return f"{self._leases[workflow_id].owner}, lease in {self.location} held by this process"
                self._leases[workflow_id] = lease
            return lease
        return holder

    @contextmanager
    def run_lock(
        self,
        workflow_id: str,
        *,
        wait_seconds: float = 0.0,
        on_wait: Callable[[str], None] | None = None,
    ) -> Iterator[Lease]:
        """Hold ``workflow_id``'s run lease for the duration of the block; yields the ``Lease``.

        See ``DotflowStore.run_lock``. While waiting, the lease is polled with short jittered
        sleeps (at most 0.25 s), so the wait ends at its deadline. On exit the heartbeat stops
        and the lease object is deleted if it is still ours.
        """
        if isinstance(wait_seconds, bool) or not isinstance(wait_seconds, int | float) or not wait_seconds >= 0:
            raise ValueError(f"wait_seconds must be a number >= 0, got {wait_seconds!r}")
        workflow_id = str(workflow_id)
        if not _SEGMENT.fullmatch(workflow_id) or workflow_id in (".", ".."):
            raise ValueError(f"workflow_id {workflow_id!r} must be one key segment ([A-Za-z0-9._-]+)")
        taken = self._try_lease(workflow_id)
        if isinstance(taken, str):
            if not wait_seconds:
                raise RunInProgressError(workflow_id=workflow_id, holder=taken)
            taken = wait_for_lock(
                lambda: self._try_lease(workflow_id),
                workflow_id=workflow_id,
                holder=taken,
                wait_seconds=wait_seconds,
                on_wait=on_wait,
            )
        lease = taken
        try:
            lease._start_heartbeat()
            yield lease
        finally:
            try:
                lease._release()
            finally:
                with self._leases_lock:
                    if self._leases.get(workflow_id) is lease:
                        del self._leases[workflow_id]

