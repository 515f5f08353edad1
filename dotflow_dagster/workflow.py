"""``DotflowWorkflow``: a named list of dotflow steps with an input-change policy.

It is the unit everything else is built on: the Dagster asset and the submit job both take
one. It also runs on its own, e.g. in a Lambda or Celery handler.
"""

import hashlib
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from dotflow import action as dotflow_action
from dotflow.core.action import Action

from dotflow_dagster.diff import describe_changes
from dotflow_dagster.errors import UnknownFingerprintError, ValidationConflictError
from dotflow_dagster.fingerprint import fingerprint as compute_fingerprint
from dotflow_dagster.identity import IDENTITY_RULE, MISSING, checked_identity, same_value, value_at
from dotflow_dagster.ledger import Ledger, LedgerState
from dotflow_dagster.paths import REDACTED, PayloadPath, parse_paths, redact
from dotflow_dagster.policy import InputChangePolicy, validate_policy
from dotflow_dagster.reads import StepReads, parse_reads
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


def _parse_argument(paths: Any, *, argument: str, workflow_id: str) -> tuple[PayloadPath, ...]:
    """``parse_paths``, its errors naming the workflow and the argument the paths were given in."""
    try:
        return parse_paths(paths)
    except (TypeError, ValueError) as error:
        raise type(error)(f"workflow {workflow_id!r}: {argument}: {error}") from None


@dataclass(frozen=True)
class StepSpec:
    """A step's deterministic identity.

    ``key`` chains the position and qualified name of this step and every step before it, and
    the step's declared ``reads`` if any, so a renamed or reordered step, or a changed
    declaration, invalidates its checkpoint and all checkpoints after it.
    """

    position: int
    name: str
    qualified_name: str
    key: str
    action: Callable[..., Any]
    reads: StepReads | None = None


def _runnable_steps(steps: Sequence[Callable[..., Any]], *, workflow_id: str) -> list[tuple[str, str, Callable[..., Any]]]:
    """``(name, qualified name, runnable)`` per step, in order; refuses what dotflow cannot run safely."""
    if not steps:
        raise ValueError(f"workflow {workflow_id!r} needs at least one step")
    runnables: list[tuple[str, str, Callable[..., Any]]] = []
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
        runnables.append((name, qualified_name, runnable))
    names = [name for name, _, _ in runnables]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(
            f"workflow {workflow_id!r}: step names must be unique (outputs are keyed by name); "
            f"repeated: {', '.join(duplicates)}"
        )
    return runnables


