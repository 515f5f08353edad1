"""Run a workflow for one payload: decide by policy, then resume or execute its steps.

Steps execute through dotflow's own ``TaskEngine`` (so ``@action(retry=...)`` and class steps
behave as in dotflow; ``timeout=`` is refused, see ``DotflowWorkflow``), but checkpoint
identity, restore and persistence are ours:
dotflow gives every task a fresh ULID, so its own ``resume=True`` never restores anything in a
new process. dotflow writes each task's context to an in-memory staging storage; a step's
result reaches the durable store only after dotflow reports it ``COMPLETED``.
"""

import gc
import logging
import pickle
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dotflow.abc.server import Server
from dotflow.core.config import Config
from dotflow.core.context import Context
from dotflow.core.engine import TaskEngine
from dotflow.core.task import Task
from dotflow.core.types import TypeStatus
from dotflow.providers.log_default import LogDefault
from dotflow.providers.metrics_default import MetricsDefault
from dotflow.providers.notify_default import NotifyDefault
from dotflow.providers.scheduler_default import SchedulerDefault
from dotflow.providers.storage_default import StorageDefault
from dotflow.providers.tracer_default import TracerDefault
from dotflow.utils import basic_callback

from dotflow_dagster.errors import (
    FingerprintMismatchError,
    InputChangedError,
    StepFailedError,
    StoreError,
    UnknownFingerprintError,
)
from dotflow_dagster.identity import is_identity
from dotflow_dagster.ledger import Ledger, LedgerState
from dotflow_dagster.policy import (
    Decision,
    InputChange,
    InputChangePolicy,
    describe_changes,
    resolve_policy,
    validate_policy,
)
from dotflow_dagster.reads import PayloadView, project, read_digests, value_digest
from dotflow_dagster.report import RunReport, StepReport
from dotflow_dagster.retention import apply_retention, retained_in
from dotflow_dagster.stores import DotflowStore, UntrustedObjectError

if TYPE_CHECKING:
    from dotflow_dagster.workflow import DotflowWorkflow, StepSpec

__all__ = [
    "CompletedStep",
    "RunTrigger",
    "execute",
    "load_verified_payload",
    "plan_decision",
    "skipped_without_payload",
]

logger = logging.getLogger("dotflow_dagster")

# One dotflow log provider for the process: LogDefault registers a new logger per instance.
_DOTFLOW_LOG = LogDefault(level="WARNING")

# What the first step "received" from the step before it, for the incremental comparison.
_START = "start"


class _NoServer(Server):
    """dotflow's default server provider turns itself on when ``SERVER_BASE_URL`` and
    ``SERVER_USER_TOKEN`` are set (or ``~/.dotflow/config.json`` says so) and then POSTs every
    task, payload included, to that server. Nothing of ours may leave the process unasked."""

    def create_workflow(self, workflow: Any) -> None:
        return None

    def update_workflow(self, workflow: Any, status: str = "") -> None:
        return None

    def create_task(self, task: Any) -> None:
        return None

    def update_task(self, task: Any) -> None:
        return None


def _dotflow_config() -> Config:
    # Every provider chosen explicitly: a default dotflow picks from the environment or the
    # home directory could send the payload out or fail on an unreadable HOME.
    return Config(
        storage=StorageDefault(),
        notify=NotifyDefault(),
        log=_DOTFLOW_LOG,
        server=_NoServer(),
        scheduler=SchedulerDefault(),
        tracer=TracerDefault(),
        metrics=MetricsDefault(),
    )


@dataclass(frozen=True)
class RunTrigger:
    """Why a run started, which decides whether it may make its input the current one.

    Only an *arrival* moves the ledger: an input that was just delivered (a direct ``run()``,
    the submit job, a sensor run for a new payload) or one an operator chose explicitly. Any
    other run of a superseded or refused fingerprint (a backfill, a re-materialization, a retry)
    executes no step and leaves the ledger alone, so an old input is never rolled back. A
    fingerprint no run has decided yet is a new input, so its first run is always an arrival.

    Attributes:
        arrival: whether this run may decide (and so make its input current).
        inherits_arrival_since: for a retry of an arrival, when its parent run was launched:
            the retry keeps the parent's right to decide only if no decision was recorded since.
        description: names the trigger in messages, e.g. ``"backfill run"``.
    """

    arrival: bool = True
    inherits_arrival_since: datetime | None = None
    description: str = "run"

    def may_decide(self, state: LedgerState) -> bool:
        if self.arrival:
            return True
        if self.inherits_arrival_since is None:
            return False
        since = self.inherits_arrival_since.astimezone(UTC).isoformat(timespec="milliseconds")
        return all(entry.first_seen <= since for entry in state.history)


