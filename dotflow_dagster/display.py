"""JSON-safe renderings of payloads for Dagster metadata and logs.

A payload may hold anything the fingerprint accepts (sets, Decimals, datetimes, integers beyond
64 bits, strings with lone surrogates, tuple keys...), and metadata must be plain JSON that any
encoder takes. :func:`to_display` renders a faithful, readable view of any value and never
raises: it is for people reading the UI, not for reading data back.

Rules:

* The result holds only ``dict`` with ``str`` keys, ``list``, ``str``, ``int`` with
  ``|n| < 2**53`` (exact in every JSON reader, JavaScript included), finite ``float``, ``bool``
  and ``None``.
* ``NaN``, ``inf`` and ``-inf`` become ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``.
  Larger integers become their decimal string, or beyond 4000 digits a hexadecimal string
  with a note (Python refuses to print very long decimals).
* Lone surrogates in strings are escaped (``"\\ud800"`` becomes the six characters
  ``\\ud800``).
* Tuples become lists; sets and frozensets become lists sorted by their displayed values.
* Dict keys that are not strings become readable strings: ``(1, 2)`` becomes ``"(1, 2)"``,
  ``None`` becomes ``"None"``. Keys whose texts collide are never merged: later ones get the
  key's type and, if needed, a number, e.g. ``"1 (int)"``.
* ``datetime``, ``date`` and ``time`` as ISO 8601, ``timedelta``, ``Decimal`` and ``UUID`` by
  ``str()``, ``bytes`` as ``"b64:"`` followed by standard base64, paths by ``as_posix()``,
  enum members as ``"Class.NAME"``.
* Dataclass instances as a dict of their fields, pydantic models as their ``model_dump()``.
* Anything else by its ``repr()``, truncated to 200 characters.
* Containers nested deeper than ``max_depth`` (capped at 200, so encoders with nesting
  limits still take the result), reference cycles and values beyond ``max_items`` are
  replaced by marker strings in angle brackets, such as ``"<cycle: list>"``.

The walk is iterative and visits at most ``max_items`` values, so neither deep nesting nor
huge or self-referencing payloads can make it slow or overflow the stack.

Example:
    >>> from datetime import date
    >>> from dotflow_dagster.display import to_display
    >>> to_display({"at": date(2024, 1, 2), "ratio": float("nan"), (1, 2): {3, 1}, "big": 2**64})
    {'at': '2024-01-02', 'ratio': 'NaN', '(1, 2)': [1, 3], 'big': '18446744073709551616'}
"""

import base64
import dataclasses
import math
import operator
import reprlib
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from itertools import islice
from pathlib import PurePath
from typing import Any
from uuid import UUID

import orjson

__all__ = ["int_text", "to_display"]

_MAX_SAFE_INT = 2**53
_DECIMAL_LIMIT = 10**4000
# orjson, which may encode the result later, refuses nesting beyond about 254 levels.
_DEPTH_CAP = 200
_REPR_LIMIT = 200
_KEY_LIMIT = 200
_KEY_PARTS = 20
_KEY_DEPTH = 8

_FINISH: Any = object()  # first item of a stack task that closes a container
_CONTAINER: Any = object()  # returned by _leaf for values that have children


def to_display(value: Any, *, max_depth: int = 100, max_items: int = 100_000) -> Any:
    """Render ``value`` as plain JSON for people to read; never raises, never slow.

    Args:
        value: anything; typically a payload the fingerprint accepts.
        max_depth: containers nested deeper than this (at most 200) are shown as a marker string.
        max_items: at most this many values are rendered; the rest are summarised by markers.

    Returns:
        A value made only of ``dict`` (``str`` keys), ``list``, ``str``, ``int`` (``|n| < 2**53``),
        finite ``float``, ``bool`` and ``None``. The module docstring lists the rules.

    Raises:
        TypeError: ``max_depth`` or ``max_items`` is not an integer (``value`` itself never
            causes an error).

    Example:
        >>> to_display([b"hi", float("-inf"), ("a", None)])
        ['b64:aGk=', '-Infinity', ['a', None]]
    """
    depth_limit = min(max(operator.index(max_depth), 0), _DEPTH_CAP)
    item_limit = max(operator.index(max_items), 1)
    try:
        return _Renderer(max_depth=depth_limit, max_items=item_limit).render(value)
    except Exception as error:  # a last resort: each step below already guards itself
        return f"<not displayable: {type(value).__name__} ({type(error).__name__})>"


