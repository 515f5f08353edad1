"""Stable payload fingerprints: one sha256 hex digest per payload, the same in every process.

A fingerprint names a payload for resuming and for the input-change policy, so it must depend
on the payload's data only: never on the process, ``PYTHONHASHSEED``, the machine, dict
insertion order or set iteration order. Values are hashed through a canonical encoding; a
value without one raises :class:`FingerprintError` naming its path instead of falling back to
``repr`` (which embeds memory addresses and changes between runs).

Example:
    >>> from dotflow_dagster.fingerprint import fingerprint
    >>> digest = fingerprint({"order": 7, "tags": {"gift", "express"}})
    >>> digest == fingerprint({"tags": {"express", "gift"}, "order": 7})
    True
    >>> digest == fingerprint({"order": 7, "tags": ["gift", "express"]})
    False
    >>> len(digest)
    64

Encoding rules (what gets the same digest and what is told apart):

* Pure JSON (``dict`` with ``str`` keys, ``list``, ``str``, ``int`` from -2**63 to
  2**64 - 1, finite ``float``, ``bool``, ``None``) is hashed as
  ``sha256(b"J" + orjson.dumps(payload, option=OPT_SORT_KEYS))``.
  Mappings (``OrderedDict``, ``MappingProxyType``...), ``list`` subclasses and
  ``str``/``int``/``float`` subclasses that are not enums count as their base type, so an
  ``OrderedDict`` gets the digest of the equal ``dict``.
* ``1``, ``True`` and ``1.0`` differ, as do ``0.0`` and ``-0.0`` (their JSON texts differ).
  ``{1: x}`` and ``{"1": x}`` differ.
* Tuples differ from lists. Payloads that arrive from queues are JSON and never hold tuples,
  so a tuple is a choice made in Python code, and equating it with a list would hide it.
* ``set`` and ``frozenset`` with the same elements are equal (Python says so too); element
  order never matters.
* ``NaN``, ``inf`` and ``-inf`` are distinct from each other and from ``None`` (``json`` and
  ``orjson`` would write ``null`` or non-JSON tokens for them).
* Integers beyond 64 bits are supported (encoded in hexadecimal, which Python's 4300-digit
  int-to-decimal limit does not apply to). So are strings holding lone surrogates, which
  ``json.loads`` produces from ``"\\ud800"`` and which are not valid UTF-8.
* ``Decimal``: equal values are equal (``Decimal("1.0")`` and ``Decimal("1.00")``), through
  ``normalize()`` under a context of unlimited precision and exponent range (the default
  context would round to 28 digits and overflow on huge exponents). ``Decimal("-0")`` equals
  ``Decimal("0")``; NaN, sNaN and the infinities keep their sign. A ``Decimal`` is distinct
  from the ``int`` or ``float`` of the same value.
* Timezone-aware ``datetime`` values are compared as instants: the same instant in two zones
  gives one digest. Naive datetimes are distinct from aware ones. ``date``, ``time`` (aware
  times compared as UTC, as Python does) and ``timedelta`` are supported.
* ``UUID``; ``bytes`` equals the ``bytearray`` of the same content; ``PurePath`` and ``Path``
  by ``as_posix()``.
* Enum members by the enum class (module and qualified name), member name and value; a
  ``str`` or ``int`` enum member is distinct from its plain value, although it compares equal
  to it.
* Dataclass instances by class (module and qualified name) and every field from
  ``dataclasses.fields()``. Pydantic v2 models by class and ``model_dump(mode="python")``
  (detected by duck typing; pydantic is not imported). Classes defined in ``__main__`` are
  named ``__main__.X`` there and ``package.module.X`` when imported, which changes the digest.
* Anything else (plain objects, functions, files, ``complex``, ``deque``...) raises
  :class:`FingerprintError`, and so do reference cycles and payloads nested more deeply than
  the encoder accepts: 254 levels, where a tuple, set, dataclass or other tagged value takes up
  to three. Such a depth error names root, or the set or mapping whose element or key is too
  deep; no nesting, through any type, raises ``RecursionError`` or crashes the process.

Error paths use DeepDiff notation: ``root['items'][3]`` for keys and indexes, ``.field`` for
dataclass fields (``root['order'].customer``) and, because a pydantic model is hashed through
its ``model_dump()`` dict, keys for model fields (``root['order']['customer']``).

How: a payload is first checked, at C speed, to be a tree of exact plain-JSON types no deeper
than orjson's nesting limit, then encoded by orjson, and its floats are checked to be finite
if the output holds a null. The check comes first because orjson writes tuples, NaN, UUIDs and
enum members as plain JSON without complaint, and because its nesting limit does not count
tuples (a tuple nested a few thousand deep corrupts its heap and aborts the process). Anything
else, including a large payload that reaches one dict or list along two paths, is walked in
Python into a tagged canonical tree, about four times slower; ``bench/fingerprint.py``
measures both.

Digest format: payloads whose canonical form is plain JSON are hashed in the ``J`` domain
shown above, whichever code path produced the bytes. Payloads holding any other type are
hashed as ``sha256(b"T" + bytes)``, where each non-JSON value becomes a tagged object
``{"\\u0000dotflow": <tag>, "v": ...}`` and a user dict that itself holds the key
``"\\u0000dotflow"`` is wrapped in a ``dict`` tag, so plain data can never imitate a tag.
The byte format is part of the contract: changing it changes every stored fingerprint.
"""

