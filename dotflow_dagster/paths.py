"""DeepDiff-style payload paths (``root['items'][3]``): parsing, removal and redaction.

One notation serves ``ignore_paths``, ``redact_paths``, diff output and error messages, so a path
a user reads in an error can be pasted straight into the workflow's configuration.

Grammar (strict: anything else is refused with a ``ValueError`` naming the path)::

    path    := "root" element*
    element := "[" STRING "]"     a key or field: a Python str literal, '...' or "...", escapes allowed
             | "[" INT "]"        a list/tuple index (negative counts from the end) or an int key
             | "." IDENTIFIER     a field, or a mapping key that is an identifier

``['name']`` and ``.name`` are interchangeable: both reach a mapping key, a dataclass field, a
pydantic model field and a namedtuple field. :func:`format_path` prints the ``['name']`` form,
which always parses back to the same elements.

All the paths of one call are applied together against the original payload, so two indexes of
one list name the elements the user saw (removing ``[0]`` never shifts what ``[1]`` means), and
the order of the paths never matters.

Example:
    >>> from dotflow_dagster.paths import parse_paths, redact, without_paths
    >>> paths = parse_paths(["root['l'][0]", "root['l'][-1]", "root.token"])
    >>> without_paths({"l": [5, 6, 10], "token": "s3cret"}, paths)
    {'l': [6]}
    >>> redact({"l": [5, 6, 10], "token": "s3cret"}, paths)
    {'l': ['***', 6, '***'], 'token': '***'}
"""

import ast
import copy
import dataclasses
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import Enum
from functools import lru_cache
from typing import Any, ClassVar

__all__ = ["REDACTED", "PayloadPath", "parse_paths", "format_path", "without_paths", "redact"]

REDACTED = "***"

PayloadPath = tuple[str | int, ...]

_HINT = "expected root followed by ['key'], [index] or .name, e.g. \"root['items'][0].sku\""


# --- parsing ---------------------------------------------------------------------------------------


def parse_paths(paths: Iterable[str]) -> tuple[PayloadPath, ...]:
    """Parse DeepDiff-style paths such as ``"root['a'][0]"`` into element tuples.

    Args:
        paths: a list (or any iterable) of path strings; see the module docstring for the grammar.

    Returns:
        One tuple of elements per path: ``str`` for keys and fields, ``int`` for indexes.

    Raises:
        TypeError: ``paths`` is a single string rather than a list of them, is not iterable, or
            holds something other than a string.
        ValueError: a path does not follow the grammar or names the whole payload; the
            message names the path and the position of the problem.

    Example:
        >>> parse_paths(["root['items'][-1].sku", 'root["it\\'s"]'])
        (('items', -1, 'sku'), ("it's",))
    """
    if isinstance(paths, str | bytes | bytearray):
        # Iterating it would parse one path per character.
        raise TypeError(
            f"payload paths must be a list of paths, not the single string {paths!r}; write [{paths!r}]"
        )
    try:
        entries = list(paths)
    except TypeError:
        raise TypeError(f"payload paths must be a list of path strings, got {type(paths).__name__}") from None
    for index, path in enumerate(entries):
        if not isinstance(path, str):
            raise TypeError(
                f"payload path {path!r} (entry {index}) must be a string such as \"root['key'][0]\", "
                f"not {type(path).__name__}"
            )
    return tuple(_parse_cached(path) for path in entries)


@lru_cache(maxsize=1024)
def _parse_cached(path: str) -> PayloadPath:
    return _parse_one(path)


_INDEX = re.compile(r"-?(?:0|[1-9][0-9]*)")
# The escapes Python's str literals accept (octal limited to one byte). Anything else, such as
# "\d", Python keeps literally with a warning: refused here, as it is almost always a typo.
_ESCAPE = re.compile(r"""\\(?:[\\'"abfnrtv\n]|[0-3][0-7]{0,2}|[4-7][0-7]?|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|N\{[^{}]+\})""")


