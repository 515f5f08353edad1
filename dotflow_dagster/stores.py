"""Where checkpoints, ledgers and payloads live: dotflow's ``Storage`` ABC, done right.

dotflow 1.0.1's ``StorageFile`` appends to a key's JSON list (so a retried step reads back a
list), stores ``None`` for a failed task, writes non-atomically, and clears by a bare string
prefix that also matches other workflows. The stores here:

- overwrite, never append, and write atomically (a reader sees the old value or the new one);
- never keep a checkpoint for a failed task (posting an empty ``Context`` deletes the key);
- lay keys out as ``/``-separated segments, so ``workflows/<id>/...`` can never match another id;
- offer a compare-and-swap write and a per-workflow run lock, which the ledger builds on.

Checkpoint values are pickled, as Dagster's own filesystem IO manager does: a step may return
any Python object. Keep stores where only trusted writers can reach them.
"""

import fcntl
import hashlib
import os
import pickle
import random
import re
import socket
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dotflow.abc.storage import Storage
from dotflow.core.context import Context

from dotflow_dagster.errors import RunInProgressError, StoreError

__all__ = ["DotflowStore", "LocalStore", "validate_key"]

_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
# Stores name their own temporary and lock files with "#", which no key segment may contain.
_INTERNAL = "#"


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


