"""Declared step reads: which parts of the payload a step sees, enforced while it runs.

``DotflowWorkflow(..., reads={"load": ["root['orders_file']", "root['options']['currency']"]})``
gives the ``load`` step, as ``initial_context.storage``, a :class:`PayloadView`: a ``dict`` that
holds exactly the declared subtrees. Reading any other key, at any level, with ``[]``, ``.get()``
or ``in``, raises :class:`UndeclaredReadError` at once, so a wrong declaration fails the first
test run instead of returning a silent ``None`` or, under the ``incremental`` policy, stale output.

The declared values are also what the ``incremental`` policy compares: each checkpoint records
the fingerprint of every declared value it was computed from (:func:`read_digests`).

Example:
    >>> from dotflow_dagster.reads import parse_reads, project
    >>> reads = parse_reads({"load": ["root['options']['currency']"]}, step_names=["load"], workflow_id="wf")
    >>> view = project({"options": {"currency": "EUR", "rate": 2}, "n": 1}, reads["load"], step="load")
    >>> view
    {'options': {'currency': 'EUR'}}
    >>> view["options"]["rate"]
    Traceback (most recent call last):
    ...
    dotflow_dagster.reads.UndeclaredReadError: step 'load' read root['options']['rate'], which it does not declare; its reads are: root['options']['currency']
"""

import hashlib
import pickle
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dotflow_dagster.fingerprint import fingerprint as compute_fingerprint
from dotflow_dagster.paths import PayloadPath, format_path, parse_paths

__all__ = [
    "PayloadView",
    "StepReads",
    "UndeclaredReadError",
    "parse_reads",
    "project",
    "read_digests",
    "value_digest",
]


class UndeclaredReadError(KeyError):
    """A step read a payload key outside its declared ``reads``.

    A ``KeyError`` so code that expects one from a ``dict`` still sees one, but it is never a
    quiet miss: ``.get()`` and ``in`` raise it too.

    Attributes:
        step: the step that read it.
        path: the path it tried to read, e.g. ``"root['options']['rate']"``.
        declared: the step's declared paths.
    """

    def __init__(self, *, step: str, path: str, declared: tuple[str, ...]) -> None:
        self.step = step
        self.path = path
        self.declared = declared
        super().__init__(path)

    def __str__(self) -> str:
        listed = ", ".join(self.declared) if self.declared else "nothing (reads=[])"
        return f"step {self.step!r} read {self.path}, which it does not declare; its reads are: {listed}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_undeclared, (self.step, self.path, self.declared))


def _rebuild_undeclared(step: str, path: str, declared: tuple[str, ...]) -> UndeclaredReadError:
    return UndeclaredReadError(step=step, path=path, declared=declared)


# As deep as a payload can be and still have a canonical fingerprint.
MAX_READ_DEPTH = 254

# A declared path ends here: the whole subtree below is visible.
_WHOLE = None


@dataclass(frozen=True)
class StepReads:
    """One step's declared reads, parsed.

    Attributes:
        step: the step's name.
        paths: the declared paths as element tuples (string keys only), in declaration order.
        texts: the same paths as DeepDiff-style text, e.g. ``"root['orders_file']"``.
        tree: the paths as nested dicts; ``None`` marks a declared subtree, seen whole.
    """

    step: str
    paths: tuple[PayloadPath, ...]
    texts: tuple[str, ...]
    tree: Mapping[str, Any]

    @property
    def identity(self) -> str:
        """What the step's checkpoint key includes: the declared paths, sorted, deduplicated."""
        return "\n".join(sorted(set(self.texts)))


def parse_reads(
    reads: Mapping[str, Iterable[str]], *, step_names: Iterable[str], workflow_id: str
) -> dict[str, StepReads]:
    """Check and parse ``DotflowWorkflow(reads=...)``.

    Raises:
        TypeError: ``reads`` is not a mapping of step names to lists of paths.
        ValueError: naming the step and the path: a step the workflow does not have, a malformed
            path, a path into a list (``[0]``: declare the whole list instead), or a single string
            where a list of paths is expected.
    """
    if not isinstance(reads, Mapping):
        raise TypeError(
            f"workflow {workflow_id!r}: reads must map step names to lists of payload paths, "
            f"got {type(reads).__name__}"
        )
    known = list(step_names)
    parsed: dict[str, StepReads] = {}
    for step, paths in reads.items():
        if step not in known:
            raise ValueError(
                f"workflow {workflow_id!r}: reads names step {step!r}, which the workflow does not have "
                f"(its steps: {', '.join(known)})"
            )
        where = f"workflow {workflow_id!r}: reads[{step!r}]"
        if isinstance(paths, str | bytes | bytearray):
            raise ValueError(f"{where} must be a list of paths, not the single string {paths!r}; write [{paths!r}]")
        try:
            entries = list(paths)
        except TypeError:
            raise ValueError(f"{where} must be a list of payload paths, got {type(paths).__name__}") from None
        elements: list[PayloadPath] = []
        for text in entries:
            try:
                (path,) = parse_paths([text])
            except (TypeError, ValueError) as error:
                raise ValueError(f"{where}: {error}") from None
            if len(path) > MAX_READ_DEPTH:
                raise ValueError(
                    f"{where}: path {text[:80]!r}... is {len(path)} keys deep; at most {MAX_READ_DEPTH} "
                    "(deeper payloads have no fingerprint)"
                )
            if any(not isinstance(element, str) for element in path):
                raise ValueError(
                    f"{where}: path {text!r} reaches into a list (or an integer key); a step declares "
                    f"whole values, so declare the list itself, e.g. {format_path(path[: _first_index(path)])!r}"
                )
            elements.append(path)
        parsed[step] = StepReads(
            step=step,
            paths=tuple(elements),
            texts=tuple(format_path(path) for path in elements),
            tree=_tree(elements),
        )
    return parsed


