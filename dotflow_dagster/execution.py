"""Running a workflow inside a Dagster step: which runs may decide, waiting, failures as ``Failure``.

Shared by the asset and the submit job, so both run a payload exactly the same way.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

from dagster import AssetKey, Failure, OpExecutionContext, RunsFilter

from dotflow_dagster.errors import (
    FingerprintMismatchError,
    InputChangedError,
    RunInProgressError,
    StoreError,
    UnknownFingerprintError,
)
from dotflow_dagster.ledger import LedgerState
from dotflow_dagster.metadata import (
    TAG_ARRIVAL,
    TAG_ON_INPUT_CHANGE,
    TAG_RETRY_OF,
    failure_metadata,
    refusal_metadata,
)
from dotflow_dagster.policy import POLICY_NAMES, InputChangePolicy
from dotflow_dagster.report import RunReport
from dotflow_dagster.runner import RunTrigger
from dotflow_dagster.stores import DotflowStore
from dotflow_dagster.workflow import DotflowWorkflow

__all__ = [
    "PartitionRun",
    "asset_key_for",
    "asset_name_for",
    "partitions_def_name_for",
    "policy_for_run",
    "pool_for",
    "run_fingerprint_in_dagster",
    "trigger_for_run",
]

# Dagster's own tags on retries and re-executions (copied from the parent with the other tags).
_PARENT_RUN_ID = "dagster/parent_run_id"
_ROOT_RUN_ID = "dagster/root_run_id"
_BACKFILL_ID = "dagster/backfill"


def asset_name_for(workflow: DotflowWorkflow) -> str:
    """The default asset name: the workflow_id with ``-`` and ``.`` turned into ``_``."""
    return re.sub(r"[-.]", "_", workflow.workflow_id)


def asset_key_for(workflow: DotflowWorkflow, key: AssetKey | str | Sequence[str] | None = None) -> AssetKey:
    """The asset key of a workflow's asset: ``key`` if given, else from ``asset_name_for``."""
    return AssetKey(asset_name_for(workflow)) if key is None else AssetKey.from_coercible(key)


def partitions_def_name_for(asset_name: str) -> str:
    return f"{asset_name}_fingerprints"


def pool_for(workflow: DotflowWorkflow) -> str:
    """The concurrency pool that serializes one workflow's runs, whatever launched them."""
    return f"dotflow/{workflow.workflow_id}"


def policy_for_run(
    context: OpExecutionContext, *, workflow: DotflowWorkflow, requested: str | None = None
) -> InputChangePolicy:
    """The run's policy: explicit config, else the ``dotflow/on_input_change`` run tag, else the workflow's."""
    tag = context.run.tags.get(TAG_ON_INPUT_CHANGE)
    chosen = requested or tag
    if chosen is None:
        return workflow.on_input_change
    if chosen not in POLICY_NAMES:
        raise Failure(
            description=(
                f"workflow {workflow.workflow_id!r}: {TAG_ON_INPUT_CHANGE}={chosen!r} is not a policy; "
                f"use one of {', '.join(POLICY_NAMES)}"
            ),
            allow_retries=False,
        )
    return chosen  # type: ignore[return-value]


def trigger_for_run(context: OpExecutionContext) -> RunTrigger:
    """Tell an arrival from a replay by the run's tags.

    Arrivals (they may make their input current): runs of the submit job and sensor runs for a
    payload that just arrived (tag ``dotflow/arrival``), and runs an operator launched with an
    explicit ``dotflow/on_input_change``. Replays (they never move the ledger): backfills, UI
    re-materializations, and retries or re-executions, which copy their parent's tags; a retry
    keeps its original run's right to decide only while no decision was recorded since that
    run was launched.
    """
    tags = context.run.tags
    chosen = TAG_ON_INPUT_CHANGE in tags or TAG_ARRIVAL in tags
    original = tags.get(TAG_RETRY_OF) or tags.get(_ROOT_RUN_ID) or tags.get(_PARENT_RUN_ID)
    if original:
        since = None
        if chosen:
            records = context.instance.get_run_records(RunsFilter(run_ids=[original]), limit=1)
            since = records[0].create_timestamp if records else None
        return RunTrigger(arrival=False, inherits_arrival_since=since, description=f"retry of run {original}")
    if TAG_ON_INPUT_CHANGE in tags:
        return RunTrigger(arrival=True, description=f"run tagged {TAG_ON_INPUT_CHANGE}={tags[TAG_ON_INPUT_CHANGE]}")
    if TAG_ARRIVAL in tags:
        return RunTrigger(arrival=True, description=f"{tags[TAG_ARRIVAL]} run")
    if _BACKFILL_ID in tags:
        return RunTrigger(arrival=False, description=f"backfill run (backfill {tags[_BACKFILL_ID]})")
    return RunTrigger(arrival=False, description="re-materialization")


