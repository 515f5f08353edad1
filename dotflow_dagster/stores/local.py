"""``LocalStore``: the embedded default, a store in a local directory.

Writes go to a temporary file in the same directory, are fsynced, renamed over the target, and
the directory is fsynced. Compare-and-swap and the run lock use OS file locks (``flock``),
which the kernel releases when the holding process dies, even by ``kill -9``. Values written
with a ``ttl`` carry a small header with their expiry; with a ``signing_key`` every value is
signed (``stores/signing.py``) behind that header.
"""


import errno
import fcntl
import hashlib
import math
import os
import socket
import stat
import struct
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dotflow_dagster.errors import RunInProgressError, StoreError
from dotflow_dagster.stores.base import (
    _INTERNAL,
    DotflowStore,
    _check_ttl,
    validate_key,
    wait_for_lock,
)
from dotflow_dagster.stores.signing import ObjectSigner, refuse_signed_without_key

__all__ = ["LocalStore"]


def _wall_clock() -> float:
    """Seconds since the epoch; expiry times are stored as such, so they survive restarts."""
    return time.time()


# A value written with a ttl starts with this header: magic, then the expiry as a big-endian
# double (seconds since the epoch). Values without a ttl are stored bare, as earlier versions
# wrote them; the magic starts with NUL, which neither JSON, text nor a pickle starts with, and a
# bare value that does start with the magic is written behind a header that never expires.
_TTL_MAGIC = b"\x00dotflow-ttl\x00"
_TTL_EXPIRY = struct.Struct(">d")
_TTL_HEADER_SIZE = len(_TTL_MAGIC) + _TTL_EXPIRY.size
# Writes go to such a file first; one left behind is a write that crashed before its rename.
_TEMPORARY_PREFIX = f"{_INTERNAL}tmp-"


def _with_header(data: bytes, ttl: float | None) -> bytes:
    if ttl is None and not data.startswith(_TTL_MAGIC):
        return data
    expires_at = math.inf if ttl is None else _wall_clock() + ttl
    return _TTL_MAGIC + _TTL_EXPIRY.pack(expires_at) + data


def _has_header(raw: bytes) -> bool:
    """Whether a stored object starts with an expiry header (else it never expires)."""
    return len(raw) >= _TTL_HEADER_SIZE and raw.startswith(_TTL_MAGIC)


def _header_expiry(raw: bytes) -> float | None:
    """The expiry (seconds since the epoch) in a stored object's header; ``None`` without one."""
    if not _has_header(raw):
        return None
    return _TTL_EXPIRY.unpack_from(raw, len(_TTL_MAGIC))[0]


def _without_header(raw: bytes) -> bytes | None:
    """The value in a stored file's bytes, or ``None`` if it has expired."""
    if not _has_header(raw):
        return raw
    (expires_at,) = _TTL_EXPIRY.unpack_from(raw, len(_TTL_MAGIC))
    if _wall_clock() >= expires_at:
        return None
    return raw[_TTL_HEADER_SIZE:]


# The one place both stores encode and decode objects: the expiry header outside, the signature
# inside it (so listings read expiries from the first bytes) but covering it (so it cannot move).


def _seal(data: bytes, ttl: float | None, *, key: str, signer: ObjectSigner | None) -> bytes:
    """The bytes to store for ``data`` at ``key``: expiry header if any, then signed if ``signer``."""
    if signer is None:
        return _with_header(data, ttl)
    header = b"" if ttl is None else _TTL_MAGIC + _TTL_EXPIRY.pack(_wall_clock() + ttl)
    return header + signer.sign(key=key, header=header, value=data)


def _open(raw: bytes, *, key: str, signer: ObjectSigner | None, where: str) -> bytes | None:
    """The value stored in ``raw`` at ``key``, checked; ``None`` if it has expired.

    Raises:
        UntrustedObjectError: signed store: unsigned or a wrong signature; unsigned store: signed.
    """
    value = _without_header(raw)
    if value is None:
        return None
    if signer is None:
        return refuse_signed_without_key(key=key, stored=value, where=where)
    header = raw[: len(raw) - len(value)]
    return signer.verify(key=key, header=header, stored=value, where=where)


