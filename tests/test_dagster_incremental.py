"""The incremental policy in Dagster: the "why" of every step in the metadata and in the run log."""

from dagster import AssetKey, materialize

from dotflow_dagster import DotflowResource, dotflow_asset
from tests.support.incremental_flow import make_workflow

A = {"source": "abc", "rate": 2, "table": "orders", "note": "first"}
KEY = AssetKey("incremental_acme")


def materialize_payload(asset_def, workflow, payload, *, resource, instance, tags=None):
    fingerprint = workflow.put_payload(payload, store=resource.get_store())
    instance.add_dynamic_partitions("incremental_acme_fingerprints", [fingerprint])
    result = materialize(
        [asset_def], partition_key=fingerprint, instance=instance, resources={"dotflow": resource}, tags=tags
    )
    return fingerprint, result


def steps_metadata(instance, fingerprint) -> str:
    for record in instance.fetch_materializations(KEY, limit=10).records:
        if record.asset_materialization.partition == fingerprint:
            return record.asset_materialization.metadata["dotflow/steps"].value
    raise AssertionError(f"no materialization of {fingerprint}")


def test_the_steps_table_says_why_each_step_ran_or_was_reused(tmp_path, instance, executions_log):
    resource = DotflowResource(base_dir=str(tmp_path / "store"))
    workflow = make_workflow("reset")  # the run tag chooses incremental below
    asset_def = dotflow_asset(workflow, key=KEY)
    materialize_payload(asset_def, workflow, A, resource=resource, instance=instance)
    executions_log.write_text("")

    fingerprint, result = materialize_payload(
        asset_def, workflow, {**A, "rate": 2.04, "table": "orders_v2"},
        resource=resource, instance=instance, tags={"dotflow/on_input_change": "incremental"},
    )

    assert result.success
    table = steps_metadata(instance, fingerprint)
    assert table.splitlines()[0] == "| step | status | why | duration (s) | attempts | error |"
    assert "| extract | resumed | reads unchanged |" in table
    assert "| enrich | executed | root['rate'] changed |" in table
    assert "| load | executed | root['table'] changed |" in table
    assert executions_log.read_text().splitlines() == ["enrich [3, 6] x 2.04", "load [6, 12] -> orders_v2"]
    messages = [record.user_message for record in instance.all_logs(result.run_id)]
    assert "step extract: resumed (reads unchanged)" in messages
    assert "step enrich: executed (root['rate'] changed)" in messages
    materialization = instance.fetch_materializations(KEY, limit=1).records[0].asset_materialization
    assert materialization.metadata["dotflow/decision"].value == "incremental"