def _parse_one(path: str) -> PayloadPath:
    def refuse(reason: str, position: int) -> ValueError:
        return ValueError(f"payload path {path!r} is not valid: {reason} at character {position}; {_HINT}")

    if not path.startswith("root"):
        raise refuse("it must start with 'root'", 0)
    elements: list[str | int] = []
    position, end = len("root"), len(path)
    while position < end:
        char = path[position]
        if char == "[":
            position += 1
            if position < end and path[position] in "'\"":
                closing = _closing_quote(path, position)
                if closing < 0:
                    raise refuse("unterminated string", position)
                elements.append(_string_literal(path[position : closing + 1], refuse=refuse, position=position))
                position = closing + 1
            else:
                match = _INDEX.match(path, position)
                if match is None:
                    raise refuse("expected a quoted key or an integer index after '['", position)
                try:
                    elements.append(int(match.group()))
                except ValueError:  # beyond Python's int-from-decimal digit limit
                    raise refuse("the index has too many digits", position) from None
                position = match.end()
            if position >= end or path[position] != "]":
                raise refuse("expected ']'", position)
            position += 1
        elif char == ".":
            # A name runs to the next '.' or '[' and must be a Python identifier as a whole
            # (str.isidentifier: Unicode letters and continuation marks such as '·' included).
            stop = position + 1
            while stop < end and path[stop] not in ".[":
                stop += 1
            name = path[position + 1 : stop]
            if not name.isidentifier():
                raise refuse("expected a name after '.'" if not name else f"{name!r} is not a name", position + 1)
            elements.append(name)
            position = stop
        else:
            raise refuse(f"unexpected {char!r}", position)
    if not elements:
        raise ValueError(f"payload path {path!r} names the whole payload; name a key inside it, {_HINT}")
    return tuple(elements)


def _closing_quote(path: str, start: int) -> int:
    """Index of the quote closing the literal opened at ``start``, or -1."""
    quote = path[start]
    position = start + 1
    while position < len(path):
        char = path[position]
        if char == "\\":
            position += 2
        elif char == quote:
            return position
        elif char in "\r\n":
            return -1
        else:
            position += 1
    return -1


def _string_literal(literal: str, *, refuse: Any, position: int) -> str:
    body = literal[1:-1]
    backslash = body.find("\\")
    while backslash >= 0:
        match = _ESCAPE.match(body, backslash)
        if match is None:
            raise refuse(f"invalid escape {body[backslash : backslash + 2]!r} (write '\\\\' for a backslash)", position)
        backslash = body.find("\\", match.end())
    if "\x00" in body:
        raise refuse("raw NUL character in the key (write '\\x00')", position)
    try:
        # Escapes are validated above, so literal_eval neither warns nor meets anything but one
        # str literal; it only decodes the escapes exactly as Python (and repr()) define them.
        value = ast.literal_eval(literal)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as error:
        raise refuse(f"invalid string literal ({error})", position) from None
    if not isinstance(value, str):  # pragma: no cover - the scanner only lets one literal through
        raise refuse("expected a string literal", position)
    return value


def format_path(elements: Sequence[Any]) -> str:
    """Render path elements as a DeepDiff-style path; :func:`parse_paths` reads it back.

    ``str`` and ``int`` elements round-trip exactly. Other dict keys (tuples, ``None``...) are
    shown by ``repr`` for error messages; such keys cannot be addressed by a path.

    Example:
        >>> format_path(("items", 3, "it's"))
        'root[\\'items\\'][3]["it\\'s"]'
    """
    return "root" + "".join(f"[{_element_text(element)}]" for element in elements)


def _element_text(element: Any) -> str:
    if isinstance(element, int) and not isinstance(element, bool):
        try:
            return str(int(element))
        except ValueError:  # beyond Python's int-to-decimal digit limit: still print something
            return hex(element)
    if isinstance(element, str):
        return repr(str(element))
    try:
        return repr(element)
    except Exception:
        return f"<{type(element).__name__}>"


# --- applying paths --------------------------------------------------------------------------------


class _Node:
    """One level of a trie of paths: ``terminal`` if a path ends here, else the next elements."""

    __slots__ = ("terminal", "children")

    def __init__(self) -> None:
        self.terminal = False
        self.children: dict[Any, _Node] = {}


def _trie(paths: Iterable[PayloadPath]) -> _Node:
    root = _Node()
    for path in paths:
        if isinstance(path, str):
            raise TypeError(f"payload path {path!r} must be parsed first (parse_paths), not passed as a string")
        path = tuple(path)
        if not path:
            raise ValueError("an empty payload path names the whole payload; name a key inside it")
        node = root
        try:
            for element in path:
                if node.terminal:
                    break  # a prefix of this path is already removed or replaced as a whole
                node = node.children.setdefault(element, _Node())
            else:
                node.terminal = True
                node.children.clear()
        except TypeError:
            raise TypeError(f"payload path {path!r} holds an unhashable element") from None
    return root


