"""Describing how a payload changed, fast and within bounds, with redaction applied.

Describing a change must stay cheap: it happens while the workflow's run lock is held, and a
full DeepDiff costs about 2 s per MB of payload. :func:`describe_changes` therefore walks both
payloads in parallel and skips every subtree that compares equal with ``==`` (which runs at C
speed), so a one-value change in a large payload costs a few milliseconds. The walk is bounded
(lines, time, values compared) and says so when it was cut short. The DeepDiff that policy
hooks read (``InputChange.diff``) is only built when a hook reads it, on copies of the
payloads from which the equal parts were pruned; its paths are those of the full payloads.
"""

import dataclasses
import heapq
import inspect
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from functools import cached_property
from typing import Any, Literal, TypeAlias

from deepdiff import DeepDiff
from deepdiff.helper import basic_types

from dotflow_dagster.display import int_text
from dotflow_dagster.paths import REDACTED, PayloadPath, format_path, redact

__all__ = ["NO_VISIBLE_CHANGE", "ChangeDescription", "describe_changes"]

NO_VISIBLE_CHANGE = "  (no visible change: only redacted or ignored values differ)"


@dataclass(frozen=True, eq=False)
class ChangeDescription:
    """How a payload changed: readable lines now, a DeepDiff only if someone reads it.

    Built by :func:`describe_changes`. Values under ``redact_paths`` never appear in it.

    Attributes:
        lines: one change per line, sorted by path, e.g. ``"root['v']: 1 -> 2"``. When the
            listing was cut short (``max_lines`` or a budget), a last line starting with
            ``"... diff cut short"`` says so and how many changes were left out.
        found: how many changes the walk found (a lower bound when ``exhaustive`` is false).
        shown: how many of them ``lines`` lists.
        exhaustive: whether the whole payload was compared (no time or node budget ran out).
        previous: the previous payload with ``redact_paths`` replaced by ``'***'``.
        current: the current payload, redacted the same way.
        ignore_paths: the paths left out of the comparison.
    """

    lines: tuple[str, ...]
    found: int
    shown: int
    exhaustive: bool
    previous: Any = field(repr=False)
    current: Any = field(repr=False)
    ignore_paths: tuple[PayloadPath, ...] = field(default=(), repr=False)

    @property
    def complete(self) -> bool:
        """Whether ``lines`` lists every change there is."""
        return self.exhaustive and self.shown == self.found

    @property
    def text(self) -> str:
        """The lines joined for an error message or a report."""
        return "\n".join(self.lines) or NO_VISIBLE_CHANGE

    @cached_property
    def diff(self) -> DeepDiff:
        """``DeepDiff(previous, current)`` without ``ignore_paths``, built on first read.

        It runs on copies from which the parts that compare equal were pruned (equal dict values
        and list items replaced by one shared placeholder, so keys and indexes stay those of the
        full payloads). Its reports and ``affected_paths`` are the full DeepDiff's, except that
        a type-only difference between values that compare equal (``1`` and ``1.0`` in an
        otherwise equal dict) is found only when nothing else differs. ``diff.t1``/``diff.t2``
        are the pruned copies.

        Raises:
            ValueError: a changed set holds an integer beyond Python's decimal limit (4300
                digits by default), which DeepDiff hashes by writing it in decimal; the message
                says so, and ``lines`` still describe the change.
        """
        try:
            return _pruned_deepdiff(self.previous, self.current, self.ignore_paths)
        except ValueError as error:
            if "integer string conversion" not in str(error):
                raise
            raise ValueError(
                "the DeepDiff of this change cannot be built: DeepDiff writes the items of a changed set in "
                f"decimal, and one is an integer beyond Python's limit of {sys.get_int_max_str_digits()} digits; "
                f"the change's lines describe it:\n{self.text}"
            ) from error


