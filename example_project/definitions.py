"""The example project's Dagster definitions (loaded by ``workspace.yaml`` and ``-m example_project``).

Three ways in: the submit job (``dagster job execute -j orders_demo_submit -c payload.yaml``),
the asset's partitions in the UI, and a sensor on an inbox directory (``example_project/inbox``,
or ``$ORDERS_DEMO_INBOX``): drop ``orders-demo.json`` there (write a temporary name, then
rename it) and the sensor turns a changed payload into a partition and a run.
"""

import os
from pathlib import Path

from dagster import Definitions

from dotflow_dagster import DirectorySource, DotflowResource, dotflow_asset, dotflow_submit_job, payload_change_sensor
from example_project.orders import orders_workflow

INBOX = Path(os.environ.get("ORDERS_DEMO_INBOX") or Path(__file__).resolve().parent / "inbox")

orders_demo = dotflow_asset(orders_workflow, group_name="dotflow_demo")
orders_demo_submit = dotflow_submit_job(orders_workflow)
orders_demo_inbox = payload_change_sensor(
    [orders_workflow], source=DirectorySource(INBOX), name="orders_demo_inbox", minimum_interval_seconds=5
)

defs = Definitions(
    assets=[orders_demo],
    jobs=[orders_demo_submit],
    sensors=[orders_demo_inbox],
    # Relative to $DAGSTER_HOME: the store sits beside the instance that records its runs.
    resources={"dotflow": DotflowResource(base_dir="dotflow_store")},
)