def _merge(first: _Node, second: _Node) -> _Node:
    """A new node for two trie branches that reach the same element (``[-1]`` and ``[2]`` of 3)."""
    merged = _Node()
    if first.terminal or second.terminal:
        merged.terminal = True
        return merged
    merged.children = dict(first.children)
    for element, child in second.children.items():
        merged.children[element] = _merge(merged.children[element], child) if element in merged.children else child
    return merged


def without_paths(payload: Any, paths: Iterable[PayloadPath]) -> Any:
    """Return ``payload`` without the values at ``paths``; absent paths are skipped, input untouched.

    All paths are applied at once against the original payload: list indexes (negative ones
    too) name elements of the original list, duplicates and overlapping paths name each element
    once, and a path inside a removed value changes nothing more. Only containers on a path are
    copied; everything else is shared with the input.

    Removing a field of a dataclass instance or of a pydantic model (``root['order'].token`` or
    ``root['order']['token']``) replaces the instance by a stand-in for the fingerprint: a
    generated dataclass, or an object with ``model_dump()``, carrying the original class's
    module and qualified name and every other field. It fingerprints exactly like that class
    without the field, so payloads differing only in ignored fields get one fingerprint. Inside
    a model, paths address its ``model_dump(mode="python")``, which is what the fingerprint
    hashes (a ``RootModel`` dumps as its root value, so ``root['m'][0]`` reaches into it).

    Example:
        >>> without_paths({"l": [5, 6, 10]}, [("l", 0), ("l", 1)])
        {'l': [10]}
    """
    root = _trie(paths)
    if not root.children:
        return payload
    return _apply(payload, root, remove=True)


def redact(payload: Any, paths: Iterable[PayloadPath]) -> Any:
    """Return ``payload`` with the values at ``paths`` replaced by ``'***'``; the input is untouched.

    Paths reach into mappings, lists, tuples (namedtuple fields by name too), dataclass fields
    and pydantic model fields, however deeply nested. Redacted copies keep their type where
    possible (a frozen dataclass stays that dataclass, a model stays that model); an object
    that cannot be copied becomes a plain ``dict`` of its fields, so a secret never survives.

    Example:
        >>> redact({"user": "ada", "auth": {"token": "s3cret"}}, [("auth", "token")])
        {'user': 'ada', 'auth': {'token': '***'}}
    """
    root = _trie(paths)
    if not root.children:
        return payload
    return _apply(payload, root, remove=False)


# Marks a value to remove, in the change maps below.
_REMOVED: Any = object()


def _apply(value: Any, node: _Node, *, remove: bool) -> Any:
    # The order of checks follows the fingerprint's, so a path reaches what it hashes.
    if isinstance(value, Enum):
        return value  # hashed by class, name and value: nothing inside to address
    if isinstance(value, Mapping):
        return _apply_mapping(value, node, remove=remove)
    if isinstance(value, list | tuple):
        return _apply_sequence(value, node, remove=remove)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _apply_dataclass(value, node, remove=remove)
    if _is_model(value):
        return _apply_model(value, node, remove=remove)
    return value


def _is_model(value: Any) -> bool:
    # Duck typing, as the fingerprint does: pydantic is not imported.
    return hasattr(type(value), "model_fields") and hasattr(value, "model_dump") and not isinstance(value, type)


def _changes(targets: Iterable[tuple[Any, Any, _Node]], *, remove: bool) -> dict[Any, Any]:
    """New values (or ``_REMOVED``) per target, for ``(target, current value, branch)`` triples."""
    changes: dict[Any, Any] = {}
    for target, current, child in targets:
        if child.terminal:
            changes[target] = _REMOVED if remove else REDACTED
        else:
            new = _apply(current, child, remove=remove)
            if new is not current:
                changes[target] = new
    return changes