def describe_changes(
    previous: Any,
    current: Any,
    *,
    ignore_paths: Iterable[PayloadPath] = (),
    redact_paths: Iterable[PayloadPath] = (),
    max_lines: int = 20,
    budget_seconds: float = 0.5,
    max_nodes: int = 1_000_000,
) -> ChangeDescription:
    """Describe how ``current`` differs from ``previous``, quickly and within bounds.

    Both payloads are walked in parallel and every pair that compares equal (``==``) is skipped
    without looking inside. Mappings: keys on one side only are ``added``/``removed``, values
    that differ are walked into. Lists and tuples of equal length: differing positions are
    walked into. Dataclasses (``.field``) and pydantic models (``['field']``): fields that
    differ are walked into. Anything else that differs (a length change, a type change, a leaf)
    is one change at its path. If ``==`` sees no difference at all, a second, type-aware walk
    looks for what it hides (``1`` -> ``1.0``, ``True`` -> ``1``).

    A change at or inside a ``redact_paths`` entry is reported at that path as
    ``root['token']: *** -> *** (redacted value changed)``; secrets are never rendered, also not
    inside a larger value shown as changed. ``ignore_paths`` are not compared.

    Args:
        previous: the payload stored for the previous fingerprint (``None`` if it is gone).
        current: the new payload.
        ignore_paths: paths left out of the comparison (parsed, see ``paths.parse_paths``).
        redact_paths: paths whose values are never shown.
        max_lines: how many changes to list; a last line counts the others.
        budget_seconds: wall-clock budget for the walk; when it runs out the lines say so.
        max_nodes: budget in values compared, the same on every machine.

    Returns:
        A :class:`ChangeDescription` (lines, counts, redacted payloads, DeepDiff on demand).

    Example:
        >>> change = describe_changes(
        ...     {"v": 1, "token": "s3cr3t-A", "rows": [1, 2]},
        ...     {"v": 2, "token": "s3cr3t-B", "rows": [1, 2, 3]},
        ...     redact_paths=[("token",)],
        ... )
        >>> for line in change.lines:
        ...     print(line)
        root['rows']: [1, 2] -> [1, 2, 3]
        root['token']: *** -> *** (redacted value changed)
        root['v']: 1 -> 2
        >>> sorted(change.diff.affected_paths)
        ["root['rows'][2]", "root['v']"]
    """
    started = time.perf_counter()
    ignore_paths, redact_paths = tuple(ignore_paths), tuple(redact_paths)
    walk = _Walk(
        ignore=_trie(ignore_paths),
        redact=_trie(redact_paths),
        deadline=started + budget_seconds,
        max_nodes=max_nodes,
    )
    walk.compare(previous, current, strict=False)
    if not walk.changes and walk.stopped is None:
        # The caller diffs because the fingerprints differ, yet == saw nothing: look for the
        # type-only changes it hides (1 -> 1.0, True -> 1, 0.0 -> -0.0), which it tells apart.
        walk.compare(previous, current, strict=True)
    shown = heapq.nsmallest(max(max_lines, 0), walk.changes, key=_change_order)
    lines = [_line(change) for change in shown]
    cut = _cut_short_line(walk, shown=len(shown), elapsed=time.perf_counter() - started)
    return ChangeDescription(
        lines=tuple(lines + ([cut] if cut else [])),
        found=len(walk.changes),
        shown=len(shown),
        exhaustive=walk.stopped is None,
        previous=redact(previous, redact_paths),
        current=redact(current, redact_paths),
        ignore_paths=ignore_paths,
    )


# --- paths --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Attr:
    """A dataclass field on a path, rendered ``.name`` as DeepDiff renders attributes."""

    name: str


@dataclass
class _Trie:
    """``ignore_paths`` or ``redact_paths`` as a tree, looked up while walking a payload."""

    terminal: bool = False
    children: dict[Any, "_Trie"] = field(default_factory=dict)


def _trie(paths: Iterable[PayloadPath]) -> _Trie | None:
    root: _Trie | None = None
    for path in paths:
        if not path:
            continue
        root = root or _Trie()
        node = root
        for element in path:
            node = node.children.setdefault(element, _Trie())
        node.terminal = True
    return root


def _merged(first: _Trie | None, second: _Trie | None) -> _Trie | None:
    if first is None or second is None:
        return first or second
    children = dict(first.children)
    for key, child in second.children.items():
        children[key] = _merged(children.get(key), child)  # type: ignore[assignment]
    return _Trie(terminal=first.terminal or second.terminal, children=children)


