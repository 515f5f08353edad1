"""A code location around the test workflow, for CLI tests that need controllable steps."""

from dagster import Definitions

from dotflow_dagster import DotflowResource, dotflow_asset, dotflow_submit_job
from tests.support.flow import make_workflow

workflow = make_workflow("reset")

defs = Definitions(
    assets=[dotflow_asset(workflow)],
    jobs=[dotflow_submit_job(workflow)],
    resources={"dotflow": DotflowResource(base_dir="dotflow_store")},
)