@dataclass(frozen=True)
class CompletedStep:
    """A step's checkpoint. Wrapping the result means a step that returned ``None`` still counts
    as completed (dotflow treats a stored ``None`` as "no checkpoint" and re-runs it forever).

    The digests say what the result was computed from, for the ``incremental`` policy. A
    checkpoint written before they existed has ``None`` there and is never reused by it.

    Attributes:
        step_key: the step's identity (see ``StepSpec``).
        step_name: the step's name.
        result: what the step returned.
        completed_at: when it completed (UTC, ISO 8601).
        read_digests: ``{declared path: digest}`` of the values the step read; for a step
            without declared reads, ``{"root": <the payload's fingerprint>}``.
        input_digest: the digest of the result the step received from the step before
            (``"start"`` for the first step).
        result_digest: the digest of ``result`` (``None``: it has none, so it never compares equal).
    """

    step_key: str
    step_name: str
    result: Any
    completed_at: str
    read_digests: dict[str, str | None] | None = None
    input_digest: str | None = None
    result_digest: str | None = None


@dataclass(frozen=True)
class DecisionPlan:
    decision: Decision | str
    previous_fingerprint: str | None
    changes: tuple[str, ...]
    skip_reason: str | None = None
    # The fingerprint whose checkpoints ``incremental`` compares with (also when resuming one).
    incremental_from: str | None = None


def _summary(changes: tuple[str, ...], *, shown: int = 2) -> str:
    """One line for the ledger's history: the first changes, and how many more there are."""
    if not changes:
        return "no visible change (only redacted or ignored values differ)"
    more = len(changes) - shown
    return "; ".join(changes[:shown]) + (f" (+{more} more)" if more > 0 else "")


def load_verified_payload(workflow: "DotflowWorkflow", *, fingerprint: str, store: DotflowStore) -> Any:
    """The payload stored for ``fingerprint``, checked to still have that identity.

    Without a ``fingerprint_fn`` the payload must still hash to ``fingerprint`` (canonical
    fingerprint under ``ignore_paths``); with one, ``fingerprint_fn(payload)`` must return it.

    Raises:
        UnknownFingerprintError: nothing is stored; ``pruned`` says whether retention removed it,
            ``malformed`` that ``fingerprint`` cannot be one at all.
        FingerprintMismatchError: the stored payload has another identity now.
        ValueError: ``fingerprint_fn`` refused the stored payload (see ``DotflowWorkflow.fingerprint``).
    """
    if not is_identity(fingerprint):
        # Checked before any store key is built from it: a partition key typed by hand
        # ("../../etc") must read and write nothing.
        raise UnknownFingerprintError(
            workflow_id=workflow.workflow_id, fingerprint=fingerprint, location=store.location, malformed=True
        )
    ledger = workflow.ledger(store=store)
    try:
        payload = ledger.get_payload(fingerprint)
    except UnknownFingerprintError as error:
        state = ledger.read()
        if ledger.was_decided(fingerprint, state=state) and fingerprint not in retained_in(
            state, retention=workflow.retention
        ):
            raise UnknownFingerprintError(
                workflow_id=workflow.workflow_id, fingerprint=fingerprint, location=error.location, pruned=True
            ) from None
        raise
    actual = workflow.fingerprint(payload)
    if actual != fingerprint:
        hint = "did ignore_paths change?" if workflow.fingerprint_fn is None else "did fingerprint_fn change?"
        raise FingerprintMismatchError(workflow_id=workflow.workflow_id, expected=fingerprint, actual=actual, hint=hint)
    return payload