class _Renderer:
    """One rendering: an explicit stack instead of recursion, and a budget of values."""

    def __init__(self, *, max_depth: int, max_items: int) -> None:
        self.max_depth = max_depth
        self.max_items = max_items
        self.scheduled = 1  # values rendered or waiting on the stack, the root included
        self.active: set[int] = set()  # ids of the containers being rendered: a cycle's ancestors

    def render(self, value: Any) -> Any:
        holder: list[Any] = [None]
        # Tasks: (value, output container, slot, depth), or, once a container's children are
        # done, (_FINISH, its id, its output, sort it?, marker to append).
        stack: list[tuple[Any, ...]] = [(value, holder, 0, 0)]
        while stack:
            task = stack.pop()
            if task[0] is _FINISH:
                _, key, output, sort, tail = task
                self.active.discard(key)
                if sort:
                    output.sort(key=_sort_key)
                if tail is not None:
                    output.append(tail)  # after sorting, so the marker stays last
                continue
            item, output, slot, depth = task
            output[slot] = self.visit(item, depth, stack)
        return holder[0]

    def visit(self, value: Any, depth: int, stack: list[tuple[Any, ...]]) -> Any:
        if type(value) is _Field:
            try:
                value = getattr(value.owner, value.name)
            except Exception as error:
                return f"<field {value.name!r} not readable ({type(error).__name__})>"
        try:
            shown = _leaf(value)
            if shown is not _CONTAINER:
                return shown
            if depth >= self.max_depth:
                return f"<nested deeper than max_depth={self.max_depth}: {_type_name(value)}>"
            if id(value) in self.active:
                return f"<cycle: {_type_name(value)}>"
            return self.container(value, depth, stack)
        except Exception as error:
            return f"<not displayable: {_type_name(value)} ({type(error).__name__})>"

    def take(self, items: Iterable[Any], size: int | None) -> tuple[list[Any], int | None]:
        """Up to the remaining budget of ``items``, and how many were left out (None if unknown)."""
        allowed = max(self.max_items - self.scheduled, 0)
        taken = list(islice(items, allowed + 1))
        if len(taken) <= allowed:
            self.scheduled += len(taken)
            return taken, 0
        taken.pop()
        self.scheduled += len(taken)
        return taken, (size - len(taken) if size is not None else None)

    def container(self, value: Any, depth: int, stack: list[tuple[Any, ...]]) -> Any:
        if isinstance(value, Mapping):
            return self.mapping(value, value.items(), _size(value), depth, stack)
        if dataclasses.is_dataclass(value):
            names = [field.name for field in dataclasses.fields(value)]
            return self.mapping(value, ((name, _Field(value, name)) for name in names), len(names), depth, stack)
        if _is_model(value):
            try:
                dumped = value.model_dump(mode="python", warnings=False)
            except TypeError:  # a pydantic without the warnings flag
                dumped = value.model_dump(mode="python")
            except Exception:
                return _short_repr(value)
            if isinstance(dumped, Mapping):
                return self.mapping(value, dumped.items(), _size(dumped), depth, stack)
            return self.visit(dumped, depth, stack)
        # list, tuple, set or frozenset
        is_set = isinstance(value, set | frozenset)
        items, left_out = self.take(value, _size(value))
        output: list[Any] = [None] * len(items)
        self.active.add(id(value))
        stack.append((_FINISH, id(value), output, is_set, _more(left_out, "items") if left_out != 0 else None))
        for index in range(len(items) - 1, -1, -1):
            stack.append((items[index], output, index, depth + 1))
        return output

    def mapping(
        self, value: Any, pairs: Iterable[tuple[Any, Any]], size: int | None, depth: int, stack: list[tuple[Any, ...]]
    ) -> dict[str, Any]:
        taken, left_out = self.take(pairs, size)
        names = _key_names([key for key, _ in taken])
        output: dict[str, Any] = dict.fromkeys(names)
        self.active.add(id(value))
        stack.append((_FINISH, id(value), output, False, None))
        for name, (_, item) in zip(reversed(names), reversed(taken), strict=True):
            stack.append((item, output, name, depth + 1))
        if left_out != 0:
            output[_unused_name(_more(left_out, "entries"), output)] = None
        return output