def _step_specs(
    steps: Sequence[Callable[..., Any]],
    *,
    workflow_id: str,
    reads: Mapping[str, Iterable[str]] | None = None,
) -> tuple[StepSpec, ...]:
    runnables = _runnable_steps(steps, workflow_id=workflow_id)
    declared = (
        {} if reads is None else parse_reads(reads, step_names=[name for name, _, _ in runnables], workflow_id=workflow_id)
    )
    specs: list[StepSpec] = []
    chain = hashlib.sha256(b"dotflow_dagster/steps/v1")
    for position, (name, qualified_name, runnable) in enumerate(runnables):
        step_reads = declared.get(name)
        # Undeclared steps keep the key they always had, so adding reads to one step leaves the
        # checkpoints of the steps before it valid.
        suffix = "" if step_reads is None else f" reads={step_reads.identity!r}"
        chain.update(f"{position}:{qualified_name}{suffix}\n".encode())
        safe_name = re.sub(r"[^A-Za-z0-9_-]", "_", name)[:60]
        specs.append(
            StepSpec(
                position=position,
                name=name,
                qualified_name=qualified_name,
                key=f"{position:03d}-{safe_name}-{chain.hexdigest()[:16]}",
                action=runnable,
                reads=step_reads,
            )
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
        on_input_change: ``"reset"`` (default), ``"reuse"``, ``"raise"``, ``"incremental"``, or a
            callable taking an :class:`~dotflow_dagster.InputChange` and returning one of the four.
            ``incremental`` reuses, from the previous current input only, each step whose
            declared reads and received input are unchanged, and re-runs the others.
        ignore_paths: DeepDiff-style paths (``"root['received_at']"``) left out of the fingerprint
            and of diffs. With a ``fingerprint_fn`` they no longer apply to identity (the
            function alone decides it), only to the diffs shown when the identity changes.
        redact_paths: paths shown as ``'***'`` in diffs, errors, reports and metadata (they still
            count in the fingerprint unless also ignored).
        mode: ``"sequential"`` (default) or ``"background"`` (run in order and joined before
            ``run`` returns); ``parallel`` and ``sequential_group`` are refused.
        retention: how many earlier fingerprints, by most recent decision (a refusal counts),
            are kept besides the current one. After each run, older fingerprints lose their
            checkpoints, and, unless a sensor manages the workflow's payloads, the stored
            payloads of those some run has decided: a pruned fingerprint no longer runs by key
            (``UnknownFingerprintError``). A payload stored but not decided yet (its run may be
            queued) is never pruned by a run. A workflow fed by a sensor
            (``Ledger.mark_sensor_managed``) keeps every payload until the sensor prunes it
            with :meth:`prune`, knowing which runs are still queued.
        description: shown in Dagster.
        fingerprint_fn: the payload's identity, supplied by the caller instead of the canonical
            fingerprint (as Powertools' ``event_key_jmespath`` or Prefect's ``cache_key_fn``):
            ``fingerprint_fn(payload)`` returns the fingerprint itself, i.e. the ledger key and
            the Dagster partition key, e.g. ``lambda p: f"order-{p['order_id']}"``. It must be
            1-128 characters of ``[A-Za-z0-9._-]``, without ``...``, and not ``.`` or ``..``;
            anything else (another type, a function that raises) is a ``ValueError`` naming
            the workflow and the value. Payloads with the same identity are the same input
            (``unchanged``); the payload stored first for an identity is the one a run by key
            (``run_fingerprint``, a Dagster partition) uses, since payloads are stored by
            identity and the first is kept, while ``run(payload)`` executes the payload it is given.
        validate_paths: paths (as ``ignore_paths``) whose values a payload must share with the
            payload stored for its identity; one that differs there is refused with
            :class:`~dotflow_dagster.errors.ValidationConflictError` (see
            :meth:`validation_conflicts`). Needs ``fingerprint_fn``: a canonical fingerprint
            already covers every value that is not ignored, so they would check nothing, and a
            ``ValueError`` says so.
        reads: ``{step name: payload paths it reads}``, paths as in ``ignore_paths`` but through
            mapping keys only (``root['options']['currency']``; a path into a list is refused:
            declare the list). A listed step's ``initial_context.storage`` is a ``dict`` holding
            exactly those subtrees (a declared path the payload lacks is absent), and reading any
            other key, at any level, with ``[]``, ``.get()`` or ``in``, raises
            :class:`~dotflow_dagster.reads.UndeclaredReadError`; ``[]`` means it reads nothing
            and gets ``{}``. An unlisted step sees the whole payload. The declaration is part of
            the step's identity (changing it invalidates that checkpoint and every later one),
            the payload must then be a mapping, and the ``incremental`` policy re-runs a step
            only when what it declared (or its predecessor's result) changed.

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
        fingerprint_fn: Callable[[Any], str] | None = None,
        validate_paths: Iterable[str] = (),
        reads: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.workflow_id = validate_workflow_id(workflow_id)
        self.steps = _step_specs(list(steps), workflow_id=workflow_id, reads=reads)
        self.reads: dict[str, tuple[str, ...]] | None = (
            None if reads is None else {spec.name: spec.reads.texts for spec in self.steps if spec.reads is not None}
        )
        self.on_input_change = validate_policy(on_input_change, workflow_id=workflow_id)
        self.ignore_paths = _path_list(ignore_paths)
        self.redact_paths = _path_list(redact_paths)
        self.parsed_ignore_paths = _parse_argument(self.ignore_paths, argument="ignore_paths", workflow_id=workflow_id)
        self.parsed_redact_paths = _parse_argument(self.redact_paths, argument="redact_paths", workflow_id=workflow_id)
        if mode in _REFUSED_MODES:
            raise ValueError(f"workflow {workflow_id!r}: mode {mode!r} is refused: {_REFUSED_MODES[mode]}")
        if mode not in _SUPPORTED_MODES:
            raise ValueError(f"workflow {workflow_id!r}: unknown mode {mode!r}; use one of {_SUPPORTED_MODES}")
        self.mode = mode
        if isinstance(retention, bool) or not isinstance(retention, int) or retention < 0:
            raise ValueError(f"workflow {workflow_id!r}: retention must be an integer >= 0, got {retention!r}")
        self.retention = retention
        self.description = description
        if fingerprint_fn is not None and not callable(fingerprint_fn):
            raise TypeError(
                f"workflow {workflow_id!r}: fingerprint_fn must be a callable taking the payload, "
                f"got {type(fingerprint_fn).__name__}"
            )
        self.fingerprint_fn = fingerprint_fn
        self.validate_paths = _path_list(validate_paths)
        self.parsed_validate_paths = _parse_argument(
            self.validate_paths, argument="validate_paths", workflow_id=workflow_id
        )
        if self.parsed_validate_paths and fingerprint_fn is None:
            raise ValueError(
                f"workflow {workflow_id!r}: validate_paths need a fingerprint_fn. Without one the fingerprint "
                "covers every value outside ignore_paths, so two payloads with one fingerprint cannot differ "
                "at a validated path (and checking an ignored path would contradict ignoring it)"
            )

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
        """The payload's identity: ``fingerprint_fn(payload)`` if given, else its canonical fingerprint.

        The canonical fingerprint leaves out ``ignore_paths``; a ``fingerprint_fn`` gets the
        payload as it is, and ``ignore_paths`` then do not apply to identity.

        Raises:
            FingerprintError: (canonical) a value has no canonical encoding.
            ValueError: ``fingerprint_fn`` raised or returned no valid identity; the message
                names the workflow and the returned value (never the payload). Or the workflow
                declares ``reads`` and the payload is not a mapping.
        """
        if self.reads is not None and not isinstance(payload, Mapping):
            # Checked with the identity, so every way in (run, sensor, submit job) refuses it
            # before anything is stored or any step runs.
            raise ValueError(
                f"workflow {self.workflow_id!r} declares reads, so its payload must be a mapping (a dict) "
                f"whose keys the declared paths name; got a {type(payload).__name__}"
            )
        if self.fingerprint_fn is None:
            return compute_fingerprint(payload, ignore_paths=self.ignore_paths)
        try:
            identity = self.fingerprint_fn(payload)
        except Exception as error:
            text = str(error)
            text = text if len(text) <= 200 else text[:200] + "..."
            raise ValueError(
                f"workflow {self.workflow_id!r}: fingerprint_fn raised {type(error).__name__}: {text}; "
                f"it must return the payload's identity ({IDENTITY_RULE})"
            ) from error
        return checked_identity(identity, workflow_id=self.workflow_id)

    def redacted(self, payload: Any) -> Any:
        """The payload with ``redact_paths`` replaced by ``'***'``."""
        return redact(payload, self.parsed_redact_paths)

    def ledger(self, *, store: DotflowStore) -> Ledger:
        return Ledger(store=store, workflow_id=self.workflow_id)

    def state(self, *, store: DotflowStore) -> LedgerState:
        """The ledger's current state for this workflow_id."""
        return self.ledger(store=store).read()

    def put_payload(self, payload: Any, *, store: DotflowStore) -> str:
        """Store a payload under its fingerprint without running anything; return the fingerprint.

        The first payload stored for a fingerprint is kept: a later one with the same identity
        (other values under ``ignore_paths``, or anything a ``fingerprint_fn`` does not look at)
        stores nothing, and a run by key uses the first; unless the stored copy is truncated,
        which this one then replaces.

        Raises:
            ValueError: the payload cannot be pickled (the message names the workflow).
            ValidationConflictError: a payload is stored for this identity and differs from this
                one at ``validate_paths``; nothing was stored.
        """
        fingerprint = self.fingerprint(payload)
        ledger = self.ledger(store=store)
        if not ledger.put_payload(fingerprint=fingerprint, payload=payload, repair=True) and self.parsed_validate_paths:
            # Compared only once the identity is taken: whatever is stored now stays stored.
            self._refuse_conflicts(payload, fingerprint=fingerprint, ledger=ledger)
        return fingerprint

    def validation_conflicts(self, payload: Any, *, store: DotflowStore) -> tuple[str, ...]:
        """The ``validate_paths`` at which ``payload`` differs from the payload stored for its identity.

        Reads only: a sensor can check a payload before it stores it and requests a run. Values
        are compared by canonical fingerprint (``1`` differs from ``1.0``; a path present on
        one side only differs). Empty when the workflow has no ``validate_paths``, when nothing
        is stored for the identity yet, or when nothing differs; ``run`` and ``put_payload``
        refuse a payload for which it is not empty (``ValidationConflictError``).

        Args:
            payload: the candidate payload.
            store: where the workflow's payloads are stored.

        Returns:
            The differing paths, as spelled in ``validate_paths``, in that order.

        Raises:
            ValueError: ``fingerprint_fn`` refused the payload.
            StoreError: the stored payload is unreadable.

        Example:
            >>> import tempfile
            >>> from dotflow import action
            >>> from dotflow_dagster import DotflowWorkflow, LocalStore
            >>> @action
            ... def charge(initial_context):
            ...     return initial_context.storage["amount"]
            >>> wf = DotflowWorkflow(
            ...     "orders", steps=[charge], fingerprint_fn=lambda p: f"order-{p['id']}",
            ...     validate_paths=["root['amount']"],
            ... )
            >>> store = LocalStore(tempfile.mkdtemp())
            >>> wf.put_payload({"id": 7, "amount": 10, "note": "first"}, store=store)
            'order-7'
            >>> wf.validation_conflicts({"id": 7, "amount": 10, "note": "again"}, store=store)
            ()
            >>> wf.validation_conflicts({"id": 7, "amount": 12}, store=store)
            ("root['amount']",)
        """
        if not self.parsed_validate_paths:
            return ()
        fingerprint = self.fingerprint(payload)
        try:
            stored = self.ledger(store=store).get_payload(fingerprint)
        except UnknownFingerprintError:
            return ()
        return tuple(text for text, _ in self._conflicts(stored, payload))

    def _conflicts(self, stored: Any, payload: Any) -> list[tuple[str, PayloadPath]]:
        conflicts: list[tuple[str, PayloadPath]] = []
        for text, path in zip(self.validate_paths, self.parsed_validate_paths, strict=True):
            if text not in (seen for seen, _ in conflicts) and not same_value(
                value_at(stored, path), value_at(payload, path)
            ):
                conflicts.append((text, path))
        return conflicts

    def _refuse_conflicts(self, payload: Any, *, fingerprint: str, ledger: Ledger) -> None:
        try:
            stored = ledger.get_payload(fingerprint)
        except UnknownFingerprintError:
            return  # pruned since: nothing left to conflict with
        conflicts = self._conflicts(stored, payload)
        if not conflicts:
            return
        before, after = self.redacted(stored), self.redacted(payload)
        lines: list[str] = []
        for text, path in conflicts:
            old, new = value_at(before, path), value_at(after, path)
            # Wrapped so an absent value reads "added"/"removed"; the wrapper's path is swapped for ours.
            described = describe_changes(
                {} if old is MISSING else {"v": old}, {} if new is MISSING else {"v": new}, max_lines=5
            )
            shown = [text + line[len("root['v']") :] for line in described.lines if line.startswith("root['v']")]
            if not shown:
                hidden = all(isinstance(value, str) and value == REDACTED for value in (old, new))
                shown = [
                    f"{text}: *** -> *** (redacted value changed)"
                    if hidden
                    else f"{text}: only redacted values inside it differ"
                ]
            lines.extend(shown)
        raise ValidationConflictError(
            workflow_id=self.workflow_id,
            fingerprint=fingerprint,
            paths=tuple(text for text, _ in conflicts),
            diff_text="\n".join(lines),
        )

    def retained_fingerprints(self, *, store: DotflowStore) -> frozenset[str]:
        """The fingerprints retention keeps: the current one and the ``retention`` most recent earlier decisions.

        A refusal counts as a decision, so a refused fingerprint stays resettable while it is
        among them. See ``dotflow_dagster.retention.retained_fingerprints``.
        """
        from dotflow_dagster.retention import retained_fingerprints

        return retained_fingerprints(self, store=store)

    def fingerprints_to_prune(self, *, store: DotflowStore, keep: Iterable[str] = ()) -> list[str]:
        """What :meth:`prune` would prune, sorted; deletes nothing."""
        from dotflow_dagster.retention import fingerprints_to_prune

        return fingerprints_to_prune(self, store=store, keep=keep)

    def prune(self, *, store: DotflowStore, keep: Iterable[str] = ()) -> list[str]:
        """Delete payloads and checkpoints of every fingerprint that is neither retained nor in ``keep``.

        For a sensor, which alone knows which runs are still queued: ``keep`` must hold every
        fingerprint a run may still need. Undecided payloads outside ``keep`` are pruned too;
        the ``decided`` markers stay forever. See ``dotflow_dagster.retention.prune_fingerprints``.

        Args:
            store: where the workflow's ledger, payloads and checkpoints live.
            keep: fingerprints to spare besides the retained ones.

        Returns:
            The pruned fingerprints, sorted (the sensor deletes their partitions).
        """
        from dotflow_dagster.retention import prune_fingerprints

        return prune_fingerprints(self, store=store, keep=keep)

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
            ValidationConflictError: (an ``InputChangedError``) a payload with this identity is
                stored and differs from this one at ``validate_paths``; nothing was executed,
                stored or deleted, and the ledger did not move.
            ValueError: ``fingerprint_fn`` raised or returned no valid identity.
            RunInProgressError: another run of this workflow_id is executing.
        """
        from dotflow_dagster.runner import execute

        # Stored first (by identity, so no lock needed): a refused input can be re-run by key.
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

        A replay (a trigger that is not an arrival) of a superseded fingerprint whose payload
        retention has pruned is skipped as any replay of it is: it needs no payload.

        Raises:
            UnknownFingerprintError: no payload is stored for it (``pruned``: retention removed it).
            FingerprintMismatchError: the stored payload no longer has this identity (for
                instance ``ignore_paths`` or ``fingerprint_fn`` changed since it was stored).
        """
        from dotflow_dagster.runner import RunTrigger, execute, load_verified_payload, skipped_without_payload

        trigger = trigger or RunTrigger()
        try:
            payload = load_verified_payload(self, fingerprint=fingerprint, store=store)
        except UnknownFingerprintError as error:
            skipped = (
                skipped_without_payload(self, fingerprint=fingerprint, store=store, trigger=trigger, run_id=run_id)
                if error.pruned
                else None
            )
            if skipped is None:
                raise
            return skipped
        return execute(
            self,
            payload=payload,
            fingerprint=fingerprint,
            store=store,
            policy=self.on_input_change if on_input_change is None else on_input_change,
            run_id=run_id,
            raise_on_failure=raise_on_failure,
            trigger=trigger,
            lock_wait_seconds=lock_wait_seconds,
            on_lock_wait=on_lock_wait,
        )