import dataclasses
import gc
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal
from enum import Enum
from functools import lru_cache, partial
from hashlib import sha256
from itertools import compress, repeat
from operator import is_, itemgetter
from pathlib import PurePath
from typing import Any
from uuid import UUID

import orjson

from dotflow_dagster.paths import PayloadPath, format_path, parse_paths, without_paths

__all__ = ["fingerprint", "FingerprintError"]

_TAG = "\u0000dotflow"

_SUPPORTED = (
    "dict/Mapping, list, tuple, set/frozenset, str, int, float, bool, None, Decimal, datetime, "
    "date, time, timedelta, UUID, bytes/bytearray, PurePath, Enum, dataclass, pydantic model"
)

# By default orjson writes datetimes as ISO strings, dataclasses as objects and str/int/dict/list
# subclasses as their base value, each colliding with plain JSON. The passthrough options send
# them to `default` instead, which aborts the encoding so the slow path tags them.
_FAST_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)

# orjson's own integer range; the slow path must draw the plain/tagged line exactly here so a
# payload gets the same bytes whichever path encodes it.
_MIN_INT = -(2**63)
_MAX_INT = 2**64 - 1

_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)

_encode: Callable[[Any], bytes] = partial(orjson.dumps, option=orjson.OPT_SORT_KEYS)


class FingerprintError(TypeError):
    """A payload value has no stable canonical encoding, so it cannot be fingerprinted.

    A ``TypeError`` because the payload holds a value of an unsupported type (or a reference
    cycle, or nesting too deep to encode); the message names the path and the type so the
    value can be found, converted or listed in ``ignore_paths``.

    Attributes:
        path: DeepDiff-style path of the offending value, e.g. ``"root['items'][3]"``.
        value_type: the offending value's type name, e.g. ``"Foo"``.
    """

    def __init__(self, message: str, *, path: str, value_type: str) -> None:
        super().__init__(message)
        self.path = path
        self.value_type = value_type

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only attributes are lost by BaseException's default pickling, and errors
        # cross process boundaries in Dagster.
        return (partial(type(self), path=self.path, value_type=self.value_type), (str(self),))


def fingerprint(payload: Any, *, ignore_paths: Iterable[str] = ()) -> str:
    """Return the sha256 hex digest of ``payload``'s canonical encoding.

    Args:
        payload: the value to fingerprint; see the module docstring for the supported types
            and which values are told apart.
        ignore_paths: DeepDiff-style paths (``"root['received_at']"``) of values left out of
            the fingerprint, such as timestamps or delivery ids that change on every
            redelivery. Paths reach into mappings, lists, tuples and dataclass or pydantic
            fields; all apply at once to the original payload; absent paths are skipped.

    Returns:
        64 lowercase hexadecimal characters.

    Raises:
        FingerprintError: a value has no canonical encoding; the message names its path.
        ValueError: an ignore path cannot be parsed; the message names it.

    Example:
        >>> from dotflow_dagster.fingerprint import fingerprint
        >>> first = fingerprint({"id": 1, "received_at": "09:00"}, ignore_paths=["root['received_at']"])
        >>> first == fingerprint({"id": 1, "received_at": "09:05"}, ignore_paths=["root['received_at']"])
        True
    """
    if isinstance(ignore_paths, str):
        raise TypeError(f"ignore_paths must be an iterable of paths, not the single string {ignore_paths!r}")
    paths = tuple(ignore_paths)
    if paths:
        payload = without_paths(payload, _parse_ignore_paths(paths))
    encoded = _fast_encoding(payload)
    if encoded is not None:
        domain = b"J"
    else:
        domain, encoded = _slow_encoding(payload)
    digest = sha256(domain)
    digest.update(encoded)
    return digest.hexdigest()