def _reseal(raw: bytes, *, source: str, target: str, signer: ObjectSigner, where: str) -> bytes | None:
    """``raw`` (stored at ``source``), checked and signed for ``target``, expiry kept; ``None`` if expired."""
    data = _open(raw, key=source, signer=signer, where=where)
    if data is None:
        return None
    header = raw[: _TTL_HEADER_SIZE if _has_header(raw) else 0]
    return header + signer.sign(key=target, header=header, value=data)


def _fsync_directory(directory: Path) -> None:
    """fsync a directory, so the entries just renamed, linked, created or removed in it are durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    except OSError as error:
        # Some filesystems cannot sync a directory; there is nothing more to do on them.
        if error.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
    finally:
        os.close(fd)


def _modified_before(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime <= cutoff
    except FileNotFoundError:
        return False  # renamed or removed meanwhile: the write finished


def _refuse_folder(target: Path) -> None:
    """Raise ``IsADirectoryError`` if a folder stands where the key's file belongs."""
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{os.strerror(errno.EISDIR)} (a folder is in the way of the key)",
                                str(target))


def _raise(error: OSError) -> None:
    # os.walk's onerror: a folder that vanished meanwhile (pruned by another writer) holds no
    # keys; anything else (permissions, I/O) must not silently shorten a listing.
    if not isinstance(error, FileNotFoundError | NotADirectoryError):
        raise error