def _input_change(
    workflow: "DotflowWorkflow", ledger: Ledger, *, previous: str, current: str, payload: Any
) -> InputChange:
    try:
        with _collector_paused():
            previous_payload = ledger.get_payload(previous)
    except (UnknownFingerprintError, StoreError):
        previous_payload = None
    description = describe_changes(
        previous_payload,
        payload,
        ignore_paths=workflow.parsed_ignore_paths,
        redact_paths=workflow.parsed_redact_paths,
    )
    return InputChange.from_description(
        description, workflow_id=workflow.workflow_id, previous_fingerprint=previous, current_fingerprint=current
    )


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a large payload is unpickled.

    Unpickling megabytes of dicts and lists allocates so many containers that the collector runs
    many full passes over objects that cannot be garbage yet; it cost more than the unpickling.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _skip_reason(
    workflow: "DotflowWorkflow", *, state: LedgerState, fingerprint: str, trigger: RunTrigger
) -> str:
    entry = state.latest_entry(fingerprint)
    if entry is None:
        past = "was decided before the ledger's history was trimmed"
    elif entry.decision == "raise":
        past = f"was refused (on_input_change='raise') at {entry.first_seen}"
    else:
        past = f"was decided '{entry.decision}' at {entry.first_seen} and superseded since"
    return (
        f"workflow {workflow.workflow_id!r}: fingerprint {fingerprint} {past}; the current input is "
        f"{state.current_fingerprint}. This {trigger.description} is not an arrival, so it executes no "
        "step and leaves the ledger alone: replaying an old input would roll the workflow back. To make "
        "this input current on purpose, launch its partition with the run tag "
        "dotflow/on_input_change=reset (or reuse), or submit its payload again."
    )


def plan_decision(
    workflow: "DotflowWorkflow",
    *,
    payload: Any,
    fingerprint: str,
    store: DotflowStore,
    policy: InputChangePolicy,
    run_id: str | None,
    trigger: RunTrigger = RunTrigger(),
) -> DecisionPlan:
    """Decide against the ledger, prepare the fingerprint's checkpoints, then commit by CAS.

    Checkpoints are prepared *before* the ledger moves: if the process dies in between, the
    next run finds the old current fingerprint and decides (and prepares) again. A run that is
    not an arrival, for a fingerprint that is decided but not current, is planned as ``skipped``.
    """
    ledger = workflow.ledger(store=store)
    checkpoints = ledger.checkpoint_prefix(fingerprint)
    for _ in range(10):
        state = ledger.read()
        previous = state.current_fingerprint
        changes: tuple[str, ...] = ()
        if (
            previous != fingerprint
            and not trigger.may_decide(state)
            and ledger.was_decided(fingerprint, state=state)
        ):
            reason = _skip_reason(workflow, state=state, fingerprint=fingerprint, trigger=trigger)
            return DecisionPlan(decision="skipped", previous_fingerprint=previous, changes=(), skip_reason=reason)
        if previous is None:
            decision: Decision = "new"
            store.delete_prefix(checkpoints)
        elif previous == fingerprint:
            decision = "unchanged"
        else:
            change = _input_change(workflow, ledger, previous=previous, current=fingerprint, payload=payload)
            changes = change.changes
            decision = resolve_policy(policy, change)
            if decision == "raise":
                if not ledger.record_decision(
                    expected_current=previous,
                    fingerprint=fingerprint,
                    decision="raise",
                    run_id=run_id,
                    summary=_summary(changes),
                ):
                    continue
                raise InputChangedError(
                    workflow_id=workflow.workflow_id,
                    previous_fingerprint=previous,
                    current_fingerprint=fingerprint,
                    diff_text=change.diff_text,
                )
            if decision == "reuse":
                # Fill only the steps this fingerprint lacks: its own completed checkpoints were
                # computed from its own input and must never be replaced by another input's.
                _fill_missing_checkpoints(store, source=ledger.checkpoint_prefix(previous), destination=checkpoints)
            else:
                # Also on A -> B -> A: A's retained checkpoints belong to an input that was
                # replaced, and its steps' side effects must happen again now A is current again.
                store.delete_prefix(checkpoints)
        summary = {"new": "first input", "unchanged": None}.get(decision, _summary(changes))
        if ledger.record_decision(
            expected_current=previous, fingerprint=fingerprint, decision=decision, run_id=run_id, summary=summary
        ):
            return DecisionPlan(
                decision=decision,
                previous_fingerprint=previous,
                changes=changes,
                incremental_from=_incremental_source(state, decision=decision, fingerprint=fingerprint),
            )
    raise StoreError(f"workflow {workflow.workflow_id!r}: the ledger kept changing while deciding; retry")


