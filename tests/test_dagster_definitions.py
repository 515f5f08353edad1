"""Definition shape: what the UI, the CLI and users' code rely on, checked without a backend."""

from dagster import AssetKey, DynamicPartitionsDefinition, RetryPolicy

from dotflow_dagster import DotflowResource, DotflowWorkflow, dotflow_asset, dotflow_submit_job
from dotflow_dagster.metadata import METADATA_KEYS
from example_project import defs
from tests.support.flow import extract, make_workflow


def test_the_example_asset_is_partitioned_by_fingerprints_and_uses_the_dotflow_resource():
    asset_def = defs.get_assets_def("orders_demo")
    assert asset_def.key == AssetKey("orders_demo")
    partitions_def = asset_def.partitions_def
    assert isinstance(partitions_def, DynamicPartitionsDefinition)
    assert partitions_def.name == "orders_demo_fingerprints"
    assert "dotflow" in asset_def.required_resource_keys
    assert isinstance(defs.resources["dotflow"], DotflowResource)
    spec = asset_def.specs_by_key[AssetKey("orders_demo")]
    assert spec.group_name == "dotflow_demo"
    assert spec.metadata["dotflow/workflow_id"] == "orders-demo"
    assert spec.metadata["dotflow/steps"] == "extract, transform, load"
    assert "dotflow" in spec.kinds


def test_the_asset_declares_a_concurrency_pool_per_workflow_id():
    asset_def = defs.get_assets_def("orders_demo")
    assert asset_def.op.pool == "dotflow/orders-demo"
    # The submit op starts an asset run that claims the pool; holding it too would deadlock that run.
    assert defs.get_job_def("orders_demo_submit").graph.node_defs[0].pool is None


def test_asset_name_defaults_to_the_workflow_id_with_dashes_and_dots_as_underscores():
    workflow = DotflowWorkflow("sales.eu-west", steps=[extract])
    asset_def = dotflow_asset(workflow)
    assert asset_def.key == AssetKey("sales_eu_west")
    assert asset_def.partitions_def.name == "sales_eu_west_fingerprints"
    assert dotflow_submit_job(workflow).name == "sales_eu_west_submit"


def test_custom_key_group_tags_io_manager_and_retry_policy_are_passed_through():
    retry = RetryPolicy(max_retries=2)
    asset_def = dotflow_asset(
        make_workflow(),
        key=["warehouse", "orders"],
        group_name="ingest",
        description="orders from the queue",
        tags={"team": "data"},
        io_manager_key="warehouse_io",
        retry_policy=retry,
    )
    spec = asset_def.specs_by_key[AssetKey(["warehouse", "orders"])]
    assert asset_def.partitions_def.name == "orders_fingerprints"
    assert (spec.group_name, spec.description, spec.tags["team"]) == ("ingest", "orders from the queue", "data")
    assert asset_def.op.retry_policy == retry
    assert "warehouse_io" in asset_def.required_resource_keys
    assert dotflow_submit_job(make_workflow(), key=["warehouse", "orders"]).name == "orders_submit"


def test_submit_job_is_one_op_named_like_the_job_with_the_documented_config_schema():
    job = defs.get_job_def("orders_demo_submit")
    assert [node.name for node in job.nodes] == ["orders_demo_submit"]
    assert job.tags["dotflow/workflow_id"] == "orders-demo"
    fields = job.nodes[0].definition.config_schema.config_type.fields
    assert set(fields) == {"payload", "on_input_change"}
    assert fields["payload"].is_required and fields["payload"].config_type.kind.name == "PERMISSIVE_SHAPE"
    assert not fields["on_input_change"].is_required
    enum_type = fields["on_input_change"].config_type.inner_type
    assert [value.config_value for value in enum_type.enum_values] == ["reset", "reuse", "raise", "incremental"]


def test_submit_job_config_validates_payloads_and_refuses_unknown_policies():
    from dagster import validate_run_config

    job = defs.get_job_def("orders_demo_submit")
    good = {"ops": {"orders_demo_submit": {"config": {"payload": {"any": {"nested": [1, 2]}}}}}}
    assert validate_run_config(job, good)
    bad = {"ops": {"orders_demo_submit": {"config": {"payload": {}, "on_input_change": "overwrite"}}}}
    try:
        validate_run_config(job, bad)
    except Exception as error:  # DagsterInvalidConfigError
        assert "overwrite" in str(error)
    else:
        raise AssertionError("an unknown policy passed config validation")


def test_metadata_keys_are_namespaced():
    assert all(key.startswith("dotflow/") for key in METADATA_KEYS)
    assert {"dotflow/workflow_id", "dotflow/fingerprint", "dotflow/decision", "dotflow/payload", "dotflow/diff"} <= set(
        METADATA_KEYS
    )


def test_resource_resolves_relative_directories_against_dagster_home(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    assert DotflowResource(base_dir="store").get_store().root == tmp_path / "store"
    assert DotflowResource(base_dir=str(tmp_path / "abs")).get_store().root == tmp_path / "abs"
    monkeypatch.delenv("DAGSTER_HOME")
    monkeypatch.chdir(tmp_path)
    assert DotflowResource().get_store().root == tmp_path / "dotflow"