@dataclass(frozen=True)
class PartitionRun:
    """A finished run of one fingerprint partition and the ledger it left behind."""

    report: RunReport
    state: LedgerState


def run_fingerprint_in_dagster(
    context: OpExecutionContext,
    *,
    workflow: DotflowWorkflow,
    store: DotflowStore,
    fingerprint: str,
    policy: InputChangePolicy,
    lock_wait_seconds: float = 0.0,
) -> PartitionRun:
    """Run the stored payload of ``fingerprint``; every way it can go wrong becomes a ``Failure``.

    A skipped run (a replay of an input that is not current) returns normally: nothing is wrong,
    and failing it would paint every old partition red after a backfill.
    """
    trigger = trigger_for_run(context)
    waiting_logged = False

    def log_wait(holder: str) -> None:
        nonlocal waiting_logged
        context.log.info(
            f"workflow {workflow.workflow_id}: waiting for the run that holds its lock ({holder or 'unknown'}); "
            f"giving up after {lock_wait_seconds:.0f} s"
        )
        waiting_logged = True

    try:
        report = workflow.run_fingerprint(
            fingerprint,
            store=store,
            on_input_change=policy,
            run_id=context.run_id,
            trigger=trigger,
            lock_wait_seconds=lock_wait_seconds,
            on_lock_wait=log_wait,
        )
    except InputChangedError as error:
        raise Failure(
            description=str(error),
            metadata=refusal_metadata(error, state=_state_or_empty(workflow, store)),
            allow_retries=False,
        ) from None
    except (UnknownFingerprintError, FingerprintMismatchError, StoreError, RunInProgressError) as error:
        raise Failure(
            description=str(error),
            metadata=failure_metadata(
                workflow_id=workflow.workflow_id, fingerprint=fingerprint, state=_state_or_empty(workflow, store)
            ),
            # Only a lock held by another run can clear up by itself.
            allow_retries=isinstance(error, RunInProgressError),
        ) from None
    state = _state_or_empty(workflow, store)
    if report.skipped:
        context.log.warning(report.skip_reason or "skipped")
        return PartitionRun(report=report, state=state)
    context.log.info(
        f"workflow {workflow.workflow_id} fingerprint {fingerprint}: decision {report.decision}; "
        f"resumed {report.resumed or 'nothing'}; executed {report.executed or 'nothing'}"
    )
    for step in report.steps:
        if step.status != "not_run":
            context.log.info(f"step {step.name}: {step.status}" + (f" ({step.reason})" if step.reason else ""))
    if not report.ok:
        raise Failure(description=failed_step_hint(report), metadata=failure_metadata(report=report, state=state))
    return PartitionRun(report=report, state=state)


def failed_step_hint(report: RunReport) -> str:
    """The failure text: what failed, and what re-running does for a transient error and for bad data."""
    kept = ", ".join(report.resumed + report.executed) or "none"
    return (
        f"step {report.failed_step!r} of workflow {report.workflow_id!r} failed: {report.error}\n"
        f"Completed steps ({kept}) are kept. If the cause was transient (a timeout, a service that was "
        f"down), re-materializing partition {report.fingerprint} resumes at step {report.failed_step!r}. "
        "If the input data itself is wrong, the same input fails the same way: submit a corrected "
        "payload, which gets its own fingerprint, or fix the step."
    )


def _state_or_empty(workflow: DotflowWorkflow, store: DotflowStore) -> LedgerState:
    try:
        return workflow.state(store=store)
    except StoreError:
        return LedgerState(workflow_id=workflow.workflow_id)
