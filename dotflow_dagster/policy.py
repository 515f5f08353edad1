"""Input-change policies: what to do when the payload for a workflow_id changed.

The decision table (``DESIGN.md`` section 3): a first payload is ``new``; the current fingerprint
again is ``unchanged``; a changed one is ``reset`` (the default), ``reuse`` or ``raise``, or
whatever a user hook returns after looking at an :class:`InputChange`.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

from deepdiff import DeepDiff
from deepdiff.helper import notpresent
from deepdiff.path import extract

from dotflow_dagster.paths import REDACTED, PayloadPath, format_path, redact

__all__ = [
    "POLICY_NAMES",
    "Decision",
    "InputChange",
    "InputChangePolicy",
    "PolicyName",
    "describe_changes",
    "resolve_policy",
    "validate_policy",
]

PolicyName: TypeAlias = Literal["reset", "reuse", "raise"]
Decision: TypeAlias = Literal["new", "unchanged", "reset", "reuse", "raise"]
POLICY_NAMES: tuple[PolicyName, ...] = ("reset", "reuse", "raise")


@dataclass(frozen=True)
class InputChange:
    """What a policy hook sees when the payload for a workflow_id changed.

    Payloads and the diff are already redacted (``redact_paths`` show as ``'***'``).

    Attributes:
        workflow_id: the workflow whose input changed.
        previous_fingerprint: the ledger's current fingerprint.
        current_fingerprint: the new payload's fingerprint.
        previous_payload: the payload stored for ``previous_fingerprint`` (``None`` if it is gone).
        current_payload: the new payload.
        diff: ``DeepDiff(previous_payload, current_payload)``, ignoring ``ignore_paths``.
        changes: the same diff as readable lines, e.g. ``"root['v']: 1 -> 2"``.

    Example:
        >>> def policy(change: InputChange) -> str:
        ...     only_dates = all("['date']" in path for path in change.diff.affected_paths)
        ...     return "reuse" if only_dates else "reset"
    """

    workflow_id: str
    previous_fingerprint: str
    current_fingerprint: str
    previous_payload: Any
    current_payload: Any
    diff: DeepDiff
    changes: tuple[str, ...] = field(default=())

    @property
    def diff_text(self) -> str:
        """The readable diff, one change per line."""
        return "\n".join(self.changes) or "  (no visible change: only redacted or ignored values differ)"


InputChangePolicy: TypeAlias = PolicyName | Callable[[InputChange], str]


def validate_policy(policy: object, *, workflow_id: str) -> InputChangePolicy:
    """Check a policy given by name or as a hook, naming the workflow in the error."""
    if isinstance(policy, str):
        if policy not in POLICY_NAMES:
            raise ValueError(
                f"workflow {workflow_id!r}: on_input_change must be one of {', '.join(POLICY_NAMES)} "
                f"or a callable taking an InputChange; got {policy!r}"
            )
        return policy  # type: ignore[return-value]
    if callable(policy):
        return policy  # type: ignore[return-value]
    raise TypeError(
        f"workflow {workflow_id!r}: on_input_change must be a policy name or a callable, "
        f"got {type(policy).__name__}"
    )


def resolve_policy(policy: InputChangePolicy, change: InputChange) -> PolicyName:
    """Turn a policy into one of ``reset``, ``reuse``, ``raise`` for this change."""
    if isinstance(policy, str):
        return policy  # type: ignore[return-value]
    hook_name = getattr(policy, "__qualname__", type(policy).__name__)
    answer = policy(change)
    if answer not in POLICY_NAMES:
        raise ValueError(
            f"workflow {change.workflow_id!r}: on_input_change hook {hook_name} returned {answer!r}; "
            f"it must return one of {', '.join(POLICY_NAMES)}"
        )
    return answer


def _shorten(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _value_at(payload: Any, path: PayloadPath) -> Any:
    try:
        return extract(payload, format_path(path))
    except Exception:
        return notpresent


def describe_changes(
    previous: Any,
    current: Any,
    *,
    ignore_paths: Iterable[PayloadPath] = (),
    redact_paths: Iterable[PayloadPath] = (),
    max_lines: int = 20,
) -> tuple[DeepDiff, tuple[str, ...], Any, Any]:
    """Diff two payloads with redaction applied before anything is compared or printed.

    Returns:
        ``(diff, lines, redacted_previous, redacted_current)``. A change under a redacted path
        shows as ``root['token']: *** -> *** (redacted value changed)``, never with its values.
    """
    redact_paths = tuple(redact_paths)
    ignore_paths = tuple(ignore_paths)
    shown_previous = redact(previous, redact_paths)
    shown_current = redact(current, redact_paths)
    diff = DeepDiff(
        shown_previous,
        shown_current,
        exclude_paths=[format_path(path) for path in ignore_paths],
    )
    changes: list[tuple[str, str]] = []
    for report_type, levels in diff.tree.items():
        for level in levels:
            path, before, after = level.path(), level.t1, level.t2
            if before is notpresent or "added" in report_type:
                changes.append((path, f"{path}: added {_shorten(after)}"))
            elif after is notpresent or "removed" in report_type:
                changes.append((path, f"{path}: removed {_shorten(before)}"))
            else:
                changes.append((path, f"{path}: {_shorten(before)} -> {_shorten(after)}"))
    lines = [text for _, text in sorted(changes)]
    for path in redact_paths:
        before, after = _value_at(previous, path), _value_at(current, path)
        if before is not notpresent and after is not notpresent and before != after:
            lines.append(f"{format_path(path)}: {REDACTED} -> {REDACTED} (redacted value changed)")
    if len(lines) > max_lines:
        lines = lines[:max_lines] + [f"... and {len(lines) - max_lines} more"]
    return diff, tuple(lines), shown_previous, shown_current