def _child(node: _Trie | None, key: Any) -> _Trie | None:
    if node is None:
        return None
    try:
        return node.children.get(key)
    except TypeError:  # an unhashable key cannot be named by any path
        return None


def _item(node: _Trie | None, index: int, length: int) -> _Trie | None:
    # paths.py accepts negative indexes (root['items'][-1]), so a position answers to both.
    if node is None:
        return None
    return _merged(node.children.get(index), node.children.get(index - length))


def _position(node: _Trie | None, sequence: Any, index: int) -> _Trie | None:
    found = _item(node, index, len(sequence))
    names = getattr(type(sequence), "_fields", None)
    if names and node is not None:  # a namedtuple's items are also named by field (root['point'].x)
        found = _merged(found, node.children.get(names[index]))
    return found


def _path_text(path: tuple[Any, ...]) -> str:
    text = "root"
    for element in path:
        # format_path owns the notation of keys and indexes; fields are DeepDiff's ``.name``.
        text += f".{element.name}" if isinstance(element, _Attr) else format_path((element,))[len("root") :]
    return text


def _element_order(element: Any) -> tuple[int, Any]:
    # Indexes in numeric order (root[2] before root[10]), then names, then anything else.
    if isinstance(element, int):
        return (0, element)
    if isinstance(element, str):
        return (1, element)
    if isinstance(element, _Attr):
        return (1, element.name)
    return (2, _repr(element))


def _repr(value: Any) -> str:
    """``repr(value)``, or a readable stand-in where ``repr`` raises (an int beyond 4300 digits)."""
    if type(value) is int:
        return int_text(value)
    try:
        return repr(value)
    except Exception as error:
        if isinstance(value, int):  # a subclass without its own repr: repr() is int's
            return int_text(value)
        return f"<{type(value).__qualname__}: repr() failed with {type(error).__name__}>"


# --- comparing values ---------------------------------------------------------------------

_EXACT_KINDS = frozenset({dict, list, tuple, str, int, float, bool, type(None)})


def _kind(value: Any) -> type:
    """The type a value is compared as: subclasses count as their base, as in the fingerprint."""
    cls = type(value)
    if cls in _EXACT_KINDS:
        return cls
    if isinstance(value, Enum):  # str and int enum members are distinct from their values
        return cls
    if isinstance(value, Mapping):
        return dict
    if isinstance(value, tuple):
        return cls if hasattr(cls, "_fields") else tuple  # a namedtuple is its own kind
    if isinstance(value, set | frozenset):
        return frozenset
    if isinstance(value, bytes | bytearray):
        return bytes
    for base in (list, str, int, float):
        if isinstance(value, base):
            return base
    return cls


def _is_dataclass(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)


def _is_model(value: Any) -> bool:
    # Duck typing, as in the fingerprint: pydantic is not a dependency.
    cls = type(value)
    return hasattr(cls, "model_fields") and hasattr(value, "model_dump") and not isinstance(value, type)


def _model_names(first: Any, second: Any) -> list[str]:
    names = list(type(first).model_fields)
    for model in (first, second):  # extra="allow" values are data too (model_dump shows them)
        names += [name for name in getattr(model, "__pydantic_extra__", None) or {} if name not in names]
    return names


def _maybe_different(first: Any, second: Any) -> bool:
    if first is second:
        return False
    try:
        return not (first == second)
    except Exception:  # e.g. Decimal('sNaN'); look inside instead
        return True


def _both_nan(first: Any, second: Any) -> bool:
    # NaN never equals itself, yet the fingerprint gives NaNs one digest: two NaNs are no change.
    if isinstance(first, float) and isinstance(second, float):
        return math.isnan(first) and math.isnan(second)
    if isinstance(first, Decimal) and isinstance(second, Decimal):
        return first.is_nan() and second.is_nan() and str(first) == str(second)
    return False


