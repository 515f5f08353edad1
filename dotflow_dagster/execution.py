"""Running a workflow inside a Dagster step: policy override by tag, failures as ``dagster.Failure``.

Shared by the asset and the submit job, so both run a payload exactly the same way.
"""

import re
from collections.abc import Sequence

from dagster import AssetKey, Failure, MetadataValue, OpExecutionContext

from dotflow_dagster.errors import (
    FingerprintMismatchError,
    InputChangedError,
    RunInProgressError,
    StoreError,
    UnknownFingerprintError,
)
from dotflow_dagster.metadata import TAG_FINGERPRINT, TAG_ON_INPUT_CHANGE, TAG_WORKFLOW_ID, report_metadata
from dotflow_dagster.policy import POLICY_NAMES, InputChangePolicy
from dotflow_dagster.report import RunReport
from dotflow_dagster.stores import DotflowStore
from dotflow_dagster.workflow import DotflowWorkflow

__all__ = [
    "asset_key_for",
    "asset_name_for",
    "partitions_def_name_for",
    "policy_for_run",
    "pool_for",
    "run_fingerprint_in_dagster",
]


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
            )
        )
    return chosen  # type: ignore[return-value]


def run_fingerprint_in_dagster(
    context: OpExecutionContext,
    *,
    workflow: DotflowWorkflow,
    store: DotflowStore,
    fingerprint: str,
    policy: InputChangePolicy,
) -> RunReport:
    """Run the stored payload of ``fingerprint``; every way it can go wrong becomes a ``Failure``."""
    try:
        report = workflow.run_fingerprint(fingerprint, store=store, on_input_change=policy, run_id=context.run_id)
    except InputChangedError as error:
        raise Failure(
            description=str(error),
            metadata={
                TAG_WORKFLOW_ID: workflow.workflow_id,
                TAG_FINGERPRINT: fingerprint,
                "dotflow/previous_fingerprint": error.previous_fingerprint,
                "dotflow/decision": "raise",
                "dotflow/diff": MetadataValue.md(f"```\n{error.diff_text}\n```"),
            },
            allow_retries=False,
        ) from None
    except (UnknownFingerprintError, FingerprintMismatchError, StoreError, RunInProgressError) as error:
        raise Failure(
            description=str(error),
            metadata={TAG_WORKFLOW_ID: workflow.workflow_id, TAG_FINGERPRINT: fingerprint},
            # Only a lock held by another run can clear up by itself.
            allow_retries=isinstance(error, RunInProgressError),
        ) from None
    context.log.info(
        f"workflow {workflow.workflow_id} fingerprint {fingerprint}: decision {report.decision}; "
        f"resumed {report.resumed or 'nothing'}; executed {report.executed or 'nothing'}"
    )
    if not report.ok:
        raise Failure(
            description=(
                f"step {report.failed_step!r} of workflow {workflow.workflow_id!r} failed: {report.error}\n"
                f"Re-materializing partition {fingerprint} resumes at step {report.failed_step!r}; "
                f"completed steps ({', '.join(report.resumed + report.executed) or 'none'}) are kept."
            ),
            metadata=report_metadata(report),
        )
    return report