class _Field:
    """A dataclass field read lazily, so a failing property shows as a marker for that field only."""

    __slots__ = ("owner", "name")

    def __init__(self, owner: Any, name: str) -> None:
        self.owner = owner
        self.name = name


def _leaf(value: Any) -> Any:
    """The display of a value without children, or ``_CONTAINER``."""
    cls = type(value)
    if cls is str:
        return _text(value)
    if cls is int:
        return _int(value)
    if cls is float:
        return _float(value)
    if value is None or cls is bool:
        return value
    # Enum first: str, int and float enums are also instances of those types.
    if isinstance(value, Enum):
        name = value.name
        return f"{cls.__name__}.{name}" if isinstance(name, str) else _short_repr(value)
    if isinstance(value, Mapping | list | tuple | set | frozenset):
        return _CONTAINER
    if isinstance(value, str):
        return _text(str.__str__(value))
    if isinstance(value, int):
        return _int(int.__int__(value))
    if isinstance(value, float):
        return _float(float.__float__(value))
    if isinstance(value, datetime | date | time):
        return _text(value.isoformat())
    if isinstance(value, timedelta | Decimal | UUID):
        return _text(str(value))
    if isinstance(value, bytes | bytearray | memoryview):
        return "b64:" + base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, PurePath):
        return _text(value.as_posix())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _CONTAINER
    if _is_model(value):
        return _CONTAINER
    return _short_repr(value)


def _is_model(value: Any) -> bool:
    # Duck typing, as the fingerprint does: pydantic is not imported.
    return hasattr(type(value), "model_fields") and hasattr(value, "model_dump") and not isinstance(value, type)


def _type_name(value: Any) -> str:
    return type(value).__name__


def _size(value: Any) -> int | None:
    try:
        return len(value)
    except Exception:
        return None


def _more(count: int | None, what: str) -> str:
    return f"<{count} more {what} not shown>" if count is not None else f"<more {what} not shown>"


def _text(text: str) -> str:
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (json.loads makes them from "\ud800") are not valid UTF-8.
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _int(value: int) -> int | str:
    if -_MAX_SAFE_INT < value < _MAX_SAFE_INT:
        return value
    decimal = _decimal(value)
    if decimal is not None:
        return decimal
    return f"{value:#x} (an integer of {value.bit_length()} bits, in hexadecimal)"


def _decimal(value: int) -> str | None:
    """``str(value)`` for an integer of at most 4000 digits, or ``None``.

    Python refuses to write longer integers in decimal (``sys.get_int_max_str_digits()``, 4300
    by default, 640 at the least): the conversion takes quadratic time.
    """
    if -_DECIMAL_LIMIT < value < _DECIMAL_LIMIT:
        try:
            return int.__repr__(value)
        except ValueError:  # sys.set_int_max_str_digits() was set below 4000
            return None
    return None


_LAST_DIGITS = 10


def int_text(value: int) -> str:
    """An integer as text for a message or a diff line; never raises, never slow.

    ``repr(value)`` up to 4000 digits. Beyond that Python refuses to write it in decimal
    (``ValueError: Exceeds the limit (4300 digits)``), so it is summarised by its number of
    digits and its last ten, which tell most changes apart and cost linear time to find.

    Args:
        value: an ``int`` (a subclass is shown as its ``int`` value).

    Returns:
        The decimal digits, or ``"<int of N digits: ...DDDDDDDDDD>"`` (``-...`` if negative).

    Example:
        >>> int_text(-42)
        '-42'
        >>> int_text(10**5000 + 7)
        '<int of 5001 digits: ...0000000007>'
    """
    value = int.__index__(value)
    decimal = _decimal(value)
    if decimal is not None:
        return decimal
    magnitude = abs(value)
    last = str(magnitude % 10**_LAST_DIGITS).zfill(_LAST_DIGITS)
    return f"<int of {_digit_count(magnitude)} digits: {'-' if value < 0 else ''}...{last}>"


