"""``DotflowWorkflow``: a named list of dotflow steps with an input-change policy.

It is the unit everything else is built on: the Dagster asset and the submit job both take
one. It also runs on its own, e.g. in a Lambda or Celery handler.
"""

import hashlib
import re
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from dotflow import action as dotflow_action
from dotflow.core.action import Action

from dotflow_dagster.fingerprint import fingerprint as compute_fingerprint
from dotflow_dagster.ledger import Ledger, LedgerState
from dotflow_dagster.paths import parse_paths, redact
from dotflow_dagster.policy import InputChangePolicy, validate_policy
from dotflow_dagster.report import RunReport
from dotflow_dagster.stores import DotflowStore

if TYPE_CHECKING:
    from dotflow_dagster.runner import RunTrigger

__all__ = ["DOTFLOW_ID_NAMESPACE", "DotflowWorkflow", "StepSpec", "validate_workflow_id"]

# dotflow requires UUID workflow ids; ours are human names. uuid5 under this fixed namespace maps
# each name to the same UUID on every machine, forever: never change it.
DOTFLOW_ID_NAMESPACE = uuid.UUID("d33ac5bb-d74a-4317-89ef-08e8b2b63273")

_WORKFLOW_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_SUPPORTED_MODES = ("sequential", "background")
_REFUSED_MODES = {
    "parallel": "dotflow 1.0.1's parallel mode ignores resume, so checkpoints would be lost",
    "sequential_group": "dotflow 1.0.1's sequential_group mode marks a failed step completed on the next run",
}


def validate_workflow_id(workflow_id: object) -> str:
    """Return ``workflow_id`` if it is 1-128 characters of ``[A-Za-z0-9._-]``, not ``.`` or ``..``.

    Raises:
        ValueError: naming the refused id.
    """
    if not isinstance(workflow_id, str) or not _WORKFLOW_ID.fullmatch(workflow_id) or workflow_id in (".", ".."):
        raise ValueError(
            f"invalid workflow_id {workflow_id!r}: use 1-128 characters of letters, digits, '.', '_' or '-', "
            "not '.' or '..'"
        )
    return workflow_id


def _decorated_function(step: Callable[..., Any]) -> Callable[..., Any]:
    """Find the user's function behind a dotflow step.

    A plain ``@action`` is an ``Action`` object without ``__name__``; ``@action(retry=...)``
    returns a closure named ``action`` that holds the function in its ``args`` cell.
    """
    if isinstance(step, Action):
        return step.func
    closure = getattr(step, "__closure__", None)
    if getattr(step, "__module__", None) == Action.__module__ and closure:
        cells = dict(zip(step.__code__.co_freevars, (cell.cell_contents for cell in closure), strict=True))
        args = cells.get("args")
        if args and callable(args[0]):
            return args[0]
        owner = cells.get("self")
        if isinstance(owner, Action) and owner.func is not None:
            return owner.func
    return step


def _path_list(paths: Any) -> Any:
    # A single string stays a string so parse_paths refuses it by name instead of reading it
    # character by character; any other iterable (a generator too) is kept as a tuple.
    if isinstance(paths, str | bytes | bytearray) or not isinstance(paths, Iterable):
        return paths
    return tuple(paths)


@dataclass(frozen=True)
class StepSpec:
    """A step's deterministic identity.

    ``key`` chains the position and qualified name of this step and every step before it, so a
    renamed or reordered step invalidates its checkpoint and all checkpoints after it.
    """

    position: int
    name: str
    qualified_name: str
    key: str
    action: Callable[..., Any]


def _step_specs(steps: Sequence[Callable[..., Any]], *, workflow_id: str) -> tuple[StepSpec, ...]:
    if not steps:
        raise ValueError(f"workflow {workflow_id!r} needs at least one step")
    specs: list[StepSpec] = []
    chain = hashlib.sha256(b"dotflow_dagster/steps/v1")
    for position, step in enumerate(steps):
        if not callable(step):
            raise TypeError(f"workflow {workflow_id!r}: step {position} is a {type(step).__name__}, not a callable")
        function = _decorated_function(step)
        name = getattr(function, "__name__", None) or type(function).__name__
        qualified_name = f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', name)}"
        # An undecorated function is wrapped so dotflow's engine (retries) can run it.
        runnable = step if getattr(step, "__module__", None) == Action.__module__ else dotflow_action(step)
        timeout = getattr(runnable, "timeout", 0)
        if timeout:
            raise ValueError(
                f"workflow {workflow_id!r}: step {name!r} uses @action(timeout={timeout}), which is refused: "
                "dotflow 1.0.1 cannot stop a timed-out step (it keeps running in a thread after the run "
                "has given up on it), so a retry or the next run would execute it twice at once. Bound the "
                "work inside the step instead (e.g. a client timeout), or in Dagster the whole run with the "
                "run tag dagster/max_runtime, which terminates the run's process."
            )
        chain.update(f"{position}:{qualified_name}\n".encode())
        safe_name = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:60]
        specs.append(
            StepSpec(
                position=position,
                name=name,
                qualified_name=qualified_name,
                key=f"{position:03d}-{safe_name}-{chain.hexdigest()[:16]}",
                action=runnable,
            )
        )
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(
            f"workflow {workflow_id!r}: step names must be unique (outputs are keyed by name); "
            f"repeated: {', '.join(duplicates)}"
        )
    return tuple(specs)


