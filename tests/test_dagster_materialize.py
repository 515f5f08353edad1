"""materialize() on a persistent test instance: the asset's behaviour per decision."""


import pytest
from dagster import AssetKey, DagsterInstance, asset, materialize

from dotflow_dagster import DotflowResource, dotflow_asset
from tests.support.flow import make_workflow

A = {"v": 1, "token": "s3cr3t-A"}
B = {"v": 2, "token": "s3cr3t-A"}
KEY = AssetKey("orders_acme")


@pytest.fixture
def resource(tmp_path) -> DotflowResource:
    return DotflowResource(base_dir=str(tmp_path / "store"))


def submit(workflow, payload, *, resource: DotflowResource, instance: DagsterInstance) -> str:
    """What the submit job and the sensor do before a partition can be materialized."""
    fingerprint = workflow.put_payload(payload, store=resource.get_store())
    instance.add_dynamic_partitions("orders_acme_fingerprints", [fingerprint])
    return fingerprint


def run(asset_def, fingerprint, *, resource, instance, tags=None):
    return materialize(
        [asset_def], partition_key=fingerprint, instance=instance, resources={"dotflow": resource},
        tags=tags, raise_on_error=False,
    )


def latest_metadata(instance: DagsterInstance, fingerprint: str) -> dict:
    records = instance.fetch_materializations(KEY, limit=50).records
    for record in records:
        if record.asset_materialization.partition == fingerprint:
            return {key: value.value for key, value in record.asset_materialization.metadata.items()}
    raise AssertionError(f"no materialization for partition {fingerprint}")


def failure_description(result) -> str:
    return result.failure_data_for_node("orders_acme").user_failure_data.description


def test_new_fingerprint_materializes_with_dotflow_metadata_and_hands_the_result_on(instance, resource, side_effects):
    workflow = make_workflow(redact_paths=["root['token']"])
    asset_def = dotflow_asset(workflow)
    fingerprint = submit(workflow, A, resource=resource, instance=instance)
    result = run(asset_def, fingerprint, resource=resource, instance=instance)
    assert result.success
    metadata = latest_metadata(instance, fingerprint)
    assert metadata["dotflow/workflow_id"] == "orders-acme"
    assert metadata["dotflow/fingerprint"] == fingerprint
    assert metadata["dotflow/previous_fingerprint"] == ""
    assert metadata["dotflow/decision"] == "new"
    assert metadata["dotflow/steps_executed"] == ["extract", "transform", "load"]
    assert metadata["dotflow/steps_resumed"] == []
    assert "| transform | executed |" in metadata["dotflow/steps"]
    assert metadata["dotflow/payload"] == {"v": 1, "token": "***"}
    assert "dotflow/diff" not in metadata
    assert sum(side_effects().values()) == 3

    # The output goes to the IO manager: a downstream asset receives the last step's result.
    @asset(partitions_def=asset_def.partitions_def, deps=[])
    def downstream(orders_acme):
        return orders_acme

    chained = materialize(
        [asset_def, downstream], partition_key=fingerprint, instance=instance, resources={"dotflow": resource}
    )
    assert chained.output_for_node("downstream") is None  # load returns None, and None is handed on
    assert chained.output_for_node("orders_acme") is None


def test_unchanged_fingerprint_executes_nothing(instance, resource, side_effects):
    workflow = make_workflow()
    asset_def = dotflow_asset(workflow)
    fingerprint = submit(workflow, A, resource=resource, instance=instance)
    assert run(asset_def, fingerprint, resource=resource, instance=instance).success
    assert run(asset_def, fingerprint, resource=resource, instance=instance).success
    metadata = latest_metadata(instance, fingerprint)
    assert metadata["dotflow/decision"] == "unchanged"
    assert metadata["dotflow/steps_executed"] == []
    assert metadata["dotflow/steps_resumed"] == ["extract", "transform", "load"]
    assert sum(side_effects().values()) == 3


def test_reset_materializes_a_new_partition_with_the_diff(instance, resource, side_effects):
    workflow = make_workflow("reset")
    asset_def = dotflow_asset(workflow)
    first = submit(workflow, A, resource=resource, instance=instance)
    run(asset_def, first, resource=resource, instance=instance)
    second = submit(workflow, B, resource=resource, instance=instance)
    assert run(asset_def, second, resource=resource, instance=instance).success
    metadata = latest_metadata(instance, second)
    assert metadata["dotflow/decision"] == "reset"
    assert metadata["dotflow/previous_fingerprint"] == first
    assert metadata["dotflow/steps_executed"] == ["extract", "transform", "load"]
    assert "root['v']: 1 -> 2" in metadata["dotflow/diff"]
    assert side_effects()["extract v=2"] == 1
    assert set(instance.get_dynamic_partitions("orders_acme_fingerprints")) == {first, second}