def _first_index(path: PayloadPath) -> int:
    return next(position for position, element in enumerate(path) if not isinstance(element, str))


def _tree(paths: Iterable[PayloadPath]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    # Shorter paths first: a declared subtree swallows every longer path inside it.
    for path in sorted(paths, key=len):
        node: dict[str, Any] | None = root
        for element in path[:-1]:
            child = node.setdefault(element, {})
            if child is _WHOLE:
                node = None
                break
            node = child
        if node is not None:
            node[path[-1]] = _WHOLE
    return root


class PayloadView(dict):
    """The part of the payload one step declared; every other key raises :class:`UndeclaredReadError`.

    A real ``dict`` (``json.dumps``, ``isinstance(x, dict)`` and iteration work, and only the
    declared keys the payload has are in it). A declared key the payload lacks behaves as in a
    plain ``dict``: ``[]`` raises ``KeyError``, ``.get()`` returns the default, ``in`` is
    ``False``. Pickled, it becomes a plain ``dict``.
    """

    def __init__(self, *, step: str, declared: tuple[str, ...], keys: frozenset[str], path: PayloadPath) -> None:
        super().__init__()
        self._step = step
        self._declared = declared
        self._keys = keys
        self._path = path

    def _undeclared(self, key: Any) -> UndeclaredReadError:
        return UndeclaredReadError(step=self._step, path=format_path((*self._path, key)), declared=self._declared)

    def _readable(self, key: Any) -> bool:
        """Whether ``key`` holds a value; raises for a key the step did not declare."""
        if dict.__contains__(self, key):
            return True
        try:
            declared = key in self._keys
        except TypeError:  # an unhashable key: no payload key can match it
            declared = False
        if not declared:
            raise self._undeclared(key)
        return False

    def __getitem__(self, key: Any) -> Any:
        if self._readable(key):
            return dict.__getitem__(self, key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return self._readable(key)

    def get(self, key: Any, default: Any = None) -> Any:
        return dict.__getitem__(self, key) if self._readable(key) else default

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if self._readable(key):
            return dict.__getitem__(self, key)
        dict.__setitem__(self, key, default)
        return default

    def pop(self, key: Any, *default: Any) -> Any:
        self._readable(key)
        return dict.pop(self, key, *default)

    def copy(self) -> "PayloadView":
        duplicate = PayloadView(step=self._step, declared=self._declared, keys=self._keys, path=self._path)
        dict.update(duplicate, self)
        return duplicate

    def to_dict(self) -> dict[Any, Any]:
        """A plain ``dict`` copy, views inside it turned into plain dicts too."""
        return {key: value.to_dict() if isinstance(value, PayloadView) else value for key, value in self.items()}

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (self.to_dict(),))

    def __repr__(self) -> str:
        return repr(self.to_dict())


def project(payload: Mapping[Any, Any], reads: StepReads, *, step: str) -> PayloadView:
    """What ``step`` sees of ``payload``: exactly its declared subtrees (the values are not copied)."""
    return _project(payload, reads.tree, step=step, declared=reads.texts, path=())


def _project(
    value: Mapping[Any, Any], tree: Mapping[str, Any], *, step: str, declared: tuple[str, ...], path: PayloadPath
) -> PayloadView:
    view = PayloadView(step=step, declared=declared, keys=frozenset(tree), path=path)
    for key, below in tree.items():
        try:
            present = key in value
        except TypeError:
            present = False
        if not present:
            continue
        child = value[key]
        if below is _WHOLE:
            dict.__setitem__(view, key, child)
        elif isinstance(child, Mapping):
            dict.__setitem__(view, key, _project(child, below, step=step, declared=declared, path=(*path, key)))
        # A deeper path through something that is not a mapping reaches nothing: absent.
    return view


def value_digest(value: Any) -> str | None:
    """A digest that is equal for equal values: the canonical fingerprint, else sha256 of the pickle.

    ``None`` when neither works: such a value never compares equal, so nothing is reused on it.
    """
    try:
        return compute_fingerprint(value)
    except Exception:  # no canonical encoding (an arbitrary object): fall back to its pickle
        pass
    try:
        return "pickle:" + hashlib.sha256(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)).hexdigest()
    except Exception:
        return None


def read_digests(payload: Any, reads: StepReads) -> dict[str, str | None]:
    """``{declared path: digest of its value}``; an absent path's digest is ``"absent"``."""
    digests: dict[str, str | None] = {}
    for path, text in zip(reads.paths, reads.texts, strict=True):
        value = _mapping_value_at(payload, path)
        digests[text] = "absent" if value is _ABSENT else value_digest(value)
    return digests


_ABSENT: Any = object()


def _mapping_value_at(value: Any, path: PayloadPath) -> Any:
    # Through mappings only, as project() reaches values: what a step sees is what is compared.
    for key in path:
        if not isinstance(value, Mapping):
            return _ABSENT
        try:
            if key not in value:
                return _ABSENT
        except TypeError:
            return _ABSENT
        value = value[key]
    return value
