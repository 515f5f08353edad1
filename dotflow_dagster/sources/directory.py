"""``DirectorySource``: payloads arrive as ``<workflow_id>.json`` files in one directory.

Writers must make a file appear complete: write it under a temporary name in the same
directory (``orders.json.tmp`` or ``.orders.json``), then rename it to ``orders.json``
(``os.replace``, ``mv``); a rename within one filesystem is atomic. Temporary names are never
read. For writers that cannot rename, a file that does not parse is left alone while it is
younger than ``settle_seconds`` (it is probably still being written) and looked at again on the
next scan; this cannot catch a half-written file that happens to parse (``12`` of ``123``), so
renaming is the only safe way.
"""

import os
import stat
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import orjson

from dotflow_dagster.sources.base import ArrivedPayload, BadPayload, PayloadSource, Scan, ScanItem, decode_json
from dotflow_dagster.workflow import validate_workflow_id

__all__ = ["DirectorySource"]

_SUFFIX = ".json"
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_CHUNK = 1 << 20


def _version(status: os.stat_result) -> str:
    # ctime too: chmod, chown and renames leave mtime and size alone, and a file that could not
    # be read must be read again once its permissions change.
    return f"{status.st_mtime_ns}:{status.st_ctime_ns}:{status.st_size}"


def _read_bytes(path: str, limit: int) -> tuple[bytes, os.stat_result]:
    """Read at most ``limit + 1`` bytes of ``path``, with the ``fstat`` of the open file.

    ``O_NONBLOCK`` keeps a FIFO swapped in after the listing from blocking the open; the caller
    refuses anything that is not a regular file. Raises ``OSError`` as ``os.open`` does.
    """
    fd = os.open(path, _OPEN_FLAGS)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            return b"", status
        remaining = limit + 1
        # One read of the whole file (size + 1 sees the end), without allocating ``limit`` bytes
        # for a small file when the limit is large; a file that grew is read in chunks.
        chunks = []
        request = min(remaining, status.st_size + 1)
        while remaining > 0:
            chunk = os.read(fd, request)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
            request = min(remaining, _CHUNK)
        return b"".join(chunks), status
    finally:
        os.close(fd)


