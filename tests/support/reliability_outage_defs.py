"""The code location of the storage outage scenario: one workflow on an S3Store behind a proxy.

``outage-s3`` runs the instrumented steps of ``reliability_steps`` (a test can hold one step
while it takes the endpoint away) with the in-process executor; its checkpoints, ledger and
lease live in ``$DOTFLOW_RELIABILITY_BUCKET``, reached at ``AWS_ENDPOINT_URL_S3`` (the test's
TCP proxy in front of moto). Its lease lasts ``LEASE_SECONDS``: the run that loses the endpoint
cannot delete its lease, and its retry waits for it to expire. Payloads arrive in
``$DOTFLOW_RELIABILITY_DIR/inbox`` (sensor ``outage_inbox``).

Example:
    >>> WORKFLOW.workflow_id, WORKFLOW.step_names
    ('outage-s3', ['extract', 'transform', 'load'])
"""

import os
from pathlib import Path

from dagster import DefaultSensorStatus, Definitions, in_process_executor
from dagster_aws.s3 import S3Resource

from dotflow_dagster import DirectorySource, DotflowResource, DotflowWorkflow, dotflow_asset, payload_change_sensor
from tests.support.reliability_steps import extract, load, transform

__all__ = ["LEASE_SECONDS", "WORKFLOW", "defs"]

LEASE_SECONDS = 4
WORKFLOW = DotflowWorkflow("outage-s3", steps=[extract, transform, load])

defs = Definitions(
    assets=[dotflow_asset(WORKFLOW)],
    sensors=[
        payload_change_sensor(
            [WORKFLOW],
            source=DirectorySource(Path(os.environ.get("DOTFLOW_RELIABILITY_DIR", "reliability")) / "inbox"),
            name="outage_inbox",
            minimum_interval_seconds=1,
            default_status=DefaultSensorStatus.RUNNING,
        )
    ],
    resources={
        "dotflow": DotflowResource(
            s3_bucket=os.environ.get("DOTFLOW_RELIABILITY_BUCKET", "dotflow-reliability"),
            s3_prefix="dotflow/",
            s3=S3Resource(region_name="us-east-1"),
            lease_seconds=LEASE_SECONDS,
        )
    },
    executor=in_process_executor,
)
