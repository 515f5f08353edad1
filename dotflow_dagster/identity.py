"""Caller-supplied identity: checking what ``fingerprint_fn`` returns, and comparing ``validate_paths``.

An identity is the partition key and a folder in the store, so it obeys the store's segment
rule and Dagster's partition-key rule. Two payloads with one identity are compared only at
``validate_paths``, by canonical fingerprint, reaching the same containers as redaction does.
"""

import dataclasses
import re
from collections.abc import Mapping
from enum import Enum
from typing import Any

from dotflow_dagster.diff import describe_changes
from dotflow_dagster.display import int_text
from dotflow_dagster.fingerprint import FingerprintError
from dotflow_dagster.fingerprint import fingerprint as compute_fingerprint
from dotflow_dagster.paths import PayloadPath

__all__ = ["IDENTITY_RULE", "MISSING", "checked_identity", "is_identity", "same_value", "value_at"]

_IDENTITY = re.compile(r"[A-Za-z0-9._-]{1,128}")
IDENTITY_RULE = (
    "an identity is 1-128 characters of letters, digits, '.', '_' or '-', without '...' (Dagster "
    "refuses it in partition keys) and not '.' or '..' (it names a folder in the store)"
)


def _shown(value: object) -> str:
    """An identity as an error message shows it: in full, unless it is far too long."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 200 else f"{value[:100]!r}... ({len(value)} characters)"
    if value is None:
        return "None"
    if isinstance(value, bool | int | float | bytes):
        text = int_text(value) if type(value) is int else repr(value)
        return f"the {type(value).__name__} {text if len(text) <= 200 else text[:100] + '...'}"
    # A container may be (part of) the payload itself: name its type only.
    return f"a {type(value).__name__}"


def is_identity(value: object) -> bool:
    """Whether ``value`` can be a fingerprint at all: a canonical one, or one ``fingerprint_fn`` returned."""
    return isinstance(value, str) and bool(_IDENTITY.fullmatch(value)) and "..." not in value and value not in (".", "..")


def checked_identity(value: object, *, workflow_id: str) -> str:
    """``value`` if it is a valid identity returned by ``fingerprint_fn``, else a ``ValueError``."""
    if not is_identity(value):
        raise ValueError(
            f"workflow {workflow_id!r}: fingerprint_fn returned {_shown(value)}, which is not a valid identity: "
            f"{IDENTITY_RULE}"
        )
    return value


# A path that reaches nothing in a payload (absent key, index out of range, not a container).
MISSING: Any = object()


def value_at(value: Any, path: PayloadPath) -> Any:
    """The value ``path`` reaches in ``value``, as ``paths.redact`` reaches it, or ``MISSING``."""
    for element in path:
        value = _child(value, element)
        if value is MISSING:
            break
    return value


def _child(value: Any, element: str | int) -> Any:
    # The same containers, in the same order, as paths.redact and the fingerprint.
    try:
        if isinstance(value, Enum):
            return MISSING
        if isinstance(value, Mapping):
            return value[element] if element in value else MISSING
        if isinstance(value, list | tuple):
            if isinstance(element, int) and not isinstance(element, bool):
                index = element + len(value) if element < 0 else element
                return value[index] if 0 <= index < len(value) else MISSING
            fields = getattr(type(value), "_fields", None) if isinstance(value, tuple) else None
            if isinstance(fields, tuple) and element in fields:
                return value[fields.index(element)]  # a namedtuple field by name
            return MISSING
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            names = {field.name for field in dataclasses.fields(value)}
            return getattr(value, element) if element in names else MISSING
        cls = type(value)
        if hasattr(cls, "model_fields") and hasattr(value, "model_dump") and not isinstance(value, type):
            if getattr(cls, "__pydantic_root_model__", False) is True:
                return _child(value.root, element)  # paths address a RootModel's root value
            extra = getattr(value, "__pydantic_extra__", None)
            names = set(cls.model_fields) | (set(extra) if isinstance(extra, dict) else set())
            return getattr(value, element) if element in names else MISSING
    except Exception:  # an odd key type for this mapping, an unreadable field: nothing there
        return MISSING
    return MISSING


def same_value(first: Any, second: Any) -> bool:
    """Whether two values are the same input: equal canonical fingerprints (``1`` is not ``1.0``)."""
    if first is MISSING or second is MISSING:
        return first is second
    try:
        return compute_fingerprint(first) == compute_fingerprint(second)
    except FingerprintError:
        # Not canonically encodable (fingerprint_fn exists for such payloads): compare as the diff does.
        described = describe_changes(first, second, max_lines=0)
        return described.found == 0 and described.exhaustive
