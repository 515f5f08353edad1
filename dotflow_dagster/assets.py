"""``dotflow_asset``: a workflow as a Dagster asset partitioned by input fingerprint."""

from collections.abc import Mapping, Sequence

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetObservation,
    AssetsDefinition,
    DynamicPartitionsDefinition,
    Failure,
    Output,
    RetryPolicy,
    asset,
)

from dotflow_dagster.execution import (
    asset_key_for,
    partitions_def_name_for,
    policy_for_run,
    pool_for,
    run_fingerprint_in_dagster,
)
from dotflow_dagster.ledger import LedgerState
from dotflow_dagster.metadata import report_metadata, skip_metadata
from dotflow_dagster.report import RunReport
from dotflow_dagster.resource import RESOURCE_KEY, DotflowResource
from dotflow_dagster.workflow import DotflowWorkflow

__all__ = ["HOW_TO_READ_PARTITIONS", "dotflow_asset"]

HOW_TO_READ_PARTITIONS = (
    "Each partition is one input: its key is the sha256 fingerprint of the payload. Dagster lists "
    "them by key, not by time; every materialization, failure and skip carries "
    "`dotflow/current_fingerprint` (the input the workflow now stands on) and `dotflow/history` (every "
    "decision, oldest first, the current one marked). Only an arrival (the submit job, a sensor run for "
    "a new payload) or a run tagged `dotflow/on_input_change` makes an input current; a backfill, a "
    "re-materialization or a retry of an older input executes nothing and leaves the history alone "
    "(`dotflow/decision` = skipped): it re-materializes that input's own kept result, or fails if the "
    "input was refused or never completed."
)


