"""Input-change policies: what to do when the payload for a workflow_id changed.

A first payload is ``new``; the current fingerprint again is ``unchanged``; a changed one is
``reset`` (the default), ``reuse``, ``raise`` or ``incremental``, or whatever a user hook returns
after looking at an :class:`InputChange`. How a change is described (fast, bounded, redacted) lives in
:mod:`dotflow_dagster.diff`.
"""

from collections.abc import Callable
from dataclasses import FrozenInstanceError, dataclass, field
from typing import Any, Literal, TypeAlias

from deepdiff import DeepDiff

from dotflow_dagster.diff import NO_VISIBLE_CHANGE, ChangeDescription, describe_changes

__all__ = [
    "POLICY_NAMES",
    "ChangeDescription",
    "Decision",
    "InputChange",
    "InputChangePolicy",
    "PolicyName",
    "describe_changes",
    "resolve_policy",
    "validate_policy",
]

PolicyName: TypeAlias = Literal["reset", "reuse", "raise", "incremental"]
Decision: TypeAlias = Literal["new", "unchanged", "reset", "reuse", "raise", "incremental"]
POLICY_NAMES: tuple[PolicyName, ...] = ("reset", "reuse", "raise", "incremental")


class _DiffOnDemand:
    """``InputChange.diff``: the DeepDiff given to the constructor, else one built on first read.

    A descriptor-typed dataclass field, so ``InputChange(..., diff=...)`` keeps working while
    the usual construction (from a :class:`ChangeDescription`) defers the DeepDiff until a hook
    actually reads it.
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = f"_{name}_value"

    def __get__(self, instance: Any, owner: type | None = None) -> Any:
        if instance is None:
            return self  # the dataclass field's default: "not given"
        value = instance.__dict__.get(self.slot)
        if value is None:
            value = instance._build_diff()
            instance.__dict__[self.slot] = value
        return value

    def __set__(self, instance: Any, value: Any) -> None:
        if self.slot in instance.__dict__:  # only __init__ may set it: the dataclass is frozen
            raise FrozenInstanceError(f"cannot assign to field {self.slot[1:-6]!r}")
        instance.__dict__[self.slot] = None if value is self else value


@dataclass(frozen=True)
class InputChange:
    """What a policy hook sees when the payload for a workflow_id changed.

    Payloads and the diff are already redacted (``redact_paths`` show as ``'***'``). Build it
    with :meth:`from_description`; the DeepDiff in ``diff`` is then only computed if read.

    Attributes:
        workflow_id: the workflow whose input changed.
        previous_fingerprint: the ledger's current fingerprint.
        current_fingerprint: the new payload's fingerprint.
        previous_payload: the payload stored for ``previous_fingerprint`` (``None`` if it is gone).
        current_payload: the new payload.
        diff: ``DeepDiff(previous_payload, current_payload)``, ignoring ``ignore_paths``; built
            on first read (see :attr:`ChangeDescription.diff`).
        changes: the change as readable lines, e.g. ``"root['v']: 1 -> 2"`` (at most
            ``max_lines`` of them, then a ``"... diff cut short"`` line).
        description: the :class:`ChangeDescription` this change was built from, if any.

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
    diff: DeepDiff = field(default=_DiffOnDemand(), repr=False, compare=False)  # type: ignore[assignment]
    changes: tuple[str, ...] = ()
    description: ChangeDescription | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.changes and self.description is not None:
            object.__setattr__(self, "changes", self.description.lines)

    @classmethod
    def from_description(
        cls,
        description: ChangeDescription,
        *,
        workflow_id: str,
        previous_fingerprint: str,
        current_fingerprint: str,
    ) -> "InputChange":
        """The change a hook sees, from :func:`describe_changes`' result (no DeepDiff built yet)."""
        return cls(
            workflow_id=workflow_id,
            previous_fingerprint=previous_fingerprint,
            current_fingerprint=current_fingerprint,
            previous_payload=description.previous,
            current_payload=description.current,
            changes=description.lines,
            description=description,
        )

    @property
    def diff_text(self) -> str:
        """The readable diff, one change per line."""
        return "\n".join(self.changes) or NO_VISIBLE_CHANGE

    def _build_diff(self) -> DeepDiff:
        if self.description is not None:
            return self.description.diff
        return DeepDiff(self.previous_payload, self.current_payload)


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
    """Turn a policy into one of ``reset``, ``reuse``, ``raise``, ``incremental`` for this change."""
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