def _incremental_source(state: LedgerState, *, decision: str, fingerprint: str) -> str | None:
    """Where ``incremental`` reuses from: the input current before this one, and only that one.

    A resumed incremental run (``unchanged`` after an ``incremental`` decision) goes on comparing
    with the same input. Never an older one: its checkpoints may describe a state of the world
    that a later run has since overwritten.
    """
    if decision == "incremental":
        return state.current_fingerprint
    if decision == "unchanged":
        entry = state.latest_entry(fingerprint)
        if entry is not None and entry.decision == "incremental":
            return entry.previous_fingerprint
    return None


def _fill_missing_checkpoints(store: DotflowStore, *, source: str, destination: str) -> None:
    existing = set(store.list_keys(destination))
    for key in store.list_keys(source):
        target = destination + key[len(source) :]
        if target in existing:
            continue
        data = store.read_bytes(key)
        if data is not None:
            store.write_bytes(target, data)


def _restore(store: DotflowStore, prefix: str, steps: "tuple[StepSpec, ...]") -> list[CompletedStep]:
    """Checkpoints of the leading completed steps; deletes every checkpoint after them."""
    existing = set(store.list_keys(prefix))
    restored = _completed_chain(store, prefix, steps, existing=existing)
    # Whatever lies after the resume point was computed from inputs that are about to be
    # recomputed (or belongs to renamed steps): it must never be restored again.
    kept = {prefix + checkpoint.step_key for checkpoint in restored}
    for key in existing - kept:
        store.delete(key)
    return restored


def _read_checkpoint(store: DotflowStore, key: str, spec: "StepSpec", *, unreadable: str) -> CompletedStep | None:
    """The checkpoint of ``spec`` at ``key``, or ``None`` if it is unreadable or another step's."""
    try:
        checkpoint = store.get(key).storage
    except UntrustedObjectError:
        # Someone who may not write to the store did: stop and say so rather than quietly
        # recompute over the evidence.
        raise
    except StoreError as error:
        # An unreadable checkpoint (e.g. its result's class no longer imports) is treated as
        # missing: the step runs again rather than the whole run failing.
        logger.warning("checkpoint %s is unreadable and %s: %s", key, unreadable, error)
        return None
    return checkpoint if isinstance(checkpoint, CompletedStep) and checkpoint.step_key == spec.key else None


def _completed_chain(
    store: DotflowStore, prefix: str, steps: "tuple[StepSpec, ...]", *, existing: set[str]
) -> list[CompletedStep]:
    """Checkpoints of the leading completed steps, read only; stops at the first step without one."""
    restored: list[CompletedStep] = []
    for spec in steps:
        key = prefix + spec.key
        if key not in existing:
            break
        checkpoint = _read_checkpoint(store, key, spec, unreadable="will be recomputed")
        if checkpoint is None:
            break
        restored.append(checkpoint)
    return restored


def _execute_step(
    spec: "StepSpec", *, workflow: "DotflowWorkflow", payload: Any, previous_value: Any, config: Config
) -> tuple[bool, Any, StepReport, str | None]:
    task = Task(
        task_id=spec.key,
        step=spec.action,
        callback=basic_callback,
        initial_context=payload,
        workflow_id=workflow.dotflow_id,
        config=config,
    )
    engine = TaskEngine(
        task=task,
        workflow_id=workflow.dotflow_id,
        previous_context=Context(storage=previous_value, workflow_id=workflow.dotflow_id),
    )
    started = time.perf_counter()
    error_text: str | None = None
    traceback_text: str | None = None
    try:
        with engine.start():
            engine.execute_with_retry()
    except AssertionError as error:  # dotflow's lifecycle lets AssertionError escape
        error_text = f"AssertionError: {error}"
        traceback_text = "".join(traceback.format_exception(error))
    duration = time.perf_counter() - started
    attempts = task.retry_count + 1
    if error_text is None and task.status == TypeStatus.COMPLETED:
        return True, task.current_context.storage, StepReport(
            name=spec.name, key=spec.key, status="executed", duration=duration, attempts=attempts
        ), None
    if error_text is None:
        last = task.errors[-1] if task.errors else None
        error_text = f"{last.exception}: {last.message}" if last else f"step ended with status {task.status}"
        traceback_text = last.traceback if last else None
    return False, None, StepReport(
        name=spec.name, key=spec.key, status="failed", duration=duration, attempts=attempts, error=error_text
    ), traceback_text