def _same_leaf(first: Any, second: Any, *, strict: bool) -> bool:
    if strict and _kind(first) is not _kind(second):
        return False
    try:
        if first == second:
            # 0.0 == -0.0, but their fingerprints differ; the strict walk must find that.
            return not (strict and isinstance(first, float)) or math.copysign(1, first) == math.copysign(1, second)
    except Exception:
        pass
    return _both_nan(first, second)


# --- the walk -----------------------------------------------------------------------------

ChangeKind: TypeAlias = Literal["changed", "added", "removed", "redacted"]
_ABSENT = object()


@dataclass(frozen=True, slots=True)
class _Site:
    """Where the walk is: the path so far and the ignore/redact branches that apply below it."""

    path: tuple[Any, ...]
    ignore: _Trie | None
    redacted: _Trie | None

    def key(self, key: Any) -> "_Site":
        return _Site((*self.path, key), _child(self.ignore, key), _child(self.redacted, key))

    def position(self, sequence: Any, index: int) -> "_Site":
        ignore, redacted = _position(self.ignore, sequence, index), _position(self.redacted, sequence, index)
        return _Site((*self.path, index), ignore, redacted)

    def field(self, name: str, element: Any) -> "_Site":
        return _Site((*self.path, element), _child(self.ignore, name), _child(self.redacted, name))


@dataclass(frozen=True, slots=True)
class _Change:
    site: _Site
    kind: ChangeKind
    before: Any = None
    after: Any = None


class _CutShort(Exception):
    """A budget ran out during the walk."""


