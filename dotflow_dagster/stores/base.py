"""Where checkpoints, ledgers and payloads live: dotflow's ``Storage`` ABC, done right.

dotflow 1.0.1's ``StorageFile`` appends to a key's JSON list (so a retried step reads back a
list), stores ``None`` for a failed task, writes non-atomically, and clears by a bare string
prefix that also matches other workflows. The stores here:

- overwrite, never append, and write atomically and durably (a reader sees the old value or the
  new one, and a write that returned survives a power loss);
- never keep a checkpoint for a failed task (posting an empty ``Context`` deletes the key);
- lay their own keys out as ``/``-separated segments, so ``workflows/<id>/...`` can never match
  another id, and clear dotflow's flat ``<workflow_id>-<task>`` keys without touching other
  workflows' (see ``DotflowStore.clear``);
- expire keys posted with a ``ttl`` (dotflow's ``post(..., ttl=)`` and ``atomic_swap(..., ttl=)``):
  an expired key reads as absent and is no longer listed; keys written without a ``ttl`` (all
  ledger and checkpoint keys) never expire;
- offer a compare-and-swap write and a per-workflow run lock (fail-fast or waiting), which the
  ledger and the runner build on;
- report filesystem and permission failures as ``StoreError`` naming the store, the key and the
  OS reason.

Checkpoint values are pickled, as Dagster's own filesystem IO manager does: a step may return
any Python object. Keep stores where only trusted writers can reach them, and give them a
``signing_key`` (see ``stores/signing.py``): then every object is signed, and one that was
changed, copied under another key, or written without the key is refused before it is
unpickled.
"""

import math
import pickle
import random
import re
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from dotflow.abc.storage import Storage
from dotflow.core.context import Context
from dotflow.core.fingerprint import FP_KEY_SUFFIX

from dotflow_dagster.errors import RunInProgressError, StoreError
from dotflow_dagster.stores.signing import ObjectSigner

__all__ = ["DotflowStore", "validate_key", "wait_for_lock"]

_Acquired = TypeVar("_Acquired")

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
# Stores name their own temporary and lock files with "#", which no key segment may contain.
_INTERNAL = "#"
# While waiting for a run lock, tell the caller who holds it about this often.
_WAIT_REPORT_SECONDS = 30.0


