"""The code location of the storm scenarios: two sensors feeding three workflows on an S3Store.

- ``storm-dup-sqs``: fed by ``SQSSource`` on ``$DOTFLOW_RELIABILITY_QUEUE_URL`` (sensor
  ``storm_queue``), for identical messages delivered over and over;
- ``storm-dup-inbox`` and ``storm-race``: fed by ``DirectorySource`` on
  ``$DOTFLOW_RELIABILITY_DIR/inbox`` (sensor ``storm_inbox``), for a file rewritten with the same
  payload, and for a file flipping between two payloads.

All three run the instrumented steps of ``reliability_steps`` with the default policy
(``reset``), the in-process executor (one run, one process: the journal's pid names the run),
and keep checkpoints and ledgers in ``$DOTFLOW_RELIABILITY_BUCKET`` (endpoint from
``AWS_ENDPOINT_URL_S3``; SQS from ``AWS_ENDPOINT_URL_SQS``). Both sensors tick every second.

Example:
    >>> sorted(WORKFLOWS)
    ['storm-dup-inbox', 'storm-dup-sqs', 'storm-race']
"""

import os
from pathlib import Path

from dagster import DefaultSensorStatus, Definitions, in_process_executor
from dagster_aws.s3 import S3Resource

from dotflow_dagster import (
    DirectorySource,
    DotflowResource,
    DotflowWorkflow,
    SQSSource,
    dotflow_asset,
    payload_change_sensor,
)
from tests.support.reliability_steps import extract, load, transform

__all__ = ["INBOX_SENSOR", "QUEUE_SENSOR", "WORKFLOWS", "defs"]

INBOX_SENSOR = "storm_inbox"
QUEUE_SENSOR = "storm_queue"
WORKFLOWS = {
    workflow_id: DotflowWorkflow(workflow_id, steps=[extract, transform, load])
    for workflow_id in ("storm-dup-sqs", "storm-dup-inbox", "storm-race")
}

_directory = Path(os.environ.get("DOTFLOW_RELIABILITY_DIR", "reliability"))
_queue_url = os.environ.get("DOTFLOW_RELIABILITY_QUEUE_URL", "http://127.0.0.1:5000/123456789012/storm")

defs = Definitions(
    assets=[dotflow_asset(workflow) for workflow in WORKFLOWS.values()],
    sensors=[
        payload_change_sensor(
            [WORKFLOWS["storm-dup-sqs"]],
            source=SQSSource(_queue_url, region_name="us-east-1"),
            name=QUEUE_SENSOR,
            minimum_interval_seconds=1,
            default_status=DefaultSensorStatus.RUNNING,
        ),
        payload_change_sensor(
            [WORKFLOWS["storm-dup-inbox"], WORKFLOWS["storm-race"]],
            source=DirectorySource(_directory / "inbox"),
            name=INBOX_SENSOR,
            minimum_interval_seconds=1,
            default_status=DefaultSensorStatus.RUNNING,
        ),
    ],
    resources={
        "dotflow": DotflowResource(
            s3_bucket=os.environ.get("DOTFLOW_RELIABILITY_BUCKET", "dotflow-reliability"),
            s3_prefix="dotflow/",
            s3=S3Resource(region_name="us-east-1"),
        )
    },
    executor=in_process_executor,
)