class DotflowStore(Storage, ABC):
    """Base class of the stores: dotflow's ``Storage`` ABC on top of a few byte-level primitives.

    Subclasses implement ``read_versioned``, ``write_bytes``, ``write_bytes_if``, ``delete``,
    ``list_keys`` and ``run_lock``; everything else (dotflow's ``post``/``get``/``key``/``clear``/
    ``atomic_swap``, copies and prefix deletes) is derived from them.
    """

    # -- primitives ---------------------------------------------------------------------------

    @property
    @abstractmethod
    def location(self) -> str:
        """Where the store lives, for messages (a directory, ``s3://bucket/prefix``)."""

    @abstractmethod
    def read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        """Return ``(data, version)``, or ``(None, None)`` when the key is absent."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Overwrite ``key`` atomically."""

    @abstractmethod
    def write_bytes_if(self, key: str, data: bytes, *, expected_version: str | None) -> bool:
        """Write only if the key's version is still ``expected_version`` (``None``: still absent)."""

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove ``key``; return whether it existed."""

    @abstractmethod
    def list_keys(self, prefix: str) -> list[str]:
        """Return every key under ``prefix`` (a key or a ``/``-terminated folder), sorted."""

    @abstractmethod
    def run_lock(self, workflow_id: str) -> Any:
        """Context manager: hold the workflow's run lock or raise ``RunInProgressError``.

        The lock must not outlive a crashed holder.
        """

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
        """Store ``context.storage`` at ``key``, replacing what was there.

        dotflow posts an empty ``Context`` for a failed task; that deletes the key, so a failed
        step never looks completed.
        """
        if ttl is not None:
            raise ValueError(f"{type(self).__name__} does not expire keys (ttl={ttl} for {key!r}); prune instead")
        value = context.storage if isinstance(context, Context) else context
        if value is None:
            self.delete(key)
            return
        self.write_bytes(validate_key(key), pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))

    def get(self, key: str) -> Context:
        """Return the stored value as a ``Context``, or an empty ``Context()`` when absent."""
        data = self.read_bytes(validate_key(key))
        if data is None:
            return Context()
        return Context(storage=self._unpickle(key, data))

    def key(self, task: Any) -> str:
        """Key of a plain dotflow task: one folder per workflow, so ids never share a prefix."""
        return f"dotflow/{task.workflow_id}/{task.task_id}"

    def clear(self, workflow_id: str) -> None:
        """Remove a plain dotflow workflow's checkpoints, and only that workflow's."""
        self.delete_prefix(f"dotflow/{workflow_id}/")

    def atomic_swap(
        self, key: str, expected: Any, new: Any, ttl: int | None = None, fingerprint: str | None = None
    ) -> bool:
        """Replace the value at ``key`` with ``new`` only if it currently equals ``expected``."""
        if ttl is not None:
            raise ValueError(f"{type(self).__name__} does not expire keys (ttl={ttl} for {key!r})")
        data, version = self.read_versioned(validate_key(key))
        current = None if data is None else self._unpickle(key, data)
        if current != expected:
            return False
        new_value = new.storage if isinstance(new, Context) else new
        return self.write_bytes_if(key, pickle.dumps(new_value, protocol=pickle.HIGHEST_PROTOCOL), expected_version=version)

    def _unpickle(self, key: str, data: bytes) -> Any:
        try:
            return pickle.loads(data)
        except Exception as error:
            raise StoreError(f"cannot read {key!r} in {self.location}: {type(error).__name__}: {error}") from None


class LocalStore(DotflowStore):
    """A store in a local directory: the embedded default.

    Writes go to a temporary file in the same directory, are fsynced, then renamed over the
    target. Compare-and-swap and the run lock use OS file locks (``flock``), which the kernel
    releases when the holding process dies, even by ``kill -9``. It serves one machine (or a
    shared filesystem whose ``flock`` works across clients).

    Args:
        path: the store's root directory; created on first write.

    Example:
        >>> import tempfile
        >>> from dotflow.core.context import Context
        >>> store = LocalStore(tempfile.mkdtemp())
        >>> store.post("examples/answer", Context(storage=42))
        >>> store.get("examples/answer").storage
        42
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__()
        self.root = Path(path).expanduser().resolve()

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    @property
    def location(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    @contextmanager
    def _flock(self, lock_path: Path, *, blocking: bool) -> Iterator[int]:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            yield fd
        finally:
            os.close(fd)

    def read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        try:
            data = self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None, None
        return data, hashlib.sha256(data).hexdigest()

    @staticmethod
    def _write_temporary(directory: Path, data: bytes) -> str:
        """Write ``data`` to a new fsynced file in ``directory`` (the target's, so renames are atomic)."""
        directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f"{_INTERNAL}tmp-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return temporary

    def write_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        temporary = self._write_temporary(target.parent, data)
        try:
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def write_bytes_if(self, key: str, data: bytes, *, expected_version: str | None) -> bool:
        target = self._path(key)
        if expected_version is None:
            return self._create_exclusive(target, data)
        with self._flock(target.parent / f"{_INTERNAL}{target.name}.lock", blocking=True):
            _, version = self.read_versioned(key)
            if version != expected_version:
                return False
            self.write_bytes(key, data)
            return True

    def _create_exclusive(self, target: Path, data: bytes) -> bool:
        # link(2) refuses an existing target, so create-if-absent is atomic without a lock file.
        temporary = self._write_temporary(target.parent, data)
        try:
            os.link(temporary, target)
            return True
        except FileExistsError:
            return False
        finally:
            Path(temporary).unlink(missing_ok=True)

    def delete(self, key: str) -> bool:
        try:
            self._path(key).unlink()
        except (FileNotFoundError, IsADirectoryError):
            return False
        return True

    def list_keys(self, prefix: str) -> list[str]:
        # A plain string prefix, as dotflow's ABC and S3 mean it: "a/b" matches "a/b" and "a/bc",
        # "a/b/" only keys inside the folder "a/b".
        folder, _, _ = prefix.rpartition("/")
        base = self._path(folder) if folder else self.root
        if not base.is_dir():
            return []
        keys = []
        for directory, subdirectories, files in os.walk(base):
            subdirectories[:] = [name for name in subdirectories if _INTERNAL not in name]
            relative = Path(directory).relative_to(self.root).as_posix()
            for name in files:
                key = name if relative == "." else f"{relative}/{name}"
                if _INTERNAL not in name and key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> int:
        removed = super().delete_prefix(prefix)
        if prefix.endswith("/"):
            self._prune_empty_directories(self._path(prefix.rstrip("/")))
        return removed

    def _prune_empty_directories(self, top: Path) -> None:
        if not top.is_dir():
            return
        for directory, _, _ in sorted(os.walk(top), key=lambda entry: len(entry[0]), reverse=True):
            try:
                Path(directory).rmdir()
            except OSError:
                pass  # still holds lock files or keys written meanwhile

    @contextmanager
    def run_lock(self, workflow_id: str) -> Iterator[None]:
        lock_path = self._path(f"workflows/{workflow_id}") / f"{_INTERNAL}run.lock"
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunInProgressError(workflow_id=workflow_id, holder=os.pread(fd, 200, 0).decode(errors="replace")) from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
            yield
        finally:
            os.close(fd)