def _parse_ignore_paths(paths: tuple[Any, ...]) -> tuple[PayloadPath, ...]:
    try:
        return _parse_cached(paths)
    except TypeError:
        # Unhashable entries cannot be cached; parse_paths reports them as invalid paths.
        return parse_paths(paths)


@lru_cache(maxsize=256)
def _parse_cached(paths: tuple[str, ...]) -> tuple[PayloadPath, ...]:
    return parse_paths(paths)


# --- fast path: plain JSON, encoded and checked at C speed --------------------------------------


class _NotJSON(Exception):
    pass


def _refuse(value: Any) -> Any:
    raise _NotJSON


def _fast_encoding(payload: Any) -> bytes | None:
    """orjson's bytes for ``payload`` if it is plain JSON that orjson encodes faithfully, else None."""
    if not _CPYTHON:
        return None
    # Checked before orjson sees it: orjson's nesting limit does not count tuples, and a tuple
    # nested a few thousand deep corrupts its heap and aborts the process.
    unchecked_floats = _walk_plain_json(payload)
    if unchecked_floats is None:
        return None
    try:
        # The passthrough options and `default` only back up the check: anything it let through
        # that orjson would write as plain JSON is refused instead.
        encoded = orjson.dumps(payload, default=_refuse, option=_FAST_OPTIONS)
    except orjson.JSONEncodeError:
        # Big ints, lone surrogates, non-str keys.
        return None
    # orjson writes NaN and the infinities as null, so without a null no float needs checking.
    if unchecked_floats and b"null" in encoded and not _all_finite_levels(unchecked_floats):
        return None
    return encoded


def _only_plain_json(payload: Any, *, maybe_nan: bool) -> bool:
    """True if the fast path may encode ``payload``: the check alone, as ``bench/fingerprint.py`` times it.

    ``maybe_nan`` also checks the floats the walk leaves for after encoding.
    """
    unchecked_floats = _walk_plain_json(payload)
    return unchecked_floats is not None and (not maybe_nan or _all_finite_levels(unchecked_floats))


_NONE_TYPE = type(None)
_PLAIN_JSON_TYPES = frozenset({dict, list, str, int, float, bool, _NONE_TYPE})

# The plain-JSON check relies on CPython's gc.get_referents visiting every dict value and list
# item, and on its reference counts. Elsewhere the slow path produces the same digests, only slower.
_CPYTHON = sys.implementation.name == "cpython"

# orjson refuses dicts and lists nested deeper than this. A payload checked to hold nothing
# else and to be no deeper never reaches the part of orjson that ignores its own limit.
_ORJSON_MAX_DEPTH = 254

_FloatLevels = list[tuple[list[Any], list[type]]]


def _walk_plain_json(payload: Any) -> _FloatLevels | None:
    """The levels whose floats are left to check after encoding, if ``payload`` is a plain-JSON tree; else None.

    A plain-JSON tree holds only values of exact plain-JSON types and nests no deeper than
    orjson accepts; past the first few thousand values it must also reach no dict or list
    twice (see _SharingGuard). The walk goes one level at a time with C-speed builtins only:
    gc.get_referents yields the values of every dict and the items of every list in a level
    (through the tp_traverse the garbage collector itself relies on; leaves have no
    referents), and the level's exact types are checked as one set, so subclasses, enums,
    tuples and UUIDs all fail. Types are checked before a level is traversed, so only dicts
    and lists are ever traversed.
    """
    level = [payload]
    unchecked_floats: _FloatLevels = []
    holds_none = False
    unguarded = _UNGUARDED_VALUES
    guard: _SharingGuard | None = None
    plain_types, none_type = _PLAIN_JSON_TYPES, _NONE_TYPE  # locals: small payloads pay per level
    # A tree of depth d has d levels of containers and one of leaves.
    for _ in range(_ORJSON_MAX_DEPTH + 1):
        types = list(map(type, level))
        kinds = set(types)
        if not kinds <= plain_types:
            return None
        holds_none = holds_none or none_type in kinds
        if float in kinds:
            # orjson will write a null for the None, so the floats need checking anyway: check
            # them now, while the level is in cache. Before the first None, it may never come.
            if not holds_none:
                unchecked_floats.append((level, types))
            elif not _all_finite(level, types):
                return None
        if dict not in kinds and list not in kinds:
            return unchecked_floats
        unguarded -= len(level)
        if unguarded < 0:
            guard = guard or _SharingGuard(payload)
            if guard.meets_again(level):
                return None
        level = gc.get_referents(*level)
    return None