def validate_key(key: str) -> str:
    """Check a store key: ``/``-separated segments of ``[A-Za-z0-9._-]``, none ``.`` or ``..``.

    So a key can never climb out of the store, and never collide with a store's own temporary
    or lock files (whose names contain ``#``).
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"store key must be a non-empty string, got {key!r}")
    for segment in key.split("/"):
        if not _SEGMENT.fullmatch(segment) or segment in (".", ".."):
            raise ValueError(
                f"store key {key!r} is invalid: segment {segment!r} must match [A-Za-z0-9._-]+ "
                "and not be '.' or '..'"
            )
    return key


def _is_uuid(text: str) -> bool:
    """Whether ``text`` is a UUID in canonical form (lowercase, hyphenated), as dotflow writes ids."""
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def _starts_with_uuid(key: str) -> bool:
    """Whether ``key`` is ``<canonical uuid>-...``: a key of a dotflow workflow with a UUID id."""
    return len(key) > 36 and key[36] == "-" and _is_uuid(key[:36])


def _check_ttl(ttl: float | None) -> None:
    if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl < math.inf):
        raise ValueError(f"ttl must be a positive, finite number of seconds, got {ttl!r}")


class DotflowStore(Storage, ABC):
    """Base class of the stores: dotflow's ``Storage`` ABC on top of a few byte-level primitives.

    Subclasses implement ``read_versioned``, ``write_bytes``, ``write_bytes_if``, ``delete``,
    ``list_keys`` and ``run_lock``; everything else (dotflow's ``post``/``get``/``key``/``clear``/
    ``atomic_swap``, copies and prefix deletes) is derived from them. A key written with a
    ``ttl`` must read as absent, and not be listed, once it has expired; a store that cannot
    expire keys raises ``ValueError`` for a ``ttl``.

    With a ``signing_key``, the primitives sign every object they write and
    ``read_versioned`` refuses an object that is unsigned or whose signature does not match
    its key (``UntrustedObjectError``, a ``StoreError``), so everything derived from them is
    signed too and nothing unverified is ever unpickled. ``read_versioned`` returns the
    verified value, and ``write_bytes`` signs for the key written, so copying bytes from one
    key to another re-signs them.

    Args:
        signing_key: the secret objects are signed with (at least 16 bytes), or ``None`` for
            an unsigned store. Never shown in ``repr()`` or messages.
    """

    def __init__(self, *, signing_key: str | bytes | None = None) -> None:
        super().__init__()
        self._signer = None if signing_key is None else ObjectSigner(signing_key)

    @property
    def signed(self) -> bool:
        """Whether this store signs what it writes and accepts only signed objects."""
        return self._signer is not None

    def _where(self) -> str:
        """The store in messages: its class and location."""
        return f"{type(self).__name__} {self.location}"

    # -- primitives ---------------------------------------------------------------------------

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the store lives, for messages (a directory, ``s3://bucket/prefix``)."""

    @abstractmethod
    def read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        """Return ``(data, version)``, or ``(None, None)`` when the key is absent or expired."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes, *, ttl: float | None = None) -> None:
        """Overwrite ``key`` atomically; with ``ttl``, the key expires that many seconds from now."""

    @abstractmethod
    def write_bytes_if(
        self, key: str, data: bytes, *, expected_version: str | None, ttl: float | None = None
    ) -> bool:
        """Write only if the key's version is still ``expected_version`` (``None``: still absent).

        An expired key counts as absent. ``ttl`` as for ``write_bytes``.
        """

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it held a (live) value."""

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """Return every live key under ``prefix`` (a key or a ``/``-terminated folder), sorted."""

    @abstractmethod
    def run_lock(
        self,
        workflow_id: str,
        *,
        wait_seconds: float = 0.0,
        on_wait: Callable[[str], None] | None = None,
    ) -> AbstractContextManager[None]:
        """Context manager: hold the workflow's run lock for the duration of the block.

        With ``wait_seconds=0`` a lock held by another run raises ``RunInProgressError`` naming
        the holder at once. Otherwise wait up to ``wait_seconds`` for it, calling
        ``on_wait(holder)`` when the wait starts and about every 30 seconds after, and raise
        ``RunInProgressError`` if it is still held at the deadline. The lock must not outlive a
        crashed holder.
        """

    # -- inspection (for ``python -m dotflow_dagster verify``) -------------------------------------

    def read_raw(self, key: str) -> bytes | None:
        """The object at ``key`` exactly as stored (expiry header and signature included), unchecked.

        For inspection tools only: these bytes are not verified, so never unpickle them.
        ``None`` when there is no object (an expired one is still returned).
        """
        raise NotImplementedError(f"{type(self).__name__} cannot return raw objects")

    def leftover_temporaries(self, *, older_than_seconds: float = 60.0) -> list[str]:
        """Temporary objects that writers which died left behind, older than ``older_than_seconds``.

        Empty for stores whose writes leave nothing behind (S3's uploads are atomic).
        """
        return []

    # -- derived byte-level helpers ---------------------------------------------------------------

    def read_bytes(self, key: str) -> bytes | None:
        """Return the bytes stored at ``key``, or ``None``."""
        return self.read_versioned(key)[0]

    def exists(self, key: str) -> bool:
        """Whether ``key`` holds a value."""
        return self.read_bytes(key) is not None

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key under ``prefix``; return how many were removed."""
        return sum(1 for key in self.list_keys(prefix) if self.delete(key))

    def copy_prefix(self, source: str, destination: str) -> int:
        """Copy every key under the folder ``source`` to the same place under ``destination``."""
        copied = 0
        for key in self.list_keys(source):
            data = self.read_bytes(key)
            if data is not None:
                self.write_bytes(destination + key[len(source) :], data)
                copied += 1
        return copied

    def update(self, key: str, mutate: Callable[[bytes | None], bytes | None], *, attempts: int = 50) -> bytes | None:
        """Compare-and-swap loop: apply ``mutate`` to the current bytes until the write wins.

        ``mutate`` may be called more than once and must not have side effects; returning
        ``None`` leaves the key as it is.
        """
        for attempt in range(attempts):
            current, version = self.read_versioned(key)
            new = mutate(current)
            if new is None:
                return current
            if self.write_bytes_if(key, new, expected_version=version):
                return new
            # Jittered backoff, so writers that keep colliding stop doing so in lockstep.
            time.sleep(random.uniform(0, min(0.2, 0.002 * 2**attempt)))
        raise StoreError(f"{key!r} in {self.location} kept changing under {attempts} compare-and-swap attempts")

    # -- dotflow's Storage ABC ------------------------------------------------------------------

    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        """Store ``context.storage`` at ``key``, replacing what was there (and its expiry).

        dotflow posts an empty ``Context`` for a failed task; that deletes the key, so a failed
        step never looks completed. With ``ttl`` (seconds) the key expires: afterwards it reads
        as absent and is no longer listed.
        """
        _check_ttl(ttl)
        value = context.storage if isinstance(context, Context) else context
        if value is None:
            self.delete(key)
            return
        self.write_bytes(validate_key(key), pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), ttl=ttl)

    def get(self, key: str) -> Context:
        """Return the stored value as a ``Context``, or an empty ``Context()`` when absent or expired."""
        data = self.read_bytes(validate_key(key))
        if data is None:
            return Context()
        return Context(storage=self._unpickle(key, data))

    def key(self, task: Any) -> str:
        """Key of a plain dotflow task: one folder per workflow, so ids never share a prefix."""
        return f"dotflow/{task.workflow_id}/{task.task_id}"

    def clear(self, workflow_id: str) -> None:
        """Remove a plain dotflow workflow's keys, and only that workflow's.

        That is the folder ``dotflow/<workflow_id>/`` (where ``key`` puts checkpoints) and the
        flat keys ``<workflow_id>-...`` in dotflow's own format (dotflow writes its input
        fingerprint at ``<workflow_id>-_input_fp``). Keys with a ``/`` never match the flat form,
        so this store's own ``workflows/...`` keys are never touched.

        dotflow's workflow ids are UUIDs, and ``<uuid>-`` can only start that workflow's keys.
        A bare prefix of any other id could also start another workflow's (``nightly-`` starts
        ``nightly-eu-_input_fp``), so for a non-UUID id the flat match skips keys that start with
        a UUID and keys of any other workflow whose fingerprint key is in the store.
        """
        workflow_id = str(workflow_id)
        if not _SEGMENT.fullmatch(workflow_id) or workflow_id in (".", ".."):
            raise ValueError(f"workflow_id {workflow_id!r} must be one key segment ([A-Za-z0-9._-]+)")
        self.delete_prefix(f"dotflow/{workflow_id}/")
        flat = [key for key in self.list_keys(f"{workflow_id}-") if "/" not in key]
        if not _is_uuid(workflow_id):
            own_fingerprint = f"{workflow_id}{FP_KEY_SUFFIX}"
            others = [
                key[: -len(FP_KEY_SUFFIX)]
                for key in flat
                if key.endswith(FP_KEY_SUFFIX) and key != own_fingerprint
            ]
            flat = [
                key
                for key in flat
                if not _starts_with_uuid(key) and not any(key.startswith(f"{other}-") for other in others)
            ]
        for key in flat:
            self.delete(key)

    def atomic_swap(
        self, key: str, expected: Any, new: Any, ttl: int | None = None, fingerprint: str | None = None
    ) -> bool:
        """Replace the value at ``key`` with ``new`` only if it currently equals ``expected``.

        An absent or expired key equals ``None``. The new value carries ``ttl`` if given and
        never expires otherwise (an expiry of the old value is not inherited).
        """
        _check_ttl(ttl)
        data, version = self.read_versioned(validate_key(key))
        current = None if data is None else self._unpickle(key, data)
        if current != expected:
            return False
        new_value = new.storage if isinstance(new, Context) else new
        return self.write_bytes_if(
            key, pickle.dumps(new_value, protocol=pickle.HIGHEST_PROTOCOL), expected_version=version, ttl=ttl
        )

    def _unpickle(self, key: str, data: bytes) -> Any:
        try:
            return pickle.loads(data)
        except Exception as error:
            raise StoreError(f"cannot read {key!r} in {self.location}: {type(error).__name__}: {error}") from None


def wait_for_lock(
    attempt: "Callable[[], _Acquired | str | None]",
    *,
    workflow_id: str,
    holder: str,
    wait_seconds: float,
    on_wait: "Callable[[str], None] | None",
) -> "_Acquired | None":
    """Retry ``attempt`` until it stops returning a holder (a ``str``) or ``wait_seconds`` pass.

    Shared by the stores' run locks: jittered polling, so waiters do not retry in lockstep, and
    ``on_wait(holder)`` at the start and every 30 s, so a caller can log that it waits.

    Raises:
        RunInProgressError: still held after ``wait_seconds``; names the holder.
    """
    started = time.monotonic()
    deadline = started + wait_seconds
    next_report = started
    current: _Acquired | str | None = holder
    while isinstance(current, str):
        now = time.monotonic()
        if now >= deadline:
            raise RunInProgressError(
                workflow_id=workflow_id,
                holder=f"{current or 'another run'}; gave up after waiting {now - started:.1f} s",
            )
        if on_wait is not None and now >= next_report:
            on_wait(current)
            next_report = now + _WAIT_REPORT_SECONDS
        time.sleep(min(random.uniform(0.05, 0.25), max(deadline - now, 0.001)))
        current = attempt()
    return current