@dataclass(frozen=True)
class StepsOutcome:
    steps: tuple[StepReport, ...]
    outputs: dict[str, Any]
    failed: StepReport | None
    traceback: str | None


# Why a step ran or was restored, per decision (the incremental policy says it per step).
_EXECUTED_BECAUSE = {
    "new": "first input",
    "reset": "input changed: reset runs every step",
    "reuse": "no checkpoint to reuse",
    "unchanged": "not completed before",
}
_RESUMED_BECAUSE = {
    "reuse": "checkpoint: its own, else the previous input's (reuse)",
}


@dataclass(frozen=True)
class _IncrementalSource:
    """The previous current input's checkpoints, which ``incremental`` may reuse steps from."""

    fingerprint: str
    prefix: str
    keys: frozenset[str]


def _previous_checkpoint(store: DotflowStore, source: _IncrementalSource, spec: "StepSpec") -> CompletedStep | None:
    key = source.prefix + spec.key
    if key not in source.keys:
        return None
    return _read_checkpoint(store, key, spec, unreadable="will not be reused")


def _same(first: str | None, second: str | None) -> bool:
    return first is not None and first == second


def _incremental_reasons(
    previous: CompletedStep | None,
    *,
    source: _IncrementalSource,
    read_digests: dict[str, str | None],
    received: str | None,
    predecessor: str | None,
) -> list[str]:
    """Why the step must run again under ``incremental``; empty when its checkpoint can be reused."""
    if previous is None:
        return [f"no checkpoint of the previous input {source.fingerprint[:12]}"]
    if previous.read_digests is None or previous.input_digest is None:
        return ["its checkpoint records no reads (written before incremental existed)"]
    reasons = []
    for path in sorted(set(read_digests) | set(previous.read_digests)):
        if not _same(read_digests.get(path), previous.read_digests.get(path)):
            reasons.append("payload changed (the step declares no reads)" if path == "root" else f"{path} changed")
    if not _same(received, previous.input_digest):
        reasons.append(f"input from {predecessor} changed")
    return reasons


def _read_digests(spec: "StepSpec", *, payload: Any, fingerprint: str) -> dict[str, str | None]:
    # An undeclared step reads everything: the fingerprint is the digest of all it reads.
    return {"root": fingerprint} if spec.reads is None else read_digests(payload, spec.reads)