# Small payloads skip the sharing guard, whose cost is bounded without it: within this many
# values a container is met again at most this many times, and having been traversed once
# within them, it yields at most this many values each time.
_UNGUARDED_VALUES = 2048


class _SharingGuard:
    """Stops the level walk before it traverses a dict or list a second time.

    A level walk keeps no visited set: a container reached along two paths (shared, or in a
    cycle) is traversed once per path, so back-references multiply the levels until memory
    runs out, where orjson would have refused the cycle at once. A visited set of every
    container would double the walk's cost; CPython's reference counts show extra owners
    instead. Every container held by a single list or dict slot has the same count here, so
    only levels holding one with more are remembered by id, and meeting a remembered container
    again, in the same level or a later one, hands the payload to the slow path (which reports
    cycles and encodes shared values correctly).
    """

    __slots__ = ("seen",)

    def __init__(self, payload: Any) -> None:
        self.seen = {id(payload)}

    def meets_again(self, level: list[Any]) -> bool:
        if _max_container_refcount(level) <= _SOLE_OWNER_REFCOUNT:
            return False
        containers = list(filter(gc.is_tracked, level))
        before = len(self.seen)
        self.seen.update(map(id, containers))
        return len(self.seen) - before < len(containers)


def _max_container_refcount(level: list[Any]) -> int:
    # CPython untracks a dict only while it holds no containers (untracked tuples aside), so an
    # untracked dict is in no cycle and has nothing to traverse twice.
    return max(map(sys.getrefcount, filter(gc.is_tracked, level)), default=0)


def _sole_owner_refcount() -> int:
    """The count _max_container_refcount gives for a list held by one slot.

    Measured rather than assumed, through the same call and with the level list alive as in
    the walk: the temporary references held while counting differ between CPython versions.
    """
    if not _CPYTHON:
        return 0
    holder = [[]]
    level = gc.get_referents(holder)
    return _max_container_refcount(level)


_SOLE_OWNER_REFCOUNT = _sole_owner_refcount()


def _all_finite_levels(levels: _FloatLevels) -> bool:
    for values, types in levels:  # a loop, not all(generator): small payloads feel its setup
        if not _all_finite(values, types):
            return False
    return True


def _all_finite(values: list[Any], types: list[type]) -> bool:
    # A sum is finite only if every term is; an infinite sum of finite terms (overflow) is
    # rare enough to settle with a second, exact pass.
    if math.isfinite(sum(compress(values, map(is_, types, repeat(float))))):
        return True
    return all(map(math.isfinite, compress(values, map(is_, types, repeat(float)))))


# --- slow path: a tagged canonical tree, walked in Python ----------------------------------------