class _Walk:
    """One parallel walk over two payloads, collecting :class:`_Change` records."""

    def __init__(self, *, ignore: _Trie | None, redact: _Trie | None, deadline: float, max_nodes: int) -> None:
        self.root = _Site((), ignore, redact)
        self.deadline, self.max_nodes = deadline, max_nodes
        self.changes: list[_Change] = []
        self.nodes = 0
        self.stopped: str | None = None
        self.strict = False

    def compare(self, previous: Any, current: Any, *, strict: bool) -> None:
        """Walk the pair (again), adding to ``changes``; ``stopped`` names a budget that ran out."""
        self.strict = strict
        try:
            if self._differs(previous, current):
                self._visit(previous, current, self.root)
        except _CutShort as reason:
            self.stopped = str(reason)

    def _differs(self, first: Any, second: Any) -> bool:
        # The strict walk cannot trust == (1 == 1.0), so it only skips the very same object.
        return first is not second if self.strict else _maybe_different(first, second)

    def _tick(self, count: int) -> None:
        self.nodes += count
        if self.nodes > self.max_nodes:
            raise _CutShort("node budget")
        if time.perf_counter() > self.deadline:
            raise _CutShort("time budget")

    def _finds_changes(self, walk: Callable[[], None]) -> bool:
        """Run part of the walk for its answer only: whether it finds a change, not which."""
        outer, self.changes = self.changes, []
        try:
            walk()
            return bool(self.changes)
        finally:
            self.changes = outer

    def _visit(self, first: Any, second: Any, site: _Site) -> None:
        """Record the changes between two values already known (or suspected) to differ."""
        self._tick(1)
        if _is_terminal(site.redacted):
            # Walk the secret like any value, but record no change inside it: values would show.
            if self._finds_changes(lambda: self._visit(first, second, _Site(site.path, site.ignore, None))):
                self.changes.append(_Change(site, "redacted"))
            return
        kind = _kind(first)
        if kind is not _kind(second):
            self.changes.append(_Change(site, "changed", first, second))
        elif kind is dict:
            self._mapping(first, second, site)
        elif kind is list or issubclass(kind, tuple):
            self._sequence(first, second, site)
        elif _is_dataclass(first):
            self._fields(first, second, site, [(item.name, _Attr(item.name)) for item in dataclasses.fields(first)])
        elif _is_model(first):
            self._fields(first, second, site, [(name, name) for name in _model_names(first, second)])
        elif not _same_leaf(first, second, strict=self.strict):
            self.changes.append(_Change(site, "changed", first, second))

    def _mapping(self, first: Mapping[Any, Any], second: Mapping[Any, Any], site: _Site) -> None:
        self._tick(max(len(first), len(second)))
        for key in first:
            if key not in second and not _is_ignored(site.ignore, key):
                self.changes.append(_Change(site.key(key), "removed", before=first[key]))
        for key in second:
            if key not in first and not _is_ignored(site.ignore, key):
                self.changes.append(_Change(site.key(key), "added", after=second[key]))
        for key in self._differing_keys(first, second):
            if not _is_ignored(site.ignore, key):
                self._visit(first[key], second[key], site.key(key))

    def _differing_keys(self, first: Mapping[Any, Any], second: Mapping[Any, Any]) -> list[Any]:
        if self.strict:
            return [key for key in first if key in second and first[key] is not second[key]]
        try:  # one comprehension: the == of each pair runs in C
            return [
                key
                for key, value in first.items()
                if key in second and value is not second[key] and value != second[key]
            ]
        except Exception:
            return [key for key in first if key in second and _maybe_different(first[key], second[key])]

    def _sequence(self, first: Any, second: Any, site: _Site) -> None:
        if len(first) != len(second):  # one change for the whole list: items have no identity
            if not self._equal_without_ignored(first, second, site):
                self.changes.append(_Change(site, "changed", first, second))
            return
        self._tick(len(first))
        for index in self._differing_positions(first, second):
            child = site.position(first, index)
            if not _is_terminal(child.ignore):
                self._visit(first[index], second[index], child)

    def _differing_positions(self, first: Any, second: Any) -> list[int]:
        if self.strict:
            return [index for index, (a, b) in enumerate(zip(first, second, strict=True)) if a is not b]
        try:
            return [index for index, (a, b) in enumerate(zip(first, second, strict=True)) if a is not b and a != b]
        except Exception:
            return [index for index, (a, b) in enumerate(zip(first, second, strict=True)) if _maybe_different(a, b)]

    def _equal_without_ignored(self, first: Any, second: Any, site: _Site) -> bool:
        """Whether lists of different lengths match without their ignored positions.

        The fingerprint leaves ignored positions out, so such lists may be the only "difference"
        left; reporting them would be a false change.
        """
        if site.ignore is None or not site.ignore.children:
            return False
        kept_first = [index for index in range(len(first)) if not _is_terminal(_position(site.ignore, first, index))]
        kept_second = [index for index in range(len(second)) if not _is_terminal(_position(site.ignore, second, index))]
        if len(kept_first) != len(kept_second):
            return False

        def walk() -> None:
            for index, other in zip(kept_first, kept_second, strict=True):
                if self._differs(first[index], second[other]):
                    ignore = _merged(_position(site.ignore, first, index), _position(site.ignore, second, other))
                    self._visit(first[index], second[other], _Site((*site.path, index), ignore, None))

        return not self._finds_changes(walk)

    def _fields(self, first: Any, second: Any, site: _Site, names: list[tuple[str, Any]]) -> None:
        """Dataclass or model fields; ``names`` pairs each attribute with its path element."""
        self._tick(len(names))
        for name, element in names:
            if _is_ignored(site.ignore, name):
                continue
            before, after = getattr(first, name, _ABSENT), getattr(second, name, _ABSENT)
            if before is _ABSENT and after is not _ABSENT:
                self.changes.append(_Change(site.field(name, element), "added", after=after))
            elif after is _ABSENT and before is not _ABSENT:
                self.changes.append(_Change(site.field(name, element), "removed", before=before))
            elif before is not _ABSENT and self._differs(before, after):
                self._visit(before, after, site.field(name, element))


def _is_terminal(node: _Trie | None) -> bool:
    return node is not None and node.terminal


def _is_ignored(ignore: _Trie | None, key: Any) -> bool:
    return _is_terminal(_child(ignore, key))


# --- rendering ----------------------------------------------------------------------------

_VALUE_LIMIT = 80


def _change_order(change: _Change) -> tuple[tuple[int, Any], ...]:
    return tuple(_element_order(element) for element in change.site.path)


