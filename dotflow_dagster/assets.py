"""``dotflow_asset``: a workflow as a Dagster asset partitioned by input fingerprint."""

from collections.abc import Mapping, Sequence

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    DynamicPartitionsDefinition,
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
from dotflow_dagster.metadata import report_metadata
from dotflow_dagster.resource import RESOURCE_KEY, DotflowResource
from dotflow_dagster.workflow import DotflowWorkflow

__all__ = ["dotflow_asset"]



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

    A run tag ``dotflow/on_input_change`` (``reset``, ``reuse`` or ``raise``) overrides the
    policy for that run, e.g. to launch a ``reset`` from the Launchpad after a ``raise``. The
    asset's concurrency pool is ``dotflow/<workflow_id>``: set its limit to 1 to serialize one
    workflow's runs however they are launched.

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
        or workflow.description
        or f"dotflow workflow {workflow.workflow_id!r}: {' -> '.join(workflow.step_names)}. "
        "Partitions are input fingerprints.",
        tags=tags,
        io_manager_key=io_manager_key,
        retry_policy=retry_policy,
        required_resource_keys={RESOURCE_KEY},
        pool=pool_for(workflow),
        kinds={"dotflow"},
        metadata={
            "dotflow/workflow_id": workflow.workflow_id,
            "dotflow/steps": ", ".join(workflow.step_names),
            "dotflow/on_input_change": workflow.on_input_change
            if isinstance(workflow.on_input_change, str)
            else "hook",
        },
    )
    def _dotflow_asset(context: AssetExecutionContext) -> Output:
        resource: DotflowResource = getattr(context.resources, RESOURCE_KEY)
        report = run_fingerprint_in_dagster(
            context.op_execution_context,
            workflow=workflow,
            store=resource.get_store(),
            fingerprint=context.partition_key,
            policy=policy_for_run(context.op_execution_context, workflow=workflow),
        )
        return Output(report.result, metadata=report_metadata(report))

    return _dotflow_asset