class DotflowWorkflow:
    """A dotflow workflow whose checkpoints are namespaced by the fingerprint of its input.

    The same payload resumes where it stopped, in any process; a different payload is handled by
    ``on_input_change``, which defaults to ``reset``: a new input never silently reuses
    checkpoints computed from an old one (dotflow's own default, ``reuse``, does exactly that).

    Args:
        workflow_id: the workflow's name: 1-128 characters of ``[A-Za-z0-9._-]``.
        steps: dotflow ``@action`` steps (plain functions are wrapped), run in order.
        on_input_change: ``"reset"`` (default), ``"reuse"``, ``"raise"``, or a callable taking an
            :class:`~dotflow_dagster.InputChange` and returning one of the three.
        ignore_paths: DeepDiff-style paths (``"root['received_at']"``) left out of the fingerprint.
        redact_paths: paths shown as ``'***'`` in diffs, errors, reports and metadata (they still
            count in the fingerprint unless also ignored).
        mode: ``"sequential"`` (default) or ``"background"`` (run in order and joined before
            ``run`` returns); ``parallel`` and ``sequential_group`` are refused.
        retention: how many earlier fingerprints keep their checkpoints; older ones are deleted
            after each run. Payloads are kept, so any fingerprint can still run from its key.
        description: shown in Dagster.

    Example:
        >>> import tempfile
        >>> from dotflow import action
        >>> from dotflow_dagster import DotflowWorkflow, LocalStore
        >>> @action
        ... def extract(initial_context):
        ...     return initial_context.storage["n"]
        >>> @action
        ... def double(previous_context):
        ...     return previous_context.storage * 2
        >>> wf = DotflowWorkflow("doubler", steps=[extract, double])
        >>> store = LocalStore(tempfile.mkdtemp())
        >>> wf.run({"n": 21}, store=store).result
        42
        >>> wf.run({"n": 21}, store=store).executed   # same input: nothing left to do
        []
    """

    def __init__(
        self,
        workflow_id: str,
        *,
        steps: Sequence[Callable[..., Any]],
        on_input_change: InputChangePolicy = "reset",
        ignore_paths: Iterable[str] = (),
        redact_paths: Iterable[str] = (),
        mode: str = "sequential",
        retention: int = 5,
        description: str | None = None,
    ) -> None:
        self.workflow_id = validate_workflow_id(workflow_id)
        self.steps = _step_specs(list(steps), workflow_id=workflow_id)
        self.on_input_change = validate_policy(on_input_change, workflow_id=workflow_id)
        self.ignore_paths = _path_list(ignore_paths)
        self.redact_paths = _path_list(redact_paths)
        self.parsed_ignore_paths = parse_paths(self.ignore_paths)
        self.parsed_redact_paths = parse_paths(self.redact_paths)
        if mode in _REFUSED_MODES:
            raise ValueError(f"workflow {workflow_id!r}: mode {mode!r} is refused: {_REFUSED_MODES[mode]}")
        if mode not in _SUPPORTED_MODES:
            raise ValueError(f"workflow {workflow_id!r}: unknown mode {mode!r}; use one of {_SUPPORTED_MODES}")
        self.mode = mode
        if isinstance(retention, bool) or not isinstance(retention, int) or retention < 0:
            raise ValueError(f"workflow {workflow_id!r}: retention must be an integer >= 0, got {retention!r}")
        self.retention = retention
        self.description = description

    def __repr__(self) -> str:
        return f"DotflowWorkflow({self.workflow_id!r}, steps=[{', '.join(s.name for s in self.steps)}])"

    @cached_property
    def dotflow_id(self) -> uuid.UUID:
        """The UUID dotflow sees: ``uuid5(DOTFLOW_ID_NAMESPACE, workflow_id)``."""
        return uuid.uuid5(DOTFLOW_ID_NAMESPACE, self.workflow_id)

    @property
    def step_names(self) -> list[str]:
        return [step.name for step in self.steps]

    def fingerprint(self, payload: Any) -> str:
        """The payload's fingerprint under this workflow's ``ignore_paths``."""
        return compute_fingerprint(payload, ignore_paths=self.ignore_paths)

    def redacted(self, payload: Any) -> Any:
        """The payload with ``redact_paths`` replaced by ``'***'``."""
        return redact(payload, self.parsed_redact_paths)

    def ledger(self, *, store: DotflowStore) -> Ledger:
        return Ledger(store=store, workflow_id=self.workflow_id)

    def state(self, *, store: DotflowStore) -> LedgerState:
        """The ledger's current state for this workflow_id."""
        return self.ledger(store=store).read()

    def put_payload(self, payload: Any, *, store: DotflowStore) -> str:
        """Store a payload by content without running anything; return its fingerprint."""
        fingerprint = self.fingerprint(payload)
        self.ledger(store=store).put_payload(fingerprint=fingerprint, payload=payload)
        return fingerprint

    def run(
        self,
        payload: Any,
        *,
        store: DotflowStore,
        on_input_change: InputChangePolicy | None = None,
        run_id: str | None = None,
        raise_on_failure: bool = False,
        lock_wait_seconds: float = 0.0,
    ) -> RunReport:
        """Run the workflow for ``payload``: decide by the policy, then resume or execute steps.

        A direct call is an *arrival*: the caller asked for this input, so it may become the
        workflow's current input (even a return to an earlier one). Every step receives its own
        copy of the payload, so a step that writes into it changes nothing outside that step.

        Args:
            payload: the input (``initial_context`` of every step).
            store: where checkpoints and the ledger live.
            on_input_change: overrides the workflow's policy for this run.
            run_id: recorded in the ledger (Dagster passes its run id).
            raise_on_failure: raise ``StepFailedError`` instead of returning a failed report.
            lock_wait_seconds: how long to wait for another run of this workflow_id to finish;
                0 (the default) fails at once with ``RunInProgressError``.

        Raises:
            InputChangedError: the input changed and the policy said ``raise``.
            RunInProgressError: another run of this workflow_id is executing.
        """
        from dotflow_dagster.runner import execute

        # Stored first (content-addressed, so no lock needed): a refused input can be re-run by key.
        fingerprint = self.put_payload(payload, store=store)
        return execute(
            self,
            payload=payload,
            fingerprint=fingerprint,
            store=store,
            policy=self.on_input_change if on_input_change is None else on_input_change,
            run_id=run_id,
            raise_on_failure=raise_on_failure,
            lock_wait_seconds=lock_wait_seconds,
        )

    def run_fingerprint(
        self,
        fingerprint: str,
        *,
        store: DotflowStore,
        on_input_change: InputChangePolicy | None = None,
        run_id: str | None = None,
        raise_on_failure: bool = False,
        lock_wait_seconds: float = 0.0,
        on_lock_wait: Callable[[str], None] | None = None,
        trigger: "RunTrigger | None" = None,
    ) -> RunReport:
        """Run the payload stored for ``fingerprint`` (see ``put_payload``), as ``run`` does.

        Args:
            fingerprint: a fingerprint whose payload is stored.
            store: where checkpoints and the ledger live.
            on_input_change: overrides the workflow's policy for this run.
            run_id: recorded in the ledger (Dagster passes its run id).
            raise_on_failure: raise ``StepFailedError`` instead of returning a failed report.
            lock_wait_seconds: how long to wait for another run of this workflow_id to finish.
            on_lock_wait: called with the holder's description while waiting (for logging).
            trigger: why the run started; the default (a direct call) is an arrival. A trigger
                that is not an arrival skips a superseded or refused fingerprint (see
                ``dotflow_dagster.runner.RunTrigger``).

        Raises:
            UnknownFingerprintError: no payload is stored for it.
            FingerprintMismatchError: the stored payload no longer hashes to ``fingerprint`` (for
                instance ``ignore_paths`` changed since it was stored).
        """
        from dotflow_dagster.runner import RunTrigger, execute, load_verified_payload

        payload = load_verified_payload(self, fingerprint=fingerprint, store=store)
        return execute(
            self,
            payload=payload,
            fingerprint=fingerprint,
            store=store,
            policy=self.on_input_change if on_input_change is None else on_input_change,
            run_id=run_id,
            raise_on_failure=raise_on_failure,
            trigger=trigger or RunTrigger(),
            lock_wait_seconds=lock_wait_seconds,
            on_lock_wait=on_lock_wait,
        )
