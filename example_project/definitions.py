"""The example project's Dagster definitions (loaded by ``workspace.yaml`` and ``-m example_project``)."""

from dagster import Definitions

from dotflow_dagster import DotflowResource, dotflow_asset, dotflow_submit_job
from example_project.orders import orders_workflow

orders_demo = dotflow_asset(orders_workflow, group_name="dotflow_demo")
orders_demo_submit = dotflow_submit_job(orders_workflow)

defs = Definitions(
    assets=[orders_demo],
    jobs=[orders_demo_submit],
    # Relative to $DAGSTER_HOME: the store sits beside the instance that records its runs.
    resources={"dotflow": DotflowResource(base_dir="dotflow_store")},
)