class _Attr:
    """A dataclass field on an error path, rendered as ``.name``."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


class _Failure(Exception):
    """Raised inside the walk; containers prepend their key while it unwinds, so paths are free."""

    def __init__(
        self, value_type: str, problem: str, *, cause: BaseException | None = None, located: bool = True
    ) -> None:
        self.value_type = value_type
        self.problem = problem
        self.cause = cause
        # Nesting failures are reported at root (the path down to the 254th level says little),
        # unless a set element or mapping key locates them.
        self.located = located
        self.what = "value"
        self.elements: list[Any] = []

    def inside(self, element: Any) -> "_Failure":
        if self.located:
            self.elements.append(element)
        return self

    def within(self, what: str) -> "_Failure":
        # A failure inside a key or set element has no path of its own; point at the container.
        self.what = what
        self.elements.clear()
        self.located = True
        return self

    def to_error(self) -> FingerprintError:
        elements = self.elements[::-1]
        path = "root"
        keys: list[Any] = []
        for element in elements:
            if isinstance(element, _Attr):
                path += format_path(keys)[len("root") :] + "." + element.name
                keys = []
            else:
                keys.append(element)
        path += format_path(keys)[len("root") :]
        message = f"cannot fingerprint {self.what} at {path}: {self.problem}"
        return FingerprintError(message, path=path, value_type=self.value_type)


def _unsupported(value: Any) -> _Failure:
    name = type(value).__qualname__
    return _Failure(name, f"unsupported type {name!r} (supported: {_SUPPORTED})")


_TOO_DEEP = (
    "nested more deeply than the encoder accepts (254 levels, where a tuple, set, dataclass or "
    "other tagged value takes up to three)"
)


def _too_deep_failure(value: Any) -> _Failure:
    return _Failure(type(value).__qualname__, f"it is {_TOO_DEEP}", located=False)


class _Walk:
    """One canonicalisation of a payload; ``tags`` counts the non-JSON values it met."""

    __slots__ = ("escape", "tags", "escaped", "active")

    def __init__(self, *, escape: bool) -> None:
        self.escape = escape
        self.tags = 0
        self.escaped = False
        self.active: set[int] = set()

    def tag(self, kind: str, value: Any) -> dict[str, Any]:
        self.tags += 1
        return {_TAG: kind, "v": value}

    def enter(self, container: Any) -> int:
        key = id(container)
        active = self.active
        if key in active:
            name = type(container).__qualname__
            raise _Failure(name, f"this {name!r} contains itself (a reference cycle); payloads must be trees")
        if len(active) >= _ORJSON_MAX_DEPTH:
            # Every container adds at least one level to the canonical tree, so orjson would
            # refuse it; stopping here also keeps the walk's recursion far from Python's limit.
            raise _too_deep_failure(container)
        active.add(key)
        return key

    def walk(self, value: Any) -> Any:
        cls = type(value)
        if cls is str:
            return value if value.isascii() else self.text(value)
        if cls is int:
            return value if _MIN_INT <= value <= _MAX_INT else self.tag("int", format(value, "x"))
        if cls is float:
            # inf - inf and nan - x are nan, which never equals 0.0.
            return value if value - value == 0.0 else self.tag("float", repr(value))
        if cls is dict:
            return self.mapping(value)
        if cls is list:
            return self.sequence(value)
        if value is None or cls is bool:
            return value
        handler = _EXACT_HANDLERS.get(cls)
        if handler is not None:
            return handler(self, value)
        return self.other(value)

    def text(self, value: str) -> Any:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates (json.loads produces them from "\ud800") are valid str but not UTF-8.
            return self.tag("str", value.encode("utf-8", "surrogatepass").hex())
        return value

    # mapping() and sequence() test the common leaves inline (the same rules as walk()):
    # a method call per leaf would dominate the slow path.

    def mapping(self, value: Mapping[Any, Any]) -> Any:
        key = self.enter(value)
        walk = self.walk
        try:
            out: dict[str, Any] = {}
            pairs: list[tuple[bytes, list[Any]]] | None = None
            for k, v in value.items():
                if type(k) is str and k.isascii():
                    canonical_key = k
                else:
                    try:
                        canonical_key = walk(k)
                    except _Failure as failure:
                        raise failure.within("a key of the mapping") from None
                cls = type(v)
                if (
                    (cls is str and v.isascii())
                    or (cls is int and _MIN_INT <= v <= _MAX_INT)
                    or (cls is float and v - v == 0.0)
                    or v is None
                    or cls is bool
                ):
                    canonical_value = v
                else:
                    try:
                        canonical_value = walk(v)
                    except _Failure as failure:
                        raise failure.inside(k) from None
                if pairs is None and type(canonical_key) is str:
                    out[canonical_key] = canonical_value
                else:
                    if pairs is None:
                        pairs = [(_encode(name), [name, item]) for name, item in out.items()]
                    pairs.append(_keyed_pair(k, canonical_key, canonical_value))
        finally:
            self.active.discard(key)
        if pairs is not None:
            return self.tag("map", _sorted_pairs(pairs))
        if self.escape and _TAG in out:
            # Not counted as a tag: a payload whose only oddity is this key stays in the J domain.
            self.escaped = True
            return {_TAG: "dict", "v": out}
        return out

    def sequence(self, value: list[Any] | tuple[Any, ...]) -> list[Any]:
        key = self.enter(value)
        walk = self.walk
        try:
            out = []
            append = out.append
            for index, item in enumerate(value):
                cls = type(item)
                if (
                    (cls is str and item.isascii())
                    or (cls is int and _MIN_INT <= item <= _MAX_INT)
                    or (cls is float and item - item == 0.0)
                    or item is None
                    or cls is bool
                ):
                    append(item)
                    continue
                try:
                    append(walk(item))
                except _Failure as failure:
                    raise failure.inside(index) from None
        finally:
            self.active.discard(key)
        return out

    def tuple_(self, value: tuple[Any, ...]) -> Any:
        return self.tag("tuple", self.sequence(value))

    def set_(self, value: set[Any] | frozenset[Any]) -> Any:
        key = self.enter(value)
        try:
            elements = []
            for element in value:
                try:
                    elements.append(self.walk(element))
                except _Failure as failure:
                    raise failure.within("an element of the set") from None
        finally:
            self.active.discard(key)
        try:
            elements.sort(key=_encode)
        except orjson.JSONEncodeError:
            raise self.too_deep_element(value).within("an element of the set") from None
        return self.tag("set", elements)

    def too_deep_element(self, elements: Iterable[Any]) -> "_Failure":
        # Only on failure: walk the elements again to name the one the encoder refused (or the
        # set, should an element, such as a model with a changing dump, canonicalise differently).
        for element in elements:
            try:
                _sort_bytes(self.walk(element), element)
            except _Failure as failure:
                return failure
        return _too_deep_failure(elements)

    def datetime_(self, value: datetime) -> Any:
        if value.utcoffset() is None:
            return self.tag("datetime", (value - _EPOCH_NAIVE) // _MICROSECOND)
        # Subtracting aware datetimes compares instants and, unlike astimezone(utc), cannot
        # overflow near datetime.min/max.
        return self.tag("datetime-utc", (value - _EPOCH_UTC) // _MICROSECOND)

    def date_(self, value: date) -> Any:
        return self.tag("date", value.toordinal())

    def time_(self, value: time) -> Any:
        micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
        offset = value.utcoffset()
        if offset is None:
            return self.tag("time", micros)
        # Python compares aware times after subtracting their offsets, without wrapping at midnight.
        return self.tag("time-utc", micros - offset // _MICROSECOND)

    def timedelta_(self, value: timedelta) -> Any:
        # Past 106751 days the microseconds leave orjson's 64-bit range: walk() tags them as a big int.
        return self.tag("timedelta", self.walk(value // _MICROSECOND))

    def decimal_(self, value: Decimal) -> Any:
        return self.tag("decimal", _decimal_text(value))

    def uuid_(self, value: UUID) -> Any:
        return self.tag("uuid", value.hex)

    def bytes_(self, value: bytes | bytearray) -> Any:
        return self.tag("bytes", value.hex())

    def enum_(self, value: Enum) -> Any:
        cls = type(value)
        try:
            member_value = self.walk(value.value)
        except _Failure as failure:
            raise failure.inside(_Attr("value")) from None
        return self.tag("enum", [f"{cls.__module__}.{cls.__qualname__}", value.name, member_value])

    def dataclass_(self, value: Any) -> Any:
        cls = type(value)
        key = self.enter(value)
        try:
            fields = {}
            for field in dataclasses.fields(value):
                try:
                    fields[field.name] = self.walk(getattr(value, field.name))
                except _Failure as failure:
                    raise failure.inside(_Attr(field.name)) from None
        finally:
            self.active.discard(key)
        return self.tag("dataclass", [f"{cls.__module__}.{cls.__qualname__}", fields])

    def model_(self, value: Any) -> Any:
        cls = type(value)
        try:
            dumped = value.model_dump(mode="python")
        except Exception as error:
            name = cls.__qualname__
            raise _Failure(name, f"{name}.model_dump() raised {type(error).__name__}", cause=error) from None
        return self.tag("model", [f"{cls.__module__}.{cls.__qualname__}", self.walk(dumped)])

    def other(self, value: Any) -> Any:
        # Enum first: str, int and float enums are also instances of those types.
        if isinstance(value, Enum):
            return self.enum_(value)
        if isinstance(value, Mapping):
            return self.mapping(value)
        if isinstance(value, list):
            return self.sequence(value)
        if isinstance(value, tuple):
            return self.tuple_(value)
        if isinstance(value, set | frozenset):
            return self.set_(value)
        # The base-class methods, because a subclass may override __str__ or __int__.
        if isinstance(value, str):
            return self.walk(str.__str__(value))
        if isinstance(value, int) and not isinstance(value, bool):
            return self.walk(int.__int__(value))
        if isinstance(value, float):
            return self.walk(float.__float__(value))
        if isinstance(value, datetime):
            return self.datetime_(value)
        if isinstance(value, date):
            return self.date_(value)
        if isinstance(value, time):
            return self.time_(value)
        if isinstance(value, timedelta):
            return self.timedelta_(value)
        if isinstance(value, Decimal):
            return self.decimal_(value)
        if isinstance(value, UUID):
            return self.uuid_(value)
        if isinstance(value, bytes | bytearray):
            return self.bytes_(value)
        if isinstance(value, PurePath):
            return self.tag("path", value.as_posix())
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self.dataclass_(value)
        if hasattr(type(value), "model_fields") and hasattr(value, "model_dump") and not isinstance(value, type):
            return self.model_(value)
        raise _unsupported(value)


_EXACT_HANDLERS: dict[type, Callable[[_Walk, Any], Any]] = {
    tuple: _Walk.tuple_,
    set: _Walk.set_,
    frozenset: _Walk.set_,
    datetime: _Walk.datetime_,
    date: _Walk.date_,
    time: _Walk.time_,
    timedelta: _Walk.timedelta_,
    Decimal: _Walk.decimal_,
    UUID: _Walk.uuid_,
    bytes: _Walk.bytes_,
    bytearray: _Walk.bytes_,
}


def _sort_bytes(tree: Any, value: Any) -> bytes:
    """orjson's bytes for a canonical tree, which order set elements and mapping keys."""
    try:
        return _encode(tree)
    except orjson.JSONEncodeError:
        # A canonical tree holds only dicts, lists and plain leaves, so only the nesting limit
        # refuses one (and orjson enforces it for dicts and lists).
        raise _too_deep_failure(value) from None