def _line(change: _Change) -> str:
    path, redacted = _path_text(change.site.path), change.site.redacted
    if change.kind == "redacted":
        return f"{path}: {REDACTED} -> {REDACTED} (redacted value changed)"
    if change.kind == "added":
        return f"{path}: added {_shorten(change.after, redacted)}"
    if change.kind == "removed":
        return f"{path}: removed {_shorten(change.before, redacted)}"
    (before, cut_before), (after, cut_after) = _render(change.before, redacted), _render(change.after, redacted)
    if (cut_before or cut_after) and _is_resized(change.before, change.after):
        # Both texts would start alike ("[{'order_id': ..."): say where the lists differ instead.
        resized = _resized(path, change.before, change.after, redacted)
        if resized is not None:
            return resized
    if before == after and type(change.before) is not type(change.after):  # e.g. a str subclass
        return f"{path}: {before} -> {after} ({type(change.before).__name__} -> {type(change.after).__name__})"
    return f"{path}: {before} -> {after}"


def _is_resized(before: Any, after: Any) -> bool:
    kind = _kind(before)
    return kind is _kind(after) and (kind is list or issubclass(kind, tuple)) and len(before) != len(after)


_SCAN_LIMIT = 100_000


def _resized(path: str, before: Any, after: Any, redacted: _Trie | None) -> str | None:
    """``root['orders']: 3300 -> 3301 items; added at [3300]: {...}``, or ``None`` if too long to scan."""
    shared = min(len(before), len(after))
    start = next((i for i in range(min(shared, _SCAN_LIMIT)) if _maybe_different(before[i], after[i])), None)
    if start is None:
        if shared > _SCAN_LIMIT:
            return None
        start = shared
    end = 0  # equal items at the end, not overlapping the equal start
    while end < shared - start and not _maybe_different(before[-1 - end], after[-1 - end]):
        end += 1
        if end > _SCAN_LIMIT:
            return None
    stop_before, stop_after = len(before) - end, len(after) - end
    head = f"{path}: {len(before)} -> {len(after)} items"
    if start == stop_before:
        return f"{head}; added at {_span(start, stop_after)}: {_render_span(after, start, stop_after, redacted)}"
    if start == stop_after:
        return f"{head}; removed at {_span(start, stop_before)}: {_render_span(before, start, stop_before, redacted)}"
    return (
        f"{head}; {_span(start, stop_before)} -> {_span(start, stop_after)}: "
        f"{_render_span(before, start, stop_before, redacted)} -> {_render_span(after, start, stop_after, redacted)}"
    )


def _span(start: int, stop: int) -> str:
    return f"[{start}]" if stop == start + 1 else f"[{start}:{stop}]"


def _render_span(sequence: Any, start: int, stop: int, redacted: _Trie | None) -> str:
    # Items keep their own positions: redact paths name indexes of the whole list.
    writer = _Writer(_VALUE_LIMIT)
    try:
        if stop == start + 1:
            writer.value(sequence[start], _position(redacted, sequence, start))
        else:
            writer.items("[", sequence, "]", redacted, start=start, stop=stop)
    except _Full:
        pass
    return _clip("".join(writer.parts), _VALUE_LIMIT)[0]


def _cut_short_line(walk: _Walk, *, shown: int, elapsed: float) -> str | None:
    hidden = len(walk.changes) - shown
    if walk.stopped is not None:
        found = _count(len(walk.changes), "change") + " found" + (f", {hidden} more not shown" if hidden else "")
        return (
            f"... diff cut short after {elapsed:.2f} s / {walk.nodes} values compared ({walk.stopped} reached): "
            f"{found}; the rest of the payload was not compared"
        )
    if hidden:
        return f"... diff cut short after {shown} changes; {hidden} more not shown"
    return None


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


class _Full(Exception):
    """The rendered text reached its length limit."""


