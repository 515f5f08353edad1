"""``dotflow_submit_job``: submit a payload with ``dagster job execute`` (payload in run config)."""

from collections.abc import Mapping, Sequence

from dagster import (
    AssetKey,
    AssetMaterialization,
    Enum,
    EnumValue,
    Failure,
    Field,
    GraphDefinition,
    JobDefinition,
    Noneable,
    OpExecutionContext,
    Permissive,
    op,
)

from dotflow_dagster.execution import (
    asset_key_for,
    partitions_def_name_for,
    policy_for_run,
    pool_for,
    run_fingerprint_in_dagster,
)
from dotflow_dagster.fingerprint import FingerprintError
from dotflow_dagster.metadata import TAG_FINGERPRINT, TAG_WORKFLOW_ID, report_metadata
from dotflow_dagster.policy import POLICY_NAMES
from dotflow_dagster.resource import RESOURCE_KEY, DotflowResource
from dotflow_dagster.workflow import DotflowWorkflow

__all__ = ["dotflow_submit_job"]

# One shared config type: Dagster refuses two different config types with the same name.
ON_INPUT_CHANGE_CONFIG = Enum("DotflowOnInputChange", [EnumValue(name) for name in POLICY_NAMES])


def dotflow_submit_job(
    workflow: DotflowWorkflow,
    *,
    key: AssetKey | str | Sequence[str] | None = None,
    description: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> JobDefinition:
    """Build the job that submits one payload: ``dagster job execute -j <asset name>_submit -c run.yaml``.

    Its single op (named like the job) fingerprints ``payload`` from its config, stores it in the
    ledger, registers the fingerprint as a partition of the workflow's asset, runs the workflow
    exactly as the asset does, and records an ``AssetMaterialization`` of that partition with
    the same metadata. A failed step or a refused change fails the run (non-zero exit).

    Args:
        workflow: the workflow to run.
        key: the asset key used by ``dotflow_asset`` for this workflow, if not the default.
        description: the job's description.
        tags: extra run tags; ``dotflow/workflow_id`` is always set, ``dotflow/fingerprint`` is
            added to the run as soon as the payload is fingerprinted.

    Example:
        Run config (``orders_v1.yaml``)::

            ops:
              orders_demo_submit:
                config:
                  payload: {orders_file: orders_2026_11.csv, currency: EUR}
                  on_input_change: reset   # optional; the workflow's policy otherwise

        >>> from dotflow import action
        >>> @action
        ... def extract(initial_context):
        ...     return initial_context.storage
        >>> dotflow_submit_job(DotflowWorkflow("orders-demo", steps=[extract])).name
        'orders_demo_submit'
    """
    asset_key = asset_key_for(workflow, key)
    asset_name = asset_key.path[-1]
    job_name = f"{asset_name}_submit"
    partitions_def_name = partitions_def_name_for(asset_name)

    @op(
        name=job_name,
        config_schema={
            "payload": Field(Permissive(), is_required=True, description="The workflow's input: any JSON object."),
            "on_input_change": Field(
                Noneable(ON_INPUT_CHANGE_CONFIG),
                is_required=False,
                description="Override the workflow's policy for this run: reset, reuse or raise.",
            ),
        },
        required_resource_keys={RESOURCE_KEY},
        description=f"Fingerprint a payload, register it as a partition of {asset_key.to_user_string()} and run it.",
        pool=pool_for(workflow),
    )
    def submit(context: OpExecutionContext) -> None:
        resource: DotflowResource = getattr(context.resources, RESOURCE_KEY)
        store = resource.get_store()
        payload = context.op_config["payload"]
        try:
            fingerprint = workflow.put_payload(payload, store=store)
        except FingerprintError as error:
            raise Failure(
                description=f"workflow {workflow.workflow_id!r}: the payload in run config cannot be fingerprinted: {error}",
                allow_retries=False,
            ) from None
        context.instance.add_run_tags(
            context.run_id, {TAG_WORKFLOW_ID: workflow.workflow_id, TAG_FINGERPRINT: fingerprint}
        )
        if not context.instance.has_dynamic_partition(partitions_def_name, fingerprint):
            context.instance.add_dynamic_partitions(partitions_def_name, [fingerprint])
        report = run_fingerprint_in_dagster(
            context,
            workflow=workflow,
            store=store,
            fingerprint=fingerprint,
            policy=policy_for_run(context, workflow=workflow, requested=context.op_config.get("on_input_change")),
        )
        context.log_event(
            AssetMaterialization(asset_key=asset_key, partition=fingerprint, metadata=report_metadata(report))
        )

    # @job refuses an op with the job's own name, so the graph gets another one.
    graph = GraphDefinition(name=f"{job_name}_graph", node_defs=[submit])
    return graph.to_job(
        name=job_name,
        description=description or f"Submit a payload to dotflow workflow {workflow.workflow_id!r}.",
        tags={**(tags or {}), TAG_WORKFLOW_ID: workflow.workflow_id},
    )