def _keyed_pair(key: Any, canonical_key: Any, canonical_value: Any) -> tuple[bytes, list[Any]]:
    try:
        return _sort_bytes(canonical_key, key), [canonical_key, canonical_value]
    except _Failure as failure:
        raise failure.within("a key of the mapping") from None


def _sorted_pairs(keyed: list[tuple[bytes, list[Any]]]) -> list[list[Any]]:
    if len({encoded for encoded, _ in keyed}) == len(keyed):
        keyed.sort(key=itemgetter(0))
    else:
        # Distinct keys with one encoding (dataclasses with eq=False): order by value too.
        keyed.sort(key=lambda item: (item[0], _sort_bytes(item[1][1], item[1][1])))
    return [pair for _, pair in keyed]


def _decimal_text(value: Decimal) -> str:
    if not value.is_finite():
        return str(value)  # NaN, sNaN, Infinity with their signs
    if not value:
        # Decimal("-0") == Decimal("0E+5") == Decimal("0"): one zero.
        return "0"
    # normalize() rounds to the context's precision and overflows past its exponent limits;
    # under the widest context it is exact, and the string of a normalised value is unique.
    return str(value.normalize(_EXACT))


_EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN)


def _slow_encoding(payload: Any) -> tuple[bytes, bytes]:
    walk = _Walk(escape=True)
    tree = _canonical(walk, payload)
    domain = b"T" if walk.tags else b"J"
    if domain == b"J" and walk.escaped:
        # No real tag was needed, so the payload is plain JSON: hash it unescaped, as the fast
        # path would.
        tree = _canonical(_Walk(escape=False), payload)
    try:
        return domain, _encode(tree)
    except orjson.JSONEncodeError:
        # Every leaf is plain JSON by now; only orjson's nesting limit can refuse the tree.
        raise _too_deep(payload) from None


def _canonical(walk: _Walk, payload: Any) -> Any:
    try:
        return walk.walk(payload)
    except _Failure as failure:
        if not failure.located:
            raise _too_deep(payload) from None
        raise failure.to_error() from failure.cause
    except RecursionError:
        # The walk stops at the nesting limit, but a tuple or dataclass level takes three frames,
        # and the caller may already be deep in recursion.
        raise _too_deep(payload) from None


def _too_deep(payload: Any) -> FingerprintError:
    return FingerprintError(
        f"cannot fingerprint value at root: the payload is {_TOO_DEEP}",
        path="root",
        value_type=type(payload).__qualname__,
    )
