"""Code locations of the crash matrix: one workflow per kill point, on a LocalStore and on S3.

Two ``Definitions`` in one module, loaded by the daemon as two code locations
(``attribute: local_defs`` and ``attribute: s3_defs``): each holds seven workflows
``crash-<store>-<kill point>`` over the instrumented steps of ``reliability_steps``, their
assets, and a payload-change sensor on ``$DOTFLOW_RELIABILITY_DIR/inbox-<store>``. Runs use the
in-process executor, so every step runs inside the run worker that a kill point kills.

The stores are the library's own, with one addition: after step 3's checkpoint is written,
``post`` kills the run worker of an ``after-3`` workflow (first attempt only), which is the one
moment between the last checkpoint and the run recording its outcome in the ledger.

Environment: ``DOTFLOW_RELIABILITY_DIR`` (journal, markers, inboxes, the local store),
``DOTFLOW_RELIABILITY_BUCKET`` (the S3 store's bucket; the endpoint comes from
``AWS_ENDPOINT_URL_S3``).

Example:
    >>> [workflow.workflow_id for workflow in crash_workflows("local")][:2]
    ['crash-local-before-1', 'crash-local-in-1']
"""

import os
from pathlib import Path
from typing import Any

from dagster import DefaultSensorStatus, Definitions, in_process_executor
from dagster_aws.s3 import S3Resource
from dotflow.core.context import Context

from dotflow_dagster import DirectorySource, DotflowResource, DotflowWorkflow, dotflow_asset, payload_change_sensor
from dotflow_dagster.stores import DotflowStore, LocalStore, S3Store
from tests.support.reliability_steps import KILL_POINTS, extract, kill_once, load, transform

__all__ = [
    "S3_LEASE_SECONDS",
    "STORE_KINDS",
    "CrashingResource",
    "cell_id",
    "crash_workflows",
    "inbox_for",
    "local_defs",
    "s3_defs",
]

STORE_KINDS = ("local", "s3")
# A killed run's S3 lease blocks its retry this long (plus a second of S3 clock resolution).
S3_LEASE_SECONDS = 3
_LAST_STEP_POSITION = "002-"


def cell_id(store_kind: str, kill_point: str) -> str:
    """The workflow_id (and payload ``cell``) of one cell of the matrix."""
    return f"crash-{store_kind}-{kill_point}"


def crash_workflows(store_kind: str) -> list[DotflowWorkflow]:
    """One workflow per kill point, all with the same three steps and the default policy."""
    return [DotflowWorkflow(cell_id(store_kind, point), steps=[extract, transform, load]) for point in KILL_POINTS]


def inbox_for(directory: Path, store_kind: str) -> Path:
    """The sensor's inbox of one store's code location."""
    return directory / f"inbox-{store_kind}"


class _KillsAfterLastCheckpoint:
    """Kill an ``after-3`` cell's run worker once step 3's checkpoint is durably written."""

    def post(self, key: str, context: Context, ttl: int | None = None, fingerprint: str | None = None) -> None:
        super().post(key, context, ttl=ttl, fingerprint=fingerprint)  # type: ignore[misc]
        parts = key.split("/")
        written = context.storage if isinstance(context, Context) else context
        if (
            written is not None
            and len(parts) == 5
            and parts[0] == "workflows"
            and parts[1].endswith("-after-3")
            and parts[2] == "checkpoints"
            and parts[4].startswith(_LAST_STEP_POSITION)
        ):
            kill_once(cell=parts[1], point="after-3")


class _CrashingLocalStore(_KillsAfterLastCheckpoint, LocalStore):
    pass


class _CrashingS3Store(_KillsAfterLastCheckpoint, S3Store):
    pass


class CrashingResource(DotflowResource):
    """``DotflowResource`` whose stores kill an ``after-3`` cell after its last checkpoint."""

    def get_store(self) -> DotflowStore:
        if self.s3_bucket:
            return _CrashingS3Store(
                self.s3_bucket, self.s3_prefix, s3=self.s3 or S3Resource(), lease_seconds=self.lease_seconds
            )
        return _CrashingLocalStore(self.resolved_base_dir())


def _defs(store_kind: str, resource: Any) -> Definitions:
    directory = Path(os.environ.get("DOTFLOW_RELIABILITY_DIR", "reliability"))
    workflows = crash_workflows(store_kind)
    return Definitions(
        assets=[dotflow_asset(workflow) for workflow in workflows],
        sensors=[
            payload_change_sensor(
                workflows,
                source=DirectorySource(inbox_for(directory, store_kind)),
                name=f"crash_{store_kind}_inbox",
                minimum_interval_seconds=1,
                default_status=DefaultSensorStatus.RUNNING,
                run_tags={"dagster/max_retries": "2"},  # as dagster.yaml's run_retries: set per run too
            )
        ],
        resources={"dotflow": resource},
        executor=in_process_executor,
    )


_DIRECTORY = os.environ.get("DOTFLOW_RELIABILITY_DIR", "reliability")
local_defs = _defs("local", CrashingResource(base_dir=str(Path(_DIRECTORY) / "store")))
s3_defs = _defs(
    "s3",
    CrashingResource(
        s3_bucket=os.environ.get("DOTFLOW_RELIABILITY_BUCKET", "dotflow-reliability"),
        s3_prefix="dotflow/",
        s3=S3Resource(region_name="us-east-1"),
        lease_seconds=S3_LEASE_SECONDS,
    ),
)