def dotflow_asset(
    workflow: DotflowWorkflow,
    *,
    key: AssetKey | str | Sequence[str] | None = None,
    group_name: str | None = None,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
    io_manager_key: str | None = None,
    retry_policy: RetryPolicy | None = None,
) -> AssetsDefinition:
    """Build a Dagster asset that runs ``workflow``, one partition per input fingerprint.

    The partitions are a ``DynamicPartitionsDefinition`` named ``"<asset name>_fingerprints"``,
    filled by the submit job (or by ``workflow.put_payload(...)`` followed by the instance's
    ``add_dynamic_partitions``). Materializing a partition reads its payload from the ledger, checks it still hashes to the key, applies the policy and runs the steps, resuming
    where an earlier run of the same fingerprint stopped. The output is the last step's result.

    Only an arrival makes an input current: a run of the submit job, a sensor run for a payload
    that just arrived (run tag ``dotflow/arrival``), or a run tagged ``dotflow/on_input_change``
    (``reset``, ``reuse`` or ``raise``: the operator's explicit choice, e.g. a Launchpad ``reset``
    after a ``raise``). A fingerprint no run has decided yet is new, so its first run is an arrival
    too. Any other run of a superseded or refused fingerprint (a backfill, a UI
    re-materialization, a retry after the input moved on) executes no step and leaves the ledger
    alone; what it shows depends on what that input is:

    - it completed while it was current: its own result, restored from its own checkpoints, is
      materialized again with ``dotflow/decision = skipped`` and the reason, so a backfill over
      every partition completes and re-executes nothing;
    - it was refused, or failed before a newer input arrived: the run fails with the reason
      (nothing ran), and the partition stays failed, as it was;
    - it completed, but retention pruned its checkpoints: an ``AssetObservation`` records the
      reason and the partition keeps its earlier materialization.

    The asset's concurrency pool is ``dotflow/<workflow_id>``: set its limit to 1 to queue one
    workflow's runs however they are launched. Without a pool limit a second run waits for the
    workflow's lock (``DotflowResource.lock_timeout_seconds``) instead of failing at once.

    Args:
        workflow: the workflow to run.
        key: the asset key; defaults to the workflow_id with ``-`` and ``.`` turned into ``_``.
        group_name: the asset group.
        description: defaults to the workflow's description, or a summary of its steps.
        tags: asset tags (shown in the UI, usable in selections).
        io_manager_key: the IO manager that stores the last step's result.
        retry_policy: Dagster's step retries; a retried step failure resumes where it stopped.

    Example:
        >>> from dagster import Definitions
        >>> from dotflow import action
        >>> from dotflow_dagster import DotflowResource, DotflowWorkflow, dotflow_asset
        >>> @action
        ... def extract(initial_context):
        ...     return initial_context.storage
        >>> orders = dotflow_asset(DotflowWorkflow("orders-acme", steps=[extract]))
        >>> defs = Definitions(assets=[orders], resources={"dotflow": DotflowResource()})
        >>> orders.partitions_def.name
        'orders_acme_fingerprints'
    """
    asset_key = asset_key_for(workflow, key)
    partitions_def = DynamicPartitionsDefinition(name=partitions_def_name_for(asset_key.path[-1]))

    @asset(
        key=asset_key,
        partitions_def=partitions_def,
        group_name=group_name,
        description=description
        or (workflow.description or f"dotflow workflow {workflow.workflow_id!r}: {' -> '.join(workflow.step_names)}.")
        + "\n\n"
        + HOW_TO_READ_PARTITIONS,
        tags=tags,
        io_manager_key=io_manager_key,
        retry_policy=retry_policy,
        required_resource_keys={RESOURCE_KEY},
        pool=pool_for(workflow),
        kinds={"dotflow"},
        # A skipped replay yields no output: the run succeeds without a materialization.
        output_required=False,
        metadata={
            "dotflow/workflow_id": workflow.workflow_id,
            "dotflow/steps": ", ".join(workflow.step_names),
            "dotflow/partitions": HOW_TO_READ_PARTITIONS,
            # The workflow's default; a run's own policy can differ (run tag dotflow/on_input_change).
            "dotflow/default_on_input_change": workflow.on_input_change
            if isinstance(workflow.on_input_change, str)
            else f"hook {getattr(workflow.on_input_change, '__qualname__', type(workflow.on_input_change).__name__)}",
        },
    )
    def _dotflow_asset(context: AssetExecutionContext):
        resource: DotflowResource = getattr(context.resources, RESOURCE_KEY)
        finished = run_fingerprint_in_dagster(
            context.op_execution_context,
            workflow=workflow,
            store=resource.get_store(),
            fingerprint=context.partition_key,
            policy=policy_for_run(context.op_execution_context, workflow=workflow),
            lock_wait_seconds=resource.lock_timeout_seconds,
        )
        report, state = finished.report, finished.state
        if report.skipped and not report.complete:
            yield _incomplete_replay(report, state=state, asset_key=asset_key)
            return
        # A replay of an old input that completed hands on its own result, restored from its own
        # checkpoints without executing anything: a backfill over every partition completes.
        yield Output(report.result, metadata=report_metadata(report, state=state))

    return _dotflow_asset


def _incomplete_replay(report: RunReport, *, state: LedgerState, asset_key: AssetKey) -> AssetObservation:
    """A replay of an input that has no complete result of its own: nothing ran, nothing moved.

    A refused input, or one that failed or was interrupted before a newer input arrived, fails
    the run: its partition was failed and stays so, saying why. One that completed but whose
    checkpoints retention has pruned gets an observation: its partition keeps its earlier
    materialization rather than turning red.
    """
    entry = state.latest_entry(report.fingerprint)
    if entry is not None and (entry.decision == "raise" or entry.outcome != "succeeded"):
        raise Failure(description=report.skip_reason, metadata=skip_metadata(report, state=state), allow_retries=False)
    return AssetObservation(
        asset_key=asset_key,
        partition=report.fingerprint,
        description="Skipped: not the current input (see dotflow/skipped).",
        metadata=skip_metadata(report, state=state),
    )
