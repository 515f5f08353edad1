"""``dotflow_submit_job``: submit a payload with ``dagster job execute`` (payload in run config)."""

from collections.abc import Mapping, Sequence

from dagster import (
    AssetKey,
    Enum,
    EnumValue,
    Failure,
    Field,
    GraphDefinition,
    JobDefinition,
    Noneable,
    OpExecutionContext,
    Permissive,
    in_process_executor,
    materialize,
    op,
)

from dotflow_dagster.assets import dotflow_asset
from dotflow_dagster.errors import InputChangedError
from dotflow_dagster.execution import asset_key_for, partitions_def_name_for, policy_for_run
from dotflow_dagster.fingerprint import FingerprintError
from dotflow_dagster.metadata import (
    TAG_ARRIVAL,
    TAG_FINGERPRINT,
    TAG_ON_INPUT_CHANGE,
    TAG_RETRY_OF,
    TAG_WORKFLOW_ID,
)
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
    io_manager_key: str | None = None,
) -> JobDefinition:
    """Build the job that submits one payload: ``dagster job execute -j <asset name>_submit -c run.yaml``.

    Its single op (named like the job) fingerprints ``payload`` from its config, stores it in the
    ledger, registers the fingerprint as a partition of the workflow's asset, and then
    materializes that partition of the asset in a run of its own (tagged ``dotflow/arrival=submit``
    and linked by ``dotflow/submit_run_id``). So a submitted payload runs exactly as the asset
    does, and its partition shows the same truth in the UI whichever way it came in: materialized
    on success, failed (with the same ``dotflow/*`` metadata) on a refusal or a failed step. A
    failure also fails this job's run, so the CLI exits non-zero.

    Args:
        workflow: the workflow to run.
        key: the asset key used by ``dotflow_asset`` for this workflow, if not the default.
        description: the job's description.
        tags: extra run tags; ``dotflow/workflow_id`` is always set, ``dotflow/fingerprint`` is
            added to the run as soon as the payload is fingerprinted.
        io_manager_key: the IO manager the workflow's asset uses, if not the default, so the
            submitted partition's output lands where the asset's other partitions do.

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
    io_manager_resource_key = io_manager_key or "io_manager"
    asset_def = dotflow_asset(workflow, key=asset_key, io_manager_key=io_manager_key)

    # No concurrency pool here: the asset run it starts claims the workflow's pool, and holding
    # it in this op as well would make that run wait for its own parent forever.
    @op(
        name=job_name,
        config_schema={
            "payload": Field(Permissive(), is_required=True, description="The workflow's input: any JSON object."),
            "on_input_change": Field(
                Noneable(ON_INPUT_CHANGE_CONFIG),
                is_required=False,
                description="Override the workflow's policy for this run: reset, reuse, raise or incremental.",
            ),
        },
        required_resource_keys={RESOURCE_KEY, io_manager_resource_key},
        description=f"Fingerprint a payload, register it as a partition of {asset_key.to_user_string()} and run it.",
    )
    def submit(context: OpExecutionContext) -> None:
        resource: DotflowResource = getattr(context.resources, RESOURCE_KEY)
        store = resource.get_store()
        payload = context.op_config["payload"]
        try:
            fingerprint = workflow.put_payload(payload, store=store)
        except InputChangedError as error:
            # validate_paths: this identity is stored with other values; the partition would run those.
            raise Failure(description=str(error), allow_retries=False) from None
        except (FingerprintError, ValueError) as error:
            raise Failure(
                description=f"workflow {workflow.workflow_id!r}: the payload in run config cannot be fingerprinted: {error}",
                allow_retries=False,
            ) from None
        context.instance.add_run_tags(
            context.run_id, {TAG_WORKFLOW_ID: workflow.workflow_id, TAG_FINGERPRINT: fingerprint}
        )
        if not context.instance.has_dynamic_partition(partitions_def_name, fingerprint):
            context.instance.add_dynamic_partitions(partitions_def_name, [fingerprint])
        policy = policy_for_run(context, workflow=workflow, requested=context.op_config.get("on_input_change"))
        asset_run_tags = {
            TAG_ARRIVAL: "submit",
            TAG_WORKFLOW_ID: workflow.workflow_id,
            TAG_FINGERPRINT: fingerprint,
            "dotflow/submit_run_id": context.run_id,
        }
        if isinstance(policy, str) and policy != workflow.on_input_change:
            asset_run_tags[TAG_ON_INPUT_CHANGE] = policy
        original = context.run.tags.get("dagster/root_run_id") or context.run.tags.get("dagster/parent_run_id")
        if original:
            asset_run_tags[TAG_RETRY_OF] = original
        context.log.info(f"submitting fingerprint {fingerprint} of workflow {workflow.workflow_id} as an asset run")
        result = materialize(
            [asset_def],
            partition_key=fingerprint,
            instance=context.instance,
            resources={
                RESOURCE_KEY: resource,
                io_manager_resource_key: getattr(context.resources, io_manager_resource_key),
            },
            tags=asset_run_tags,
            raise_on_error=False,
        )
        context.log.info(f"asset run {result.run_id} for fingerprint {fingerprint}: {'success' if result.success else 'failure'}")
        if not result.success:
            raise _failure_of(result, node_name=asset_def.op.name, run_id=result.run_id)

    # @job refuses an op with the job's own name, so the graph gets another one.
    graph = GraphDefinition(name=f"{job_name}_graph", node_defs=[submit])
    return graph.to_job(
        name=job_name,
        description=description or f"Submit a payload to dotflow workflow {workflow.workflow_id!r}.",
        tags={**(tags or {}), TAG_WORKFLOW_ID: workflow.workflow_id},
        # One op, which runs its asset in-process anyway: a step worker process would only import
        # everything a second time (about 0.9 s of every submit through the CLI).
        executor_def=in_process_executor,
    )


def _failure_of(result, *, node_name: str, run_id: str) -> Failure:
    """Carry the asset run's failure (description and metadata) over to the submit run."""
    failure_data = result.failure_data_for_node(node_name)
    user_failure = getattr(failure_data, "user_failure_data", None) if failure_data else None
    if user_failure is not None:
        return Failure(
            description=f"{user_failure.description}\n(asset run {run_id})",
            metadata=user_failure.metadata,
            allow_retries=False,
        )
    error = getattr(failure_data, "error", None) if failure_data else None
    detail = error.to_string() if error is not None else "see the run's logs"
    return Failure(description=f"asset run {run_id} failed: {detail}", allow_retries=False)