class DirectorySource(PayloadSource):
    """Payloads as ``<workflow_id>.json`` files directly in ``path`` (not in subdirectories).

    Each file holds one JSON document, decoded with :func:`~dotflow_dagster.sources.base.decode_json`
    (orjson, with integers beyond 64 bits kept exact): any JSON value is a payload (an
    object, a list, a number...); whether a workflow accepts it is up to its steps. The file's
    name without ``.json`` is the workflow_id; a ``.json`` file whose name is not a valid
    workflow_id is a :class:`BadPayload`. Names starting with ``.`` and names not ending in
    ``.json`` (so ``x.json.tmp``, ``x.json~``, ``x.json.swp``, ``x.json.part``) are ignored
    entirely, as are subdirectories and anything else that is not a regular file (a symlink
    to a regular file counts as one). ``.JSON`` is not ``.json``.

    A scan lists the directory once with ``os.scandir`` and one ``stat`` per ``.json`` file;
    a file's version is ``"<st_mtime_ns>:<st_ctime_ns>:<st_size>"``. Only files whose version
    differs from ``known`` are opened, so a tick over 10,000 unchanged files reads none of them.
    Touching a file (a new mtime, the same content), or changing its permissions, owner or links
    (a new ctime: a file that could not be read is read once it can be), makes it changed: it is
    read and yielded again, and the sensor drops it by fingerprint. (Versions written before
    ctime was part of them make every file changed once, with the same outcome.) Locations are absolute path strings under the resolved
    ``path``; ``Scan.present`` holds every ``.json`` file listed, bad ones included.

    Changed files are yielded lazily, sorted by name:

    * a file larger than ``max_payload_bytes`` is bad without being opened (and reading stops
      after ``max_payload_bytes + 1`` bytes if it grew since the listing);
    * a file that does not parse is skipped, neither yielded nor bad, while its mtime is less
      than ``settle_seconds`` from now (it may still be being written: see the module
      docstring); after that it is bad, with orjson's message; one holding an integer of more
      than 4300 digits (Python's limit) is bad at once;
    * a file that disappears before it is read is skipped; one that cannot be read (permission)
      is bad, with the operating system's reason.

    A bad file is reported once per version: the sensor remembers its version like any other.

    Args:
        path: the directory payloads arrive in. Resolved (``~``, symlinks, relative to the
            working directory) once, here. It need not exist yet, but :meth:`scan` raises
            ``FileNotFoundError`` if it is missing then: a missing inbox is a configuration
            error, never an empty inbox.
        settle_seconds: how long after its last modification a file that does not parse is
            presumed to be still being written.

    Example:
        >>> import os, tempfile
        >>> from dotflow_dagster.sources import DirectorySource
        >>> inbox = tempfile.mkdtemp()
        >>> with open(os.path.join(inbox, "orders.json.tmp"), "w") as f:  # write, then rename
        ...     _ = f.write('{"rows": 3}')
        >>> os.replace(os.path.join(inbox, "orders.json.tmp"), os.path.join(inbox, "orders.json"))
        >>> source = DirectorySource(inbox)
        >>> scan = source.scan(known={}, max_payload_bytes=1_000_000)
        >>> items = list(scan.items)
        >>> [(item.workflow_id, item.payload) for item in items]
        [('orders', {'rows': 3})]
        >>> known = {item.location: item.version for item in items}
        >>> list(source.scan(known=known, max_payload_bytes=1_000_000).items)  # unchanged: not opened
        []
    """

    def __init__(self, path: str | os.PathLike[str], *, settle_seconds: float = 1.0) -> None:
        if not settle_seconds >= 0:
            raise ValueError(f"settle_seconds must be >= 0, not {settle_seconds!r}")
        self._path = Path(path).expanduser().resolve()
        self._directory = str(self._path)
        self._settle_ns = int(settle_seconds * 1_000_000_000)

    def __repr__(self) -> str:
        return f"DirectorySource({self._directory!r})"

    @property
    def path(self) -> Path:
        """The resolved directory."""
        return self._path

    @property
    def key(self) -> str:
        """``"directory:<resolved path>"``."""
        return f"directory:{self._directory}"

    def scan(self, *, known: Mapping[str, str], max_payload_bytes: int) -> Scan:
        """List the directory now; read the changed files lazily, sorted by name.

        Args:
            known: ``location -> version`` from the previous scans.
            max_payload_bytes: files larger than this are bad without being read.

        Raises:
            FileNotFoundError: the directory does not exist.
            NotADirectoryError: ``path`` is not a directory.
            OSError: the directory cannot be listed (e.g. ``PermissionError``).
            ValueError: ``max_payload_bytes`` is not an int >= 0.
        """
        if isinstance(max_payload_bytes, bool) or not isinstance(max_payload_bytes, int) or max_payload_bytes < 0:
            raise ValueError(f"max_payload_bytes must be an int >= 0, not {max_payload_bytes!r}")
        present: list[str] = []
        # (name, location, version, size or None when stat failed, stat error)
        changed: list[tuple[str, str, str, int | None, OSError | None]] = []
        known_version = known.get
        try:
            with os.scandir(self._directory) as entries:
                for entry in entries:
                    name = entry.name
                    if name[0] == "." or not name.endswith(_SUFFIX):
                        continue
                    location = entry.path  # the resolved directory + name: absolute
                    try:
                        if not entry.is_file():  # from the listing's d_type: no syscall
                            continue
                        status = entry.stat()
                    except FileNotFoundError:  # deleted since the listing, or a dangling symlink
                        continue
                    except OSError as error:  # a symlink loop, say: bad, once per errno
                        version = f"error:{error.errno}"
                        present.append(location)
                        if known_version(location) != version:
                            changed.append((name, location, version, None, error))
                        continue
                    version = _version(status)
                    present.append(location)
                    if known_version(location) != version:
                        changed.append((name, location, version, status.st_size, None))
        except FileNotFoundError:
            raise FileNotFoundError(
                f"payload directory {self._directory} does not exist: create it, or fix DirectorySource's path"
            ) from None
        except NotADirectoryError:
            raise NotADirectoryError(f"payload directory {self._directory} is not a directory") from None
        except OSError as error:
            raise type(error)(f"cannot list payload directory {self._directory}: {error.strerror or error}") from error
        changed.sort()
        return Scan(present=frozenset(present), items=self._items(changed, max_payload_bytes))

    def _items(
        self, changed: list[tuple[str, str, str, int | None, OSError | None]], max_payload_bytes: int
    ) -> Iterator[ScanItem]:
        for name, location, version, size, stat_error in changed:
            workflow_id = name[: -len(_SUFFIX)]
            try:
                validate_workflow_id(workflow_id)
            except ValueError as error:
                yield BadPayload(location=location, version=version, reason=f"{location}: {error}")
                continue
            if stat_error is not None:
                reason = f"cannot stat {location}: {stat_error.strerror or stat_error}"
                yield BadPayload(location=location, version=version, reason=reason, workflow_id=workflow_id)
                continue
            if size is not None and size > max_payload_bytes:
                reason = f"{location} is {size} bytes, over max_payload_bytes={max_payload_bytes}"
                yield BadPayload(location=location, version=version, reason=reason, workflow_id=workflow_id)
                continue
            item = self._read(location, version, workflow_id, max_payload_bytes)
            if item is not None:
                yield item

    def _read(self, location: str, version: str, workflow_id: str, max_payload_bytes: int) -> ScanItem | None:
        try:
            data, status = _read_bytes(location, max_payload_bytes)
        except FileNotFoundError:  # deleted (or renamed away) since the listing
            return None
        except OSError as error:
            reason = f"cannot read {location}: {error.strerror or error}"
            return BadPayload(location=location, version=version, reason=reason, workflow_id=workflow_id)
        # The open file's own version: a change after this fstat gets a new version next scan.
        version = _version(status)
        if not stat.S_ISREG(status.st_mode):
            reason = f"{location} is not a regular file"
            return BadPayload(location=location, version=version, reason=reason, workflow_id=workflow_id)
        if len(data) > max_payload_bytes:  # it grew after the listing
            size = f"{status.st_size} bytes" if status.st_size > max_payload_bytes else f"at least {len(data)} bytes"
            reason = f"{location} is {size}, over max_payload_bytes={max_payload_bytes}"
            return BadPayload(location=location, version=version, reason=reason, workflow_id=workflow_id)
        try:
            payload = decode_json(data)
        except orjson.JSONDecodeError as error:
            if abs(time.time_ns() - status.st_mtime_ns) < self._settle_ns:
                return None  # probably still being written: looked at again next scan
            reason = f"invalid JSON in {location}: {error}"
            return BadPayload(location=location, version=version, reason=reason, workflow_id=workflow_id)
        except ValueError as error:  # valid JSON, but an integer Python cannot hold
            reason = f"cannot read {location}: {error}"
            return BadPayload(location=location, version=version, reason=reason, workflow_id=workflow_id)
        return ArrivedPayload(workflow_id=workflow_id, payload=payload, location=location, version=version)