def _apply_mapping(value: Mapping[Any, Any], node: _Node, *, remove: bool) -> Any:
    targets = []
    for element, child in node.children.items():
        try:
            if element not in value:
                continue
            current = value[element]
        except Exception:  # an odd key type for this mapping: nothing there to address
            continue
        targets.append((element, current, child))
    changes = _changes(targets, remove=remove)
    if not changes:
        return value
    if not remove and type(value) is not dict and isinstance(value, dict):
        copied = _copied_dict_subclass(value, changes)
        if copied is not None:
            return copied
    # Any other Mapping becomes a dict: the fingerprint hashes every Mapping as its items.
    result = dict(value)
    for key, new in changes.items():
        if new is _REMOVED:
            del result[key]
        else:
            result[key] = new
    return result


def _copied_dict_subclass(value: dict[Any, Any], changes: dict[Any, Any]) -> dict[Any, Any] | None:
    """A same-type copy (OrderedDict, defaultdict...) with ``changes``, or None if that fails."""
    try:
        copied = copy.copy(value)
        if type(copied) is not type(value) or copied is value:
            return None
        for key, new in changes.items():
            copied[key] = new
        # The subclass's own methods did the writing; check at the dict level that they wrote.
        if all(dict.__getitem__(copied, key) is new for key, new in changes.items()):
            return copied
    except Exception:
        pass
    return None


def _apply_sequence(value: list[Any] | tuple[Any, ...], node: _Node, *, remove: bool) -> Any:
    length = len(value)
    fields = getattr(type(value), "_fields", None) if isinstance(value, tuple) else None
    branches: dict[int, _Node] = {}
    for element, child in node.children.items():
        if isinstance(element, int) and not isinstance(element, bool):
            index = element + length if element < 0 else element
        elif isinstance(element, str) and isinstance(fields, tuple) and element in fields:
            index = fields.index(element)  # a namedtuple field by name
        else:
            continue
        if 0 <= index < length:
            # [-1] and [2] of a 3-element list are one element: merge what the paths ask of it.
            branches[index] = _merge(branches[index], child) if index in branches else child
    changes = _changes(((index, value[index], child) for index, child in branches.items()), remove=remove)
    if not changes:
        return value
    # Indexes are those of the original sequence, so removing one never shifts another.
    items = [changes.get(index, item) for index, item in enumerate(value)]
    if remove:
        # The fingerprint hashes list and tuple subclasses as plain lists and tuples.
        items = [item for item in items if item is not _REMOVED]
        return tuple(items) if isinstance(value, tuple) else items
    if type(value) is list:
        return items
    if type(value) is tuple:
        return tuple(items)
    rebuilt = _rebuilt_sequence(value, items)
    if rebuilt is not None:
        return rebuilt
    return tuple(items) if isinstance(value, tuple) else items


def _rebuilt_sequence(value: Any, items: list[Any]) -> Any:
    """The same list/tuple subclass holding ``items``, or None if it cannot be built faithfully."""
    try:
        if isinstance(value, tuple):
            make = getattr(value, "_make", None)
            rebuilt = make(items) if callable(make) else type(value)(items)
        else:
            rebuilt = copy.copy(value)
            if rebuilt is value:
                return None
            list.__setitem__(rebuilt, slice(None), items)
        base = tuple if isinstance(value, tuple) else list
        if type(rebuilt) is type(value) and base.__len__(rebuilt) == len(items):
            if all(base.__getitem__(rebuilt, index) is item for index, item in enumerate(items)):
                return rebuilt
    except Exception:
        pass
    return None


def _field_targets(value: Any, node: "_Node", names: Any) -> list[tuple[str, Any, "_Node"]]:
    """The (field name, current value, path node) of each named field a path reaches."""
    targets = []
    for element, child in node.children.items():
        if isinstance(element, str) and element in names:
            try:
                current = getattr(value, element)
            except Exception:
                if not child.terminal:
                    continue
                current = None  # unreadable, yet named to be removed or redacted: do so
            targets.append((element, current, child))
    return targets


def _apply_dataclass(value: Any, node: _Node, *, remove: bool) -> Any:
    try:
        names = [field.name for field in dataclasses.fields(value)]
    except Exception:
        return value
    targets = _field_targets(value, node, names)
    changes = _changes(targets, remove=remove)
    if not changes:
        return value
    fields = _field_values(value, names, changes)
    if remove:
        kept = tuple(name for name in names if name in fields)
        return _dataclass_builder(type(value), kept)(fields)
    copied = _copied_with(value, changes)
    return copied if copied is not None else fields


