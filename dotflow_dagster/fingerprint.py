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
  the encoder accepts (about 250 levels).

Error paths use DeepDiff notation: ``root['items'][3]`` for keys and indexes, ``.field`` for
dataclass fields (``root['order'].customer``) and, because a pydantic model is hashed through
its ``model_dump()`` dict, keys for model fields (``root['order']['customer']``).

How: a plain-JSON payload is encoded by orjson and then checked, at C speed, to hold only
exact plain-JSON types and finite floats (orjson writes tuples, NaN, UUIDs and enum members
as plain JSON without complaint). Anything else is walked in Python into a tagged canonical
tree, about four times slower; ``bench/fingerprint.py`` measures both.

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
from operator import is_
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
            redelivery. Paths reach into mappings, lists and tuples; absent paths are skipped.

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
    try:
        encoded = orjson.dumps(payload, default=_refuse, option=_FAST_OPTIONS)
    except orjson.JSONEncodeError:
        # Sets, bytes, big ints, non-str keys, surrogates, cycles, deep nesting, and every
        # type passed through to `default`.
        return None
    # Success still lets through what orjson encodes lossily: tuples as arrays, NaN and
    # infinities as null, UUIDs as strings, enum members as their value (whatever the
    # options), orjson.Fragment verbatim. Decoding and comparing would miss str and int enum
    # members, which compare equal to their value, and costs more than the encoding.
    return encoded if _only_plain_json(payload, maybe_nan=b"null" in encoded) else None


_PLAIN_JSON_TYPES = frozenset({dict, list, str, int, float, bool, type(None)})

# The plain-JSON check relies on CPython's gc.get_referents visiting every dict value and list
# item. Elsewhere the slow path produces the same digests, only slower.
_CPYTHON = sys.implementation.name == "cpython"

# orjson refuses nesting deeper than about 254 levels, so this bound is only a guard.
_MAX_LEVELS = 300


def _only_plain_json(payload: Any, *, maybe_nan: bool) -> bool:
    """True if every value in ``payload`` is of an exact plain-JSON type and no float is NaN or infinite.

    Walks the payload one level at a time with C-speed builtins only: gc.get_referents
    yields the values of every dict and the items of every list in a level (through the
    tp_traverse the garbage collector itself relies on; leaves have no referents), and the
    level's exact types are checked as one set, so subclasses, enums, tuples and UUIDs all
    fail. Types are checked before a level is traversed, so only dicts and lists are ever
    traversed. orjson has already refused cycles and deep nesting, so the loop ends.
    """
    level = [payload]
    for _ in range(_MAX_LEVELS):
        if not level:
            return True
        types = list(map(type, level))
        kinds = set(types)
        if not kinds <= _PLAIN_JSON_TYPES:
            return False
        if maybe_nan and float in kinds and not _all_finite(level, types):
            return False
        level = gc.get_referents(*level)
    return False


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

    def __init__(self, value_type: str, problem: str, *, cause: BaseException | None = None) -> None:
        self.value_type = value_type
        self.problem = problem
        self.cause = cause
        self.what = "value"
        self.elements: list[Any] = []

    def inside(self, element: Any) -> "_Failure":
        self.elements.append(element)
        return self

    def within(self, what: str) -> "_Failure":
        # A failure inside a key or set element has no path of its own; point at the container.
        self.what = what
        self.elements.clear()
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
        if key in self.active:
            name = type(container).__qualname__
            raise _Failure(name, f"this {name!r} contains itself (a reference cycle); payloads must be trees")
        self.active.add(key)
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
            pairs: list[list[Any]] | None = None
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
                        pairs = [[name, item] for name, item in out.items()]
                    pairs.append([canonical_key, canonical_value])
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
        elements.sort(key=_encode)
        return self.tag("set", elements)

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
        return self.tag("timedelta", value // _MICROSECOND)

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


def _sorted_pairs(pairs: list[list[Any]]) -> list[list[Any]]:
    keyed = [(_encode(pair[0]), pair) for pair in pairs]
    if len({encoded for encoded, _ in keyed}) == len(keyed):
        keyed.sort(key=lambda item: item[0])
    else:
        # Distinct keys with one encoding (dataclasses with eq=False): order by value too.
        keyed.sort(key=lambda item: (item[0], _encode(item[1][1])))
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
    try:
        tree = walk.walk(payload)
    except _Failure as failure:
        raise failure.to_error() from failure.cause
    except RecursionError:
        # Far beyond the encoder's nesting limit below, so report it the same way.
        raise _too_deep(payload) from None
    domain = b"T" if walk.tags else b"J"
    if domain == b"J" and walk.escaped:
        # No real tag was needed, so the payload is plain JSON: hash it unescaped, as the fast
        # path would.
        tree = _Walk(escape=False).walk(payload)
    try:
        return domain, _encode(tree)
    except orjson.JSONEncodeError:
        # Every leaf is plain JSON by now; only orjson's nesting limit can refuse the tree.
        raise _too_deep(payload) from None


def _too_deep(payload: Any) -> FingerprintError:
    return FingerprintError(
        "cannot fingerprint value at root: the payload is nested more deeply than the encoder "
        "accepts (about 250 levels, counting one or two per tagged value)",
        path="root",
        value_type=type(payload).__qualname__,
    )