def _run_steps(
    workflow: "DotflowWorkflow",
    *,
    payload: Any,
    fingerprint: str,
    store: DotflowStore,
    prefix: str,
    decision: str,
    incremental_from: str | None = None,
) -> StepsOutcome:
    """Restore the leading completed steps, then run the rest in order, checkpointing each success.

    With ``incremental_from`` (a fingerprint), a step whose declared reads and received input
    equal those its checkpoint under that fingerprint was computed from is reused from it
    instead of executed.
    """
    restored = _restore(store, prefix, workflow.steps)
    resumed_because = _RESUMED_BECAUSE.get(decision, "completed before: restored from its checkpoint")
    reports = [StepReport(name=c.step_name, key=c.step_key, status="resumed", reason=resumed_because) for c in restored]
    outputs = {c.step_name: c.result for c in restored}
    previous_value = restored[-1].result if restored else None
    received: str | None = restored[-1].result_digest if restored else _START
    source = None
    if incremental_from is not None:
        source_prefix = workflow.ledger(store=store).checkpoint_prefix(incremental_from)
        source = _IncrementalSource(incremental_from, source_prefix, frozenset(store.list_keys(source_prefix)))
    config = _dotflow_config()
    # Each step gets its own copy of the payload as it was fingerprinted: a step that writes into
    # it must change neither the caller's object nor what later steps (or a resumed run) see.
    frozen_payload = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    cut_off_by: str | None = None  # a step that re-ran and returned what it returned before
    for position, spec in enumerate(workflow.steps[len(restored) :], start=len(restored)):
        predecessor = workflow.steps[position - 1].name if position else None
        digests = _read_digests(spec, payload=payload, fingerprint=fingerprint)
        reason = _EXECUTED_BECAUSE.get(decision, "")
        previous = None
        if source is not None:
            previous = _previous_checkpoint(store, source, spec)
            reasons = _incremental_reasons(
                previous, source=source, read_digests=digests, received=received, predecessor=predecessor
            )
            if not reasons and previous is not None:
                store.post(prefix + spec.key, Context(storage=previous))
                why = "reads unchanged" if predecessor is None else f"reads unchanged, input from {predecessor} unchanged"
                if cut_off_by is not None and cut_off_by == predecessor:
                    why += " (it re-ran and returned an equal result)"
                reports.append(StepReport(name=spec.name, key=spec.key, status="resumed", reason=why))
                logger.info("workflow %s: step %s reused (%s)", workflow.workflow_id, spec.name, why)
                outputs[spec.name] = previous_value = previous.result
                received = previous.result_digest
                continue
            reason = "; ".join(reasons)
        with _collector_paused():
            step_payload = pickle.loads(frozen_payload)
        if spec.reads is not None:
            step_payload = project(step_payload, spec.reads, step=spec.name)
        ok, value, step_report, traceback_text = _execute_step(
            spec,
            workflow=workflow,
            payload=step_payload,
            previous_value=previous_value,
            config=config,
        )
        step_report = replace(step_report, reason=reason)
        if ok:
            if isinstance(value, PayloadView):  # a step that returned what it was given
                value = value.to_dict()
            result_digest = value_digest(value)
            checkpoint = CompletedStep(
                step_key=spec.key,
                step_name=spec.name,
                result=value,
                completed_at=datetime.now(UTC).isoformat(timespec="milliseconds"),
                read_digests=digests,
                input_digest=received,
                result_digest=result_digest,
            )
            try:
                store.post(prefix + spec.key, Context(storage=checkpoint))
            except Exception as error:
                # Pickling a result can raise anything (ValueError, RecursionError, a __reduce__
                # of the user's); a write can fail too. Either way the step did not complete.
                ok = False
                what = "could not be stored" if isinstance(error, StoreError) else "cannot be checkpointed"
                step_report = replace(
                    step_report,
                    status="failed",
                    error=f"step returned a {type(value).__name__} that {what}: {type(error).__name__}: {error}",
                )
                traceback_text = "".join(traceback.format_exception(error))
        reports.append(step_report)
        if not ok:
            logger.warning("workflow %s: step %s failed: %s", workflow.workflow_id, spec.name, step_report.error)
            reports.extend(
                StepReport(name=later.name, key=later.key, status="not_run") for later in workflow.steps[position + 1 :]
            )
            return StepsOutcome(tuple(reports), outputs, failed=step_report, traceback=traceback_text)
        if source is not None:
            cut_off_by = spec.name if previous is not None and _same(result_digest, previous.result_digest) else None
        outputs[spec.name] = value
        previous_value = value
        received = result_digest
        logger.info("workflow %s: step %s executed (%s)", workflow.workflow_id, spec.name, reason)
    return StepsOutcome(tuple(reports), outputs, failed=None, traceback=None)