class _Writer:
    """Renders a value like ``repr`` but stops at ``limit`` characters and hides redacted values.

    Stopping early matters: ``repr`` of a changed list of 3000 orders would build megabytes of
    text just to show 80 characters of it.
    """

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit

    def put(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size > self.limit:
            raise _Full

    def value(self, value: Any, redacted: _Trie | None) -> None:
        if redacted is not None and redacted.terminal:
            self.put(repr(REDACTED))
        elif isinstance(value, str | bytes | bytearray) and not isinstance(value, Enum):
            self.put(repr(value[: self.limit]))
        elif isinstance(value, Mapping):
            self.mapping(value, redacted)
        elif isinstance(value, list):
            self.items("[", value, "]", redacted)
        elif isinstance(value, tuple) and hasattr(type(value), "_fields"):
            names = type(value)._fields
            self.fields(type(value).__name__, [(name, item, _position(redacted, value, index))
                                               for index, (name, item) in enumerate(zip(names, value, strict=True))])
        elif isinstance(value, tuple):
            self.items("(", value, ",)" if len(value) == 1 else ")", redacted)
        elif _is_dataclass(value):
            # The fields repr() would show (repr=False ones stay hidden, as there).
            names = [item.name for item in dataclasses.fields(value) if item.repr]
            self.fields(type(value).__qualname__, self.attributes(value, names, redacted))
        elif _is_model(value):
            names = [name for name, info in type(value).model_fields.items() if getattr(info, "repr", True)]
            self.fields(type(value).__qualname__, self.attributes(value, names, redacted))
        elif redacted is not None and not isinstance(value, int | float | type(None)):
            # A redact path leads inside a value we cannot look into: show none of it.
            self.put(f"<{type(value).__qualname__} holding redacted values>")
        elif isinstance(value, set | frozenset) and value:
            opening = "{" if type(value) is set else f"{type(value).__name__}({{"
            self.items(opening, list(value), "}" if type(value) is set else "})", None)
        else:
            self.put(_repr(value))

    def mapping(self, value: Mapping[Any, Any], redacted: _Trie | None) -> None:
        plain = type(value) is dict
        self.put("{" if plain else f"{type(value).__name__}({{")
        for position, (key, item) in enumerate(value.items()):
            self.put(", " if position else "")
            self.value(key, None)
            self.put(": ")
            self.value(item, _child(redacted, key))
        self.put("}" if plain else "})")

    def items(
        self, opening: str, value: Any, closing: str, redacted: _Trie | None, *, start: int = 0, stop: int | None = None
    ) -> None:
        self.put(opening)
        for index in range(start, len(value) if stop is None else stop):
            self.put(", " if index > start else "")
            self.value(value[index], _position(redacted, value, index))
        self.put(closing)

    @staticmethod
    def attributes(value: Any, names: list[str], redacted: _Trie | None) -> list[tuple[str, Any, _Trie | None]]:
        return [(name, getattr(value, name, None), _child(redacted, name)) for name in names]

    def fields(self, name: str, fields: list[tuple[str, Any, _Trie | None]]) -> None:
        self.put(f"{name}(")
        for position, (field_name, item, redacted) in enumerate(fields):
            self.put(f"{', ' if position else ''}{field_name}=")
            self.value(item, redacted)
        self.put(")")


def _clip(text: str, limit: int) -> tuple[str, bool]:
    return (text, False) if len(text) <= limit else (text[: limit - 3] + "...", True)


def _render(value: Any, redacted: _Trie | None = None, limit: int = _VALUE_LIMIT) -> tuple[str, bool]:
    """``value`` as text of at most ``limit`` characters, and whether it was cut."""
    writer = _Writer(limit)
    try:
        writer.value(value, redacted)
    except _Full:
        pass
    return _clip("".join(writer.parts), limit)


def _shorten(value: Any, redacted: _Trie | None = None, limit: int = _VALUE_LIMIT) -> str:
    return _render(value, redacted, limit)[0]


# --- the DeepDiff on demand ----------------------------------------------------------------


class _Unchanged:
    """Stands in for an unchanged value on both sides of a pruned pair.

    DeepDiff skips a pair that is the same object, so one shared instance hides every equal
    value, while dict keys and list lengths (and so every path) stay those of the full payload.
    It is not a DeepDiff "basic" type, so a list holding it is compared item by item, as the
    original list (which held at least one non-basic item) was.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "<unchanged>"


_UNCHANGED = _Unchanged()
_PAIR: TypeAlias = tuple[Any, Any]

# DeepDiff reports a whole dict as changed, without looking inside, when the share of keys the
# two sides have in common is below this; pruning must not change which dicts that applies to.
_DIFF_DEEPER = inspect.signature(DeepDiff.__init__).parameters["threshold_to_diff_deeper"].default


def _pruned_deepdiff(previous: Any, current: Any, ignore_paths: tuple[PayloadPath, ...]) -> DeepDiff:
    ignore = _trie(ignore_paths)
    pair = _prune(previous, current, ignore, strict=False)
    if pair is None:
        # == saw no difference: keep what DeepDiff tells apart anyway (1 and 1.0, True and 1).
        pair = _prune(previous, current, ignore, strict=True)
    first, second = pair if pair is not None else (_UNCHANGED, _UNCHANGED)
    return DeepDiff(first, second, exclude_paths=[format_path(path) for path in ignore_paths])


def _prune(first: Any, second: Any, ignore: _Trie | None, *, strict: bool) -> _PAIR | None:
    """Copies of a pair holding only what DeepDiff would report on, or ``None`` if nothing.

    Anything DeepDiff does not walk item by item with index-preserving pairing is kept whole,
    so its report is the same as on the full pair.
    """
    if first is second or (not strict and not _maybe_different(first, second)):
        return None
    if type(first) is not type(second):  # DeepDiff reports a type change here
        return first, second
    if isinstance(first, Mapping):
        return _prune_mapping(first, second, ignore, strict=strict)
    if isinstance(first, list | tuple) and not hasattr(first, "_fields"):
        return _prune_sequence(first, second, ignore, strict=strict)
    return None if strict and _equal(first, second) else (first, second)


def _equal(first: Any, second: Any) -> bool:
    try:
        return bool(first == second)
    except Exception:
        return False


def _prune_mapping(
    first: Mapping[Any, Any], second: Mapping[Any, Any], ignore: _Trie | None, *, strict: bool
) -> _PAIR | None:
    union, common = first.keys() | second.keys(), first.keys() & second.keys()
    counted = len(union) - sum(1 for key in union if _is_ignored(ignore, key))
    if counted > 1 and len(common) / counted < _DIFF_DEEPER:
        return first, second  # DeepDiff reports the dicts whole: so must we, values included
    pruned_first: dict[Any, Any] = {}
    pruned_second: dict[Any, Any] = {}
    changed = False
    for key in first:
        if key not in second:
            pruned_first[key], changed = first[key], True
            continue
        pair = None if _is_ignored(ignore, key) else _prune(first[key], second[key], _child(ignore, key), strict=strict)
        pruned_first[key], pruned_second[key] = pair or (_UNCHANGED, _UNCHANGED)
        changed = changed or pair is not None
    for key in second:
        if key not in first:
            pruned_second[key], changed = second[key], True
    return (pruned_first, pruned_second) if changed else None


def _prune_sequence(first: Any, second: Any, ignore: _Trie | None, *, strict: bool) -> _PAIR | None:
    if all(isinstance(item, basic_types) for item in first) and all(isinstance(item, basic_types) for item in second):
        # DeepDiff aligns such lists with difflib, which needs them whole; difflib matches equal
        # items whatever their types (1 and 1.0), so lists that compare equal show no change.
        return None if strict and _equal(first, second) else (first, second)
    shared = min(len(first), len(second))
    pruned_first, pruned_second = [_UNCHANGED] * shared, [_UNCHANGED] * shared
    changed = len(first) != len(second)
    for index in range(shared):
        a, b = first[index], second[index]
        if a is b or (not strict and not _maybe_different(a, b)) or _is_ignored(ignore, index):
            continue
        pair = _prune(a, b, _child(ignore, index), strict=strict)
        if pair is not None:
            pruned_first[index], pruned_second[index] = pair
            changed = True
    pruned_first += first[shared:]
    pruned_second += second[shared:]
    if not changed:
        return None
    if isinstance(first, tuple):
        return tuple(pruned_first), tuple(pruned_second)
    return pruned_first, pruned_second