def _field_values(value: Any, names: Iterable[str], changes: dict[str, Any]) -> dict[str, Any]:
    """The fields as a plain dict with ``changes`` applied; unreadable fields are left out."""
    fields: dict[str, Any] = {}
    for name in names:
        if name in changes:
            if changes[name] is not _REMOVED:
                fields[name] = changes[name]
            continue
        try:
            fields[name] = getattr(value, name)
        except Exception:
            continue
    return fields


def _copied_with(value: Any, changes: dict[str, Any]) -> Any:
    """A shallow copy of a dataclass instance with fields rebound, or None if that is impossible.

    ``object.__setattr__`` bypasses ``frozen=True`` and works with ``__slots__``. Only the copy's
    attributes are rebound, so nothing reachable from the input changes.
    """
    try:
        copied = copy.copy(value)
        if type(copied) is not type(value) or copied is value:
            return None
        for name, new in changes.items():
            object.__setattr__(copied, name, new)
        if all(getattr(copied, name) is new for name, new in changes.items()):
            return copied
    except Exception:
        pass
    return None


@lru_cache(maxsize=256)
def _dataclass_builder(cls: type, names: tuple[str, ...]) -> Callable[[dict[str, Any]], Any]:
    """A dataclass named like ``cls`` with only ``names``: the fingerprint hashes class name and fields."""
    stand_in = dataclasses.make_dataclass(cls.__name__, [(name, Any) for name in names], init=False)
    stand_in.__module__ = cls.__module__
    stand_in.__qualname__ = cls.__qualname__
    stand_in.__doc__ = f"Stand-in for {cls.__qualname__} without ignored fields (dotflow_dagster.paths)."

    def build(fields: dict[str, Any]) -> Any:
        instance = object.__new__(stand_in)
        for name, field_value in fields.items():
            object.__setattr__(instance, name, field_value)
        return instance

    return build


def _apply_model(value: Any, node: _Node, *, remove: bool) -> Any:
    if remove:
        # The fingerprint hashes a model as its class and model_dump(mode="python"), so ignored
        # paths are removed from exactly that dump; the result keeps the class name.
        try:
            dump = value.model_dump(mode="python")
        except Exception:
            return value  # the fingerprint reports this model itself
        edited = _apply(dump, node, remove=True)
        return value if edited is dump else _model_stand_in(type(value))(edited)
    cls = type(value)
    if getattr(cls, "__pydantic_root_model__", False) is True:
        # A RootModel dumps as its root value, so paths address that value, as in removal.
        wrapped = _Node()
        wrapped.children["root"] = node
        node = wrapped
    try:
        extra = getattr(value, "__pydantic_extra__", None)
        names = set(cls.model_fields) | (set(extra) if isinstance(extra, dict) else set())
    except Exception:
        names = set()
    targets = _field_targets(value, node, names)
    changes = _changes(targets, remove=False)
    if not changes:
        return value
    try:
        # model_copy neither validates nor minds frozen models; extra fields go to the extras.
        copied = value.model_copy(update=changes)
        if (
            type(copied) is cls
            and copied is not value
            and all(getattr(copied, name) is new for name, new in changes.items())
        ):
            return copied
    except Exception:
        pass
    ordered = [*cls.model_fields, *(name for name in names if name not in cls.model_fields)]
    return _field_values(value, ordered, changes)


class _ModelView:
    """A pydantic model as the fingerprint sees it after ``ignore_paths``: class name and dump."""

    __slots__ = ("_dump",)
    # The fingerprint recognises models by ``model_fields`` on the class and ``model_dump()``.
    model_fields: ClassVar[dict[str, Any]] = {}

    def __init__(self, dump: Any) -> None:
        self._dump = dump

    def model_dump(self, **_: Any) -> Any:
        return self._dump

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._dump == self._dump  # type: ignore[attr-defined]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}<without ignored paths>({self._dump!r})"


@lru_cache(maxsize=256)
def _model_stand_in(cls: type) -> type[_ModelView]:
    namespace = {"__module__": cls.__module__, "__qualname__": cls.__qualname__, "__slots__": ()}
    return type(cls.__name__, (_ModelView,), namespace)