def execute(
    workflow: "DotflowWorkflow",
    *,
    payload: Any,
    fingerprint: str,
    store: DotflowStore,
    policy: InputChangePolicy,
    run_id: str | None = None,
    raise_on_failure: bool = False,
    trigger: RunTrigger = RunTrigger(),
    lock_wait_seconds: float = 0.0,
    on_lock_wait: Callable[[str], None] | None = None,
) -> RunReport:
    """Run ``workflow`` for ``payload`` (already stored under ``fingerprint``) under the run lock."""
    policy = validate_policy(policy, workflow_id=workflow.workflow_id)
    run_id = run_id or uuid.uuid4().hex
    ledger = workflow.ledger(store=store)
    with store.run_lock(workflow.workflow_id, wait_seconds=lock_wait_seconds, on_wait=on_lock_wait):
        # Stored before the lock was taken, but another run's retention may have pruned it since
        # (a decided input outside retention). Once decided, even refused, it is retained again,
        # and its payload must be there to run it by key.
        ledger.put_payload(fingerprint=fingerprint, payload=payload)
        plan = plan_decision(
            workflow,
            payload=payload,
            fingerprint=fingerprint,
            store=store,
            policy=policy,
            run_id=run_id,
            trigger=trigger,
        )
        logger.info(
            "workflow %s fingerprint %s: decision %s (previous %s)",
            workflow.workflow_id,
            fingerprint,
            plan.decision,
            plan.previous_fingerprint,
        )
        if plan.skip_reason is not None:
            return _skipped_report(
                workflow, plan=plan, payload=payload, fingerprint=fingerprint, run_id=run_id, store=store
            )
        try:
            outcome = _run_steps(
                workflow,
                payload=payload,
                fingerprint=fingerprint,
                store=store,
                prefix=ledger.checkpoint_prefix(fingerprint),
                decision=plan.decision,
                incremental_from=plan.incremental_from,
            )
        except BaseException as error:
            # Interrupted (SIGTERM in Dagster, Ctrl-C) or broken: the ledger must not say "running".
            ledger.record_outcome(fingerprint=fingerprint, outcome=f"interrupted: {type(error).__name__}")
            raise
        failed = outcome.failed
        state = ledger.record_outcome(
            fingerprint=fingerprint, outcome="succeeded" if failed is None else f"failed at {failed.name}"
        )
        apply_retention(workflow, state=state, ledger=ledger, store=store)
    report = RunReport(
        workflow_id=workflow.workflow_id,
        fingerprint=fingerprint,
        previous_fingerprint=plan.previous_fingerprint,
        decision=plan.decision,
        steps=outcome.steps,
        outputs=outcome.outputs,
        payload=workflow.redacted(payload),
        changes=plan.changes,
        run_id=run_id,
        failed_step=failed.name if failed else None,
        error=failed.error if failed else None,
        traceback=outcome.traceback,
    )
    if raise_on_failure and not report.ok:
        raise StepFailedError(report)
    return report


def _skipped_report(
    workflow: "DotflowWorkflow",
    *,
    plan: DecisionPlan,
    payload: Any,
    fingerprint: str,
    run_id: str,
    store: DotflowStore,
) -> RunReport:
    # Nothing executes and nothing is deleted, but what the fingerprint completed while it was
    # current is still its own result: a replay may hand that on (the report is then complete).
    prefix = workflow.ledger(store=store).checkpoint_prefix(fingerprint)
    completed = _completed_chain(store, prefix, workflow.steps, existing=set(store.list_keys(prefix)))
    steps = [StepReport(name=c.step_name, key=c.step_key, status="resumed") for c in completed]
    steps += [StepReport(name=spec.name, key=spec.key, status="not_run") for spec in workflow.steps[len(completed) :]]
    return RunReport(
        workflow_id=workflow.workflow_id,
        fingerprint=fingerprint,
        previous_fingerprint=plan.previous_fingerprint,
        decision="skipped",
        steps=tuple(steps),
        outputs={c.step_name: c.result for c in completed},
        payload=workflow.redacted(payload),
        run_id=run_id,
        skip_reason=plan.skip_reason,
    )


def skipped_without_payload(
    workflow: "DotflowWorkflow",
    *,
    fingerprint: str,
    store: DotflowStore,
    trigger: RunTrigger,
    run_id: str | None = None,
) -> RunReport | None:
    """The skipped report of a replay whose fingerprint's payload retention pruned, if it is one.

    A replay (a trigger that may not decide) of a decided fingerprint that is not current
    executes nothing and needs no payload, so a backfill over old partitions still skips them
    rather than failing. Returns ``None`` when the run may decide, or the fingerprint is the
    current one: then the missing payload is an error (``UnknownFingerprintError``).
    """
    ledger = workflow.ledger(store=store)
    state = ledger.read()
    if (
        state.current_fingerprint == fingerprint
        or trigger.may_decide(state)
        or not ledger.was_decided(fingerprint, state=state)
    ):
        return None
    reason = _skip_reason(workflow, state=state, fingerprint=fingerprint, trigger=trigger)
    reason += " Retention has pruned its stored payload: only submitting the payload again can run it."
    plan = DecisionPlan(
        decision="skipped", previous_fingerprint=state.current_fingerprint, changes=(), skip_reason=reason
    )
    return _skipped_report(
        workflow, plan=plan, payload=None, fingerprint=fingerprint, run_id=run_id or uuid.uuid4().hex, store=store
    )