class LocalStore(DotflowStore):
    """A store in a local directory: the embedded default.

    Writes go to a temporary file in the same directory, are fsynced, then renamed over the
    target, and the directory is fsynced after the rename (and after creating a folder), so a
    write that returned survives a power loss. Compare-and-swap and the run lock use OS file
    locks (``flock``), which the kernel releases when the holding process dies, even by
    ``kill -9``. It serves one machine (or a shared filesystem whose ``flock`` works across
    clients).

    A key written with a ``ttl`` carries its expiry in a small header in its file; once expired
    it reads as absent and is not listed, and its file stays until the key is written, deleted or
    cleared again. Files without the header (every key written without a ``ttl``, and everything
    earlier versions wrote) read as they are.

    Filesystem failures (a root that is not a directory, missing permissions, a key whose parent
    folder is taken by another key, a folder where a key's file belongs, a full disk) raise
    ``StoreError`` naming the store, the key and the OS reason, at once (a compare-and-swap
    never retries them). A key that is simply not there reads as absent, and so does one whose
    place is a folder of other keys (on S3 ``a`` and ``a/b`` coexist).

    With a ``signing_key`` every object is signed with HMAC-SHA256 over its key, expiry and
    value, and a read refuses an object that is unsigned, changed or copied from another key
    (``UntrustedObjectError``, naming the directory and the key) before anything is unpickled.
    Without one, a signed object is refused the same way, since it cannot be checked.

    Args:
        path: the store's root directory; created on first write.
        signing_key: sign and check every object with this secret (at least 16 bytes); see
            ``stores/signing.py``. ``None``: unsigned, as earlier versions wrote.

    Example:
        >>> import tempfile
        >>> from dotflow.core.context import Context
        >>> store = LocalStore(tempfile.mkdtemp())
        >>> store.post("examples/answer", Context(storage=42))
        >>> store.get("examples/answer").storage
        42
    """

    def __init__(self, path: str | os.PathLike[str], *, signing_key: str | bytes | None = None) -> None:
        super().__init__(signing_key=signing_key)
        self.root = Path(path).expanduser().resolve()

    def __repr__(self) -> str:
        signed = ", signing_key=<secret>" if self.signed else ""
        return f"LocalStore({str(self.root)!r}{signed})"

    @property
    def location(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    # -- OS errors --------------------------------------------------------------------------------

    def _failure(self, action: str, subject: str, error: OSError) -> StoreError:
        reason = error.strerror or str(error) or type(error).__name__
        code = errno.errorcode.get(error.errno) if error.errno else None
        detail = f"{reason} [{code}]" if code else reason
        path = f" at {error.filename}" if error.filename else ""
        return StoreError(f"LocalStore {self.location}: cannot {action} {subject}: {detail}{path}")

    @contextmanager
    def _os_errors(self, action: str, subject: str) -> Iterator[None]:
        """Turn an ``OSError`` raised by the block into a ``StoreError`` saying what failed where."""
        try:
            yield
        except OSError as error:
            raise self._failure(action, subject, error) from error

    def _absent_or_fail(self, action: str, key: str, path: Path, error: OSError) -> None:
        """Decide whether an error opening ``path`` means "no such key" (return) or a failure (raise).

        No file, a folder of other keys (on S3 ``a`` and ``a/b`` coexist), or another key in the
        way of a parent folder all mean the key is absent. A folder holding no key where the
        key's file belongs is a failure, as are a root that is not a directory or that cannot be
        reached: reading them as absent would have a compare-and-swap retry in vain.
        """
        if isinstance(error, FileNotFoundError):
            return
        if isinstance(error, IsADirectoryError):
            if self._holds_keys(path):
                return
            reason = f"{os.strerror(errno.EISDIR)} (a folder holding no key is in the way of the key; remove it)"
            raise self._failure(action, f"key {key!r}", IsADirectoryError(errno.EISDIR, reason, str(path))) from error
        if isinstance(error, NotADirectoryError) and self._blocked_by_key(path):
            return
        raise self._failure(action, f"key {key!r}", error) from error

    @staticmethod
    def _holds_keys(folder: Path) -> bool:
        """Whether any key file (not a lock or temporary file) lies somewhere under ``folder``."""
        for _, _, files in os.walk(folder):
            if any(_INTERNAL not in name for name in files):
                return True
        return False

    def _blocked_by_key(self, path: Path) -> bool:
        """Whether a regular file strictly inside the root (another key) is an ancestor of ``path``."""
        for ancestor in path.parents:
            if ancestor == self.root or self.root not in ancestor.parents:
                return False
            try:
                if ancestor.is_file():
                    return True
            except OSError:
                return False  # cannot tell: report the original error
        return False

    def _check_root(self) -> None:
        """Raise ``StoreError`` if the root exists but is not a directory, or cannot be reached."""
        try:
            mode = os.stat(self.root).st_mode
        except FileNotFoundError:
            return  # not created yet: an empty store
        except OSError as error:
            raise self._failure("use", "its root", error) from error
        if not stat.S_ISDIR(mode):
            error = NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(self.root))
            raise self._failure("use", "its root", error) from error

    # -- files and folders ------------------------------------------------------------------------

    def _read_raw(self, key: str) -> bytes | None:
        """The stored file's bytes (header included), or ``None`` when there is no such file."""
        path = self._path(key)
        try:
            return path.read_bytes()
        except OSError as error:
            self._absent_or_fail("read", key, path, error)
            return None

    def _is_live(self, key: str, path: Path, action: str) -> bool | None:
        """``None``: no file at ``key``; else whether its value has not expired (reads the header only)."""
        try:
            with open(path, "rb") as handle:
                head = handle.read(_TTL_HEADER_SIZE)
        except OSError as error:
            self._absent_or_fail(action, key, path, error)
            return None
        return _without_header(head) is not None

    def _make_directories(self, directory: Path) -> None:
        """Create ``directory`` and its missing parents, fsyncing each new folder's parent."""
        missing: list[Path] = []
        current = directory
        while not current.is_dir() and current != current.parent:
            missing.append(current)
            current = current.parent
        for path in reversed(missing):
            try:
                os.mkdir(path)
            except FileExistsError:
                if path.is_dir():
                    continue  # created meanwhile by another writer
                raise NotADirectoryError(
                    errno.ENOTDIR, f"{os.strerror(errno.ENOTDIR)} (a file is in the way of a folder)", str(path)
                ) from None
            _fsync_directory(path.parent)

    def _write_temporary(self, directory: Path, data: bytes) -> str:
        """Write ``data`` to a new fsynced file in ``directory`` (the target's, so renames are atomic)."""
        self._make_directories(directory)
        fd, temporary = tempfile.mkstemp(prefix=_TEMPORARY_PREFIX, dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return temporary

    def _replace_into(self, target: Path, raw: bytes) -> None:
        temporary = self._write_temporary(target.parent, raw)
        try:
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _fsync_directory(target.parent)

    def _link_into(self, target: Path, raw: bytes) -> bool:
        """Create ``target`` holding ``raw`` unless it exists; return whether it was created."""
        # link(2) refuses an existing target, so create-if-absent is atomic without a lock file.
        temporary = self._write_temporary(target.parent, raw)
        try:
            os.link(temporary, target)
        except FileExistsError:
            _refuse_folder(target)  # not a key that exists: no retry would ever create it
            return False
        finally:
            Path(temporary).unlink(missing_ok=True)
        _fsync_directory(target.parent)
        return True

    @contextmanager
    def _flock(self, lock_path: Path) -> Iterator[int]:
        self._make_directories(lock_path.parent)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield fd
        finally:
            os.close(fd)

    def _walk(self, prefix: str) -> list[tuple[str, Path]]:
        """Every key file under the string ``prefix``, expired ones included, sorted by key."""
        # A plain string prefix, as dotflow's ABC and S3 mean it: "a/b" matches "a/b" and "a/bc",
        # "a/b/" only keys inside the folder "a/b".
        folder, _, rest = prefix.rpartition("/")
        base = self._path(folder) if folder else self.root
        if not base.is_dir():
            self._check_root()
            return []
        found = []
        for directory, subdirectories, files in os.walk(base, onerror=_raise):
            top = directory == str(base)
            # Only folders that can hold a matching key: at the top, those starting with the rest.
            subdirectories[:] = [
                name for name in subdirectories if _INTERNAL not in name and (not top or name.startswith(rest))
            ]
            relative = Path(directory).relative_to(self.root).as_posix()
            for name in files:
                key = name if relative == "." else f"{relative}/{name}"
                if _INTERNAL not in name and key.startswith(prefix):
                    found.append((key, Path(directory, name)))
        return sorted(found)

    # -- primitives ---------------------------------------------------------------------------

    def read_versioned(self, key: str) -> tuple[bytes | None, str | None]:
        raw = self._read_raw(key)
        data = None if raw is None else _open(raw, key=key, signer=self._signer, where=self._where())
        if data is None:
            return None, None
        # The version covers the header too: rewriting a value with another expiry is a change.
        return data, hashlib.sha256(raw).hexdigest()

    def read_bytes(self, key: str) -> bytes | None:
        # read_versioned without the version: no hash of a value nobody compares.
        raw = self._read_raw(key)
        return None if raw is None else _open(raw, key=key, signer=self._signer, where=self._where())

    def exists(self, key: str) -> bool:
        # The expiry header decides: reading (and hashing) a whole payload to learn it exists is
        # waste. In a signed store this does not check the signature; every read of the value does.
        return bool(self._is_live(key, self._path(key), "read"))

    def write_bytes(self, key: str, data: bytes, *, ttl: float | None = None) -> None:
        _check_ttl(ttl)
        target = self._path(key)
        raw = _seal(data, ttl, key=key, signer=self._signer)
        with self._os_errors("write", f"key {key!r}"):
            self._replace_into(target, raw)

    def write_bytes_if(
        self, key: str, data: bytes, *, expected_version: str | None, ttl: float | None = None
    ) -> bool:
        _check_ttl(ttl)
        target = self._path(key)
        raw = _seal(data, ttl, key=key, signer=self._signer)
        with self._os_errors("write", f"key {key!r}"):
            if expected_version is None and self._link_into(target, raw):
                return True
            with self._flock(target.parent / f"{_INTERNAL}{target.name}.lock"):
                current = self._read_raw(key)
                if current is None:
                    _refuse_folder(target)  # a folder of other keys reads as absent, yet can never be written
                live = current is not None and _without_header(current) is not None
                if expected_version is None:
                    if current is None:
                        # Deleted since the link failed; racing creators still settle it by link(2).
                        return self._link_into(target, raw)
                    if live:
                        return False
                    # Expired: absent as far as readers know. Every writer that expects an
                    # absent key comes through this lock, so replacing it here cannot race one.
                elif not live or hashlib.sha256(current).hexdigest() != expected_version:
                    return False
                self._replace_into(target, raw)
                return True

    def delete(self, key: str) -> bool:
        return self._delete(key, self._path(key), sync=True)

    def _delete(self, key: str, path: Path, *, sync: bool) -> bool:
        live = self._is_live(key, path, "delete")
        if live is None:
            return False
        with self._os_errors("delete", f"key {key!r}"):
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            if sync:
                _fsync_directory(path.parent)
        return live

    def list_keys(self, prefix: str) -> list[str]:
        with self._os_errors("list", f"keys under {prefix!r}"):
            return [key for key, path in self._walk(prefix) if self._is_live(key, path, "list")]

    def delete_prefix(self, prefix: str) -> int:
        """Remove every key under ``prefix`` (expired ones too); return how many live ones were removed."""
        with self._os_errors("delete", f"keys under {prefix!r}"):
            found = self._walk(prefix)
            removed = sum(1 for key, path in found if self._delete(key, path, sync=False))
            for directory in sorted({path.parent for _, path in found}):
                try:
                    _fsync_directory(directory)
                except FileNotFoundError:
                    pass  # pruned meanwhile by another writer
            if prefix.endswith("/"):
                self._prune_empty_directories(self._path(prefix.rstrip("/")))
        return removed

    def copy_prefix(self, source: str, destination: str) -> int:
        """Copy every live key under the folder ``source`` under ``destination``, expiry included.

        A signed store checks each object and signs it for its new key.
        """
        copied = 0
        for key in self.list_keys(source):
            raw = self._read_raw(key)
            if raw is None:
                continue
            target = destination + key[len(source) :]
            if self._signer is None:
                copy = raw if _without_header(raw) is not None else None
            else:
                copy = _reseal(raw, source=key, target=target, signer=self._signer, where=self._where())
            if copy is not None:
                with self._os_errors("write", f"key {target!r}"):
                    self._replace_into(self._path(target), copy)
                copied += 1
        return copied

    def read_raw(self, key: str) -> bytes | None:
        return self._read_raw(key)

    def leftover_temporaries(self, *, older_than_seconds: float = 60.0) -> list[str]:
        """Temporary files of writes that never finished (a crash before the rename), by path.

        A writer removes its own within moments; one older than ``older_than_seconds`` was left
        by a process that died, and younger ones may be writes still under way.
        """
        self._check_root()
        if not self.root.is_dir():
            return []
        cutoff = time.time() - older_than_seconds
        found = []
        with self._os_errors("list", "temporary files"):
            for directory, _, files in os.walk(self.root, onerror=_raise):
                for name in files:
                    path = Path(directory, name)
                    if name.startswith(_TEMPORARY_PREFIX) and _modified_before(path, cutoff):
                        found.append(str(path))
        return sorted(found)

    def _prune_empty_directories(self, top: Path) -> None:
        if not top.is_dir():
            return
        for directory, _, _ in sorted(os.walk(top), key=lambda entry: len(entry[0]), reverse=True):
            try:
                Path(directory).rmdir()
            except OSError:
                pass  # still holds lock files or keys written meanwhile

    @contextmanager
    def run_lock(
        self,
        workflow_id: str,
        *,
        wait_seconds: float = 0.0,
        on_wait: Callable[[str], None] | None = None,
    ) -> Iterator[None]:
        """Hold ``workflow_id``'s run lock (an ``flock`` on ``workflows/<id>/#run.lock``).

        See ``DotflowStore.run_lock``. While waiting, the lock is polled without blocking, with
        short jittered sleeps (at most 0.25 s), so the wait ends at its deadline.
        """
        if isinstance(wait_seconds, bool) or not isinstance(wait_seconds, int | float) or not wait_seconds >= 0:
            raise ValueError(f"wait_seconds must be a number >= 0, got {wait_seconds!r}")
        subject = f"the run lock of workflow {workflow_id!r}"
        lock_path = self._path(f"workflows/{workflow_id}") / f"{_INTERNAL}run.lock"
        with self._os_errors("take", subject):
            self._make_directories(lock_path.parent)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            holder = self._try_lock(fd, subject)
            if holder is not None:
                if not wait_seconds:
                    raise RunInProgressError(workflow_id=workflow_id, holder=holder)
                wait_for_lock(
                    lambda: self._try_lock(fd, subject),
                    workflow_id=workflow_id,
                    holder=holder,
                    wait_seconds=wait_seconds,
                    on_wait=on_wait,
                )
            with self._os_errors("take", subject):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
            yield  # not inside _os_errors: an OSError of the caller's block is the caller's
        finally:
            os.close(fd)

    def _try_lock(self, fd: int, subject: str) -> str | None:
        """Take the lock without blocking: ``None`` once held, else the holder's description."""
        with self._os_errors("take", subject):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return None
            except BlockingIOError:
                return os.pread(fd, 200, 0).decode(errors="replace").strip()

