"""A code location with the payload-change sensor on an inbox, for the daemon end-to-end test.

``DOTFLOW_TEST_INBOX`` names the inbox; the policy is a hook that reads ``DOTFLOW_TEST_POLICY_FILE``
at decision time, so a test can switch between ``reset`` and ``raise`` while the daemon runs.
"""

import os
from pathlib import Path

from dagster import DefaultSensorStatus, Definitions

from dotflow_dagster import DirectorySource, DotflowResource, DotflowWorkflow, dotflow_asset, payload_change_sensor
from tests.support.flow import extract, make_workflow


def policy_from_file(change) -> str:
    return Path(os.environ["DOTFLOW_TEST_POLICY_FILE"]).read_text().strip()


workflow = make_workflow(policy_from_file)
# A second workflow in the same sensor: each run request must name its own asset job.
idle = DotflowWorkflow("idle", steps=[extract])

defs = Definitions(
    assets=[dotflow_asset(workflow), dotflow_asset(idle)],
    sensors=[
        payload_change_sensor(
            [workflow, idle],
            source=DirectorySource(os.environ.get("DOTFLOW_TEST_INBOX", "inbox")),
            minimum_interval_seconds=1,
            default_status=DefaultSensorStatus.RUNNING,
        )
    ],
    resources={"dotflow": DotflowResource(base_dir="dotflow_store")},
)