def _digit_count(magnitude: int) -> int:
    """How many decimal digits ``magnitude`` (> 0) has, without writing it in decimal."""
    logarithm = math.log10(magnitude)  # within a few units in the last place, even for huge ints
    nearest = round(logarithm)
    if abs(logarithm - nearest) > 1e-12 * max(1.0, logarithm):
        return math.floor(logarithm) + 1
    # Close to a power of ten, where rounding could cross it: compare with it exactly.
    return nearest + 1 if magnitude >= 10**nearest else nearest


def _float(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


_REPR = reprlib.Repr()
_REPR.maxstring = _REPR_LIMIT
_REPR.maxother = _REPR_LIMIT
_REPR.maxlevel = 3


def _short_repr(value: Any) -> str:
    try:
        text = _REPR.repr(value)
    except Exception:
        return f"<{_type_name(value)} object (repr failed)>"
    if not isinstance(text, str):
        return f"<{_type_name(value)} object>"
    if len(text) > _REPR_LIMIT:
        text = text[: _REPR_LIMIT - 3] + "..."
    return _text(text)


def _sort_key(shown: Any) -> tuple[int, Any]:
    # Displayed set elements: None, booleans, numbers (by value), strings, then containers by JSON.
    if shown is None:
        return (0, 0)
    if type(shown) is bool:
        return (1, shown)
    if type(shown) is int or type(shown) is float:
        return (2, shown)
    if type(shown) is str:
        return (3, shown)
    try:
        return (4, orjson.dumps(shown, option=orjson.OPT_SORT_KEYS).decode())
    except Exception:
        return (5, "")


# --- dict keys -------------------------------------------------------------------------------------


def _key_names(keys: list[Any]) -> list[str]:
    """One distinct readable string per key, in order; plain string keys keep their text."""
    names: list[str | None] = [None] * len(keys)
    used: set[str] = set()
    for index, key in enumerate(keys):
        # Valid UTF-8 strings first, so a non-string key never takes a real key's name.
        if type(key) is str and _text(key) is key:
            names[index] = key
            used.add(key)
    for index, key in enumerate(keys):
        if names[index] is not None:
            continue
        name = _key_text(key)
        if name in used:
            name = _unused_name(f"{name} ({_type_name(key)})", used)
        names[index] = name
        used.add(name)
    return [name for name in names if name is not None]


def _unused_name(name: str, used: Iterable[str] | Mapping[str, Any]) -> str:
    taken = used if isinstance(used, set | dict) else set(used)
    if name not in taken:
        return name
    number = 2
    while f"{name} #{number}" in taken:
        number += 1
    return f"{name} #{number}"


def _key_text(key: Any) -> str:
    try:
        shown = _leaf(key)
        if shown is _CONTAINER:
            text = _key_part(key, 0)
        elif isinstance(shown, str):
            text = shown
        else:
            text = _scalar_text(shown)
    except Exception:
        text = f"<{_type_name(key)} key>"
    return text if len(text) <= _KEY_LIMIT else text[: _KEY_LIMIT - 3] + "..."


def _scalar_text(shown: Any) -> str:
    # Python spelling (None, True), as the key would be written in code.
    return repr(shown)


def _key_part(value: Any, depth: int) -> str:
    """A repr-like text of a key or of a part of one, bounded in depth and width."""
    shown = _leaf(value)
    if shown is not _CONTAINER:
        return repr(shown) if isinstance(shown, str) else _scalar_text(shown)
    if depth >= _KEY_DEPTH:
        return "..."
    if isinstance(value, tuple):
        parts = [_key_part(item, depth + 1) for item in islice(value, _KEY_PARTS)]
        if len(value) > _KEY_PARTS:
            parts.append("...")
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
    if isinstance(value, set | frozenset):
        parts = sorted(_key_part(item, depth + 1) for item in islice(value, _KEY_PARTS))
        if len(value) > _KEY_PARTS:
            parts.append("...")
        return f"{type(value).__name__}({{{', '.join(parts)}}})" if parts else f"{type(value).__name__}()"
    return _short_repr(value)