def test_reuse_resumes_the_new_partition_from_the_previous_one(instance, resource, side_effects):
    workflow = make_workflow("reuse")
    asset_def = dotflow_asset(workflow)
    run(asset_def, submit(workflow, A, resource=resource, instance=instance), resource=resource, instance=instance)
    second = submit(workflow, B, resource=resource, instance=instance)
    assert run(asset_def, second, resource=resource, instance=instance).success
    metadata = latest_metadata(instance, second)
    assert metadata["dotflow/decision"] == "reuse"
    assert metadata["dotflow/steps_executed"] == []
    assert metadata["dotflow/steps_resumed"] == ["extract", "transform", "load"]
    assert sum(side_effects().values()) == 3


def test_raise_fails_the_run_with_the_diff_and_executes_no_step(instance, resource, side_effects):
    workflow = make_workflow("raise", redact_paths=["root['token']"])
    asset_def = dotflow_asset(workflow)
    first = submit(workflow, A, resource=resource, instance=instance)
    run(asset_def, first, resource=resource, instance=instance)
    second = submit(workflow, {**B, "token": "s3cr3t-B"}, resource=resource, instance=instance)
    result = run(asset_def, second, resource=resource, instance=instance)
    assert not result.success
    description = failure_description(result)
    assert "orders-acme" in description and first in description and second in description
    assert "root['v']: 1 -> 2" in description
    assert "s3cr3t" not in description
    assert sum(side_effects().values()) == 3
    assert all(
        record.asset_materialization.partition != second
        for record in instance.fetch_materializations(KEY, limit=50).records
    )


def test_tag_override_lets_an_operator_reset_a_partition_refused_under_raise(instance, resource, side_effects):
    workflow = make_workflow("raise")
    asset_def = dotflow_asset(workflow)
    run(asset_def, submit(workflow, A, resource=resource, instance=instance), resource=resource, instance=instance)
    second = submit(workflow, B, resource=resource, instance=instance)
    assert not run(asset_def, second, resource=resource, instance=instance).success
    result = run(asset_def, second, resource=resource, instance=instance, tags={"dotflow/on_input_change": "reset"})
    assert result.success
    assert latest_metadata(instance, second)["dotflow/decision"] == "reset"
    assert side_effects()["load v=2"] == 1

    bad = run(asset_def, second, resource=resource, instance=instance, tags={"dotflow/on_input_change": "nope"})
    assert not bad.success and "dotflow/on_input_change='nope' is not a policy" in failure_description(bad)


def test_a_failed_step_fails_the_run_and_re_materializing_resumes_at_it(instance, resource, side_effects, monkeypatch):
    workflow = make_workflow()
    asset_def = dotflow_asset(workflow)
    fingerprint = submit(workflow, A, resource=resource, instance=instance)
    monkeypatch.setenv("DOTFLOW_TEST_FAIL", "transform")
    failed = run(asset_def, fingerprint, resource=resource, instance=instance)
    assert not failed.success
    description = failure_description(failed)
    assert "step 'transform'" in description and "transform failed on purpose" in description
    assert f"re-materializing partition {fingerprint} resumes at step 'transform'" in description
    assert "If the input data itself is wrong, the same input fails the same way" in description
    monkeypatch.delenv("DOTFLOW_TEST_FAIL")
    assert run(asset_def, fingerprint, resource=resource, instance=instance).success
    metadata = latest_metadata(instance, fingerprint)
    assert metadata["dotflow/steps_resumed"] == ["extract"]
    assert metadata["dotflow/steps_executed"] == ["transform", "load"]
    assert side_effects()["extract v=1"] == 1


def test_a_partition_whose_payload_is_missing_fails_clearly(instance, resource):
    workflow = make_workflow()
    asset_def = dotflow_asset(workflow)
    instance.add_dynamic_partitions("orders_acme_fingerprints", ["f" * 64])
    result = run(asset_def, "f" * 64, resource=resource, instance=instance)
    assert not result.success
    assert f"no payload stored for workflow 'orders-acme' with fingerprint {'f' * 64}" in failure_description(result)


def test_a_partition_whose_stored_payload_no_longer_hashes_to_its_key_fails_clearly(instance, resource, side_effects):
    import pickle

    workflow = make_workflow()
    asset_def = dotflow_asset(workflow)
    wrong_key = "e" * 64
    store = resource.get_store()
    store.write_bytes(workflow.ledger(store=store).payload_key(wrong_key), pickle.dumps({"v": 9}))
    instance.add_dynamic_partitions("orders_acme_fingerprints", [wrong_key])
    result = run(asset_def, wrong_key, resource=resource, instance=instance)
    assert not result.success
    description = failure_description(result)
    assert f"the payload stored for fingerprint {wrong_key} now fingerprints to {workflow.fingerprint({'v': 9})}" in description
    assert sum(side_effects().values()) == 0
