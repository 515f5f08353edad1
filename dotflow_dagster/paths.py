"""DeepDiff-style payload paths (``root['items'][3]``): parsing, removal and redaction.

One notation serves ``ignore_paths``, ``redact_paths``, diff output and error messages, so a path
a user reads in an error can be pasted straight into the workflow's configuration.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from deepdiff.path import parse_path

__all__ = ["REDACTED", "PayloadPath", "parse_paths", "format_path", "without_paths", "redact"]

REDACTED = "***"

PayloadPath = tuple[str | int, ...]


def parse_paths(paths: Iterable[str]) -> tuple[PayloadPath, ...]:
    """Parse DeepDiff-style paths such as ``"root['a'][0]"`` into element tuples.

    Raises:
        ValueError: a path does not start at ``root`` or cannot be parsed; the message names it.
    """
    parsed = []
    for path in paths:
        if not isinstance(path, str) or not path.startswith("root"):
            raise ValueError(f"payload path {path!r} must be a DeepDiff-style path such as \"root['key'][0]\"")
        try:
            elements = tuple(parse_path(path))
        except Exception as error:
            raise ValueError(f"payload path {path!r} cannot be parsed: {error}") from None
        if not elements:
            raise ValueError(f"payload path {path!r} names the whole payload; name a key inside it")
        parsed.append(elements)
    return tuple(parsed)


def format_path(elements: Sequence[Any]) -> str:
    """Render path elements as a DeepDiff-style path: ``('items', 3)`` -> ``root['items'][3]``."""
    return "root" + "".join(f"[{element!r}]" for element in elements)


def _replace_at(value: Any, path: PayloadPath, replacement: Any, *, remove: bool) -> Any:
    """Return ``value`` with ``path`` removed or replaced, copying only the containers on the path."""
    head, rest = path[0], path[1:]
    if isinstance(value, Mapping):
        if head not in value:
            return value
        copied = dict(value)
        if rest:
            copied[head] = _replace_at(value[head], rest, replacement, remove=remove)
        elif remove:
            del copied[head]
        else:
            copied[head] = replacement
        return copied
    if isinstance(value, list | tuple) and isinstance(head, int) and -len(value) <= head < len(value):
        copied_list = list(value)
        if rest:
            copied_list[head] = _replace_at(value[head], rest, replacement, remove=remove)
        elif remove:
            del copied_list[head]
        else:
            copied_list[head] = replacement
        if isinstance(value, tuple):
            # namedtuples take their fields as arguments, plain tuples take one iterable
            return value._make(copied_list) if hasattr(value, "_make") else type(value)(copied_list)
        return copied_list
    return value


def without_paths(payload: Any, paths: Iterable[PayloadPath]) -> Any:
    """Return ``payload`` without the values at ``paths``; absent paths are skipped, input untouched."""
    for path in paths:
        payload = _replace_at(payload, path, None, remove=True)
    return payload


def redact(payload: Any, paths: Iterable[PayloadPath]) -> Any:
    """Return ``payload`` with the values at ``paths`` replaced by ``'***'``; the input is untouched."""
    for path in paths:
        payload = _replace_at(payload, path, REDACTED, remove=False)
    return payload
