"""The operator's view with materialize(): backfills and retries never roll the input back,
concurrent runs wait, the submit job's failures show on the partition, the UI says what is current."""

import math
import threading
import time

import pytest
from dagster import (
    AssetKey,
    AssetPartitionStatus,
    Definitions,
    materialize,
)

from dotflow_dagster import DotflowResource, dotflow_asset, dotflow_submit_job
from tests.support.flow import make_workflow

KEY = AssetKey("orders_acme")
PARTITIONS = "orders_acme_fingerprints"
A, B, C = {"v": 1, "token": "s3cr3t-1"}, {"v": 2, "token": "s3cr3t-2"}, {"v": 3, "token": "s3cr3t-3"}


@pytest.fixture
def resource(tmp_path) -> DotflowResource:
    return DotflowResource(base_dir=str(tmp_path / "store"), lock_timeout_seconds=30)


def submit_job_run(workflow, payload, *, instance, resource, on_input_change=None):
    """What `dagster job execute -j orders_acme_submit` does, in process."""
    config = {"payload": payload}
    if on_input_change:
        config["on_input_change"] = on_input_change
    job = Definitions(jobs=[dotflow_submit_job(workflow)], resources={"dotflow": resource}).get_job_def(
        "orders_acme_submit"
    )
    return job.execute_in_process(
        run_config={"ops": {"orders_acme_submit": {"config": config}}}, instance=instance, raise_on_error=False
    )


def run_partition(asset_def, fingerprint, *, instance, resource, tags=None):
    return materialize(
        [asset_def], partition_key=fingerprint, instance=instance, resources={"dotflow": resource},
        tags=tags, raise_on_error=False,
    )


def materialized_partitions(instance) -> list[str]:
    return [r.asset_materialization.partition for r in instance.fetch_materializations(KEY, limit=100, ascending=True).records]


def observations(instance) -> list:
    return [r.asset_observation for r in instance.fetch_observations(KEY, limit=100, ascending=True).records]


@pytest.fixture
def history(instance, resource, side_effects):
    """v1 and v2 submitted (v2 current), then v3 refused under raise: three partitions."""
    workflow = make_workflow("reset", redact_paths=["root['token']"])
    assert submit_job_run(workflow, A, instance=instance, resource=resource).success
    assert submit_job_run(workflow, B, instance=instance, resource=resource).success
    assert not submit_job_run(workflow, C, instance=instance, resource=resource, on_input_change="raise").success
    v1, v2, v3 = (workflow.fingerprint(p) for p in (A, B, C))
    assert instance.get_dynamic_partitions(PARTITIONS) == [v1, v2, v3]
    return workflow, (v1, v2, v3)


def test_a_backfill_of_a_superseded_partition_re_materializes_its_own_result_and_executes_nothing(
    history, instance, resource, side_effects
):
    workflow, (v1, v2, _) = history
    before_effects = side_effects()

    result = run_partition(
        dotflow_asset(workflow), v1, instance=instance, resource=resource, tags={"dagster/backfill": "bf1"}
    )

    assert result.success  # nothing is wrong with an old input: the backfill completes
    assert side_effects() == before_effects
    assert workflow.state(store=resource.get_store()).current_fingerprint == v2
    replayed = instance.fetch_materializations(KEY, limit=1).records[0].asset_materialization
    assert replayed.partition == v1
    metadata = {key: value.value for key, value in replayed.metadata.items()}
    assert metadata["dotflow/decision"] == "skipped" and metadata["dotflow/steps_executed"] == []
    assert metadata["dotflow/steps_resumed"] == ["extract", "transform", "load"]
    assert metadata["dotflow/current_fingerprint"] == v2
    reason = metadata["dotflow/skipped"]
    assert "backfill run (backfill bf1)" in reason and "superseded" in reason
    assert "dotflow/on_input_change=reset" in reason
    assert any("is not an arrival" in entry.user_message for entry in instance.all_logs(result.run_id))


def test_a_backfill_of_a_refused_partition_fails_saying_why_and_it_stays_failed(
    history, instance, resource, side_effects
):
    workflow, (v1, v2, v3) = history
    asset_def = dotflow_asset(workflow)
    before_effects = side_effects()

    result = run_partition(asset_def, v3, instance=instance, resource=resource, tags={"dagster/backfill": "bf1"})

    assert not result.success
    description = result.failure_data_for_node("orders_acme").user_failure_data.description
    assert "was refused" in description and "dotflow/on_input_change=reset" in description
    assert side_effects() == before_effects
    assert workflow.state(store=resource.get_store()).current_fingerprint == v2
    statuses = instance.get_status_by_partition(KEY, [v1, v2, v3], asset_def.partitions_def)
    assert statuses[v3] == AssetPartitionStatus.FAILED


def test_a_superseded_input_whose_checkpoints_were_pruned_is_observed_not_failed(instance, resource, side_effects):
    workflow = make_workflow("reset", retention=0)
    assert submit_job_run(workflow, A, instance=instance, resource=resource).success
    assert submit_job_run(workflow, B, instance=instance, resource=resource).success
    v1 = workflow.fingerprint(A)
    asset_def = dotflow_asset(workflow)

    result = run_partition(asset_def, v1, instance=instance, resource=resource, tags={"dagster/backfill": "bf3"})

    assert result.success and side_effects()["extract v=1"] == 1
    observed = observations(instance)[-1]
    assert observed.partition == v1 and observed.metadata["dotflow/decision"].value == "skipped"
    assert observed.metadata["dotflow/current_fingerprint"].value == workflow.fingerprint(B)
    assert instance.get_status_by_partition(KEY, [v1], asset_def.partitions_def)[v1] == AssetPartitionStatus.MATERIALIZED


def test_a_ui_re_materialization_of_an_old_partition_also_skips(history, instance, resource, side_effects):
    workflow, (v1, v2, _) = history
    before_effects = side_effects()
    result = run_partition(dotflow_asset(workflow), v1, instance=instance, resource=resource)
    replayed = instance.fetch_materializations(KEY, limit=1).records[0].asset_materialization
    assert result.success and "re-materialization" in replayed.metadata["dotflow/skipped"].value
    assert side_effects() == before_effects
    assert workflow.state(store=resource.get_store()).current_fingerprint == v2


def test_an_explicit_reset_tag_makes_a_superseded_partition_current(history, instance, resource, side_effects):
    workflow, (v1, _, _) = history
    result = run_partition(
        dotflow_asset(workflow), v1, instance=instance, resource=resource,
        tags={"dagster/backfill": "bf2", "dotflow/on_input_change": "reset"},
    )
    assert result.success
    assert workflow.state(store=resource.get_store()).current_fingerprint == v1
    assert side_effects()["load v=1"] == 2  # the old input's side effects happen again, on purpose
    assert materialized_partitions(instance)[-1] == v1


def test_a_retry_of_an_arrival_replays_nothing_once_the_input_moved_on(history, instance, resource, side_effects):
    workflow, (v1, v2, _) = history
    # The first submit's asset run, which made v1 current.
    first_run = next(
        run for run in instance.get_runs(ascending=True)
        if run.tags.get("dotflow/arrival") == "submit" and run.tags.get("dotflow/fingerprint") == v1
    )
    result = run_partition(
        dotflow_asset(workflow), v1, instance=instance, resource=resource,
        tags={**first_run.tags, "dagster/parent_run_id": first_run.run_id, "dagster/root_run_id": first_run.run_id},
    )
    replayed = instance.fetch_materializations(KEY, limit=1).records[0].asset_materialization
    assert result.success and replayed.metadata["dotflow/decision"].value == "skipped"
    assert f"retry of run {first_run.run_id}" in replayed.metadata["dotflow/skipped"].value
    assert workflow.state(store=resource.get_store()).current_fingerprint == v2


def test_the_submit_jobs_refusal_and_step_failures_mark_the_partition_failed(
    history, instance, resource, side_effects, monkeypatch
):
    workflow, (v1, v2, v3) = history
    asset_def = dotflow_asset(workflow)
    statuses = instance.get_status_by_partition(KEY, [v1, v2, v3], asset_def.partitions_def)
    assert statuses == {
        v1: AssetPartitionStatus.MATERIALIZED,
        v2: AssetPartitionStatus.MATERIALIZED,
        v3: AssetPartitionStatus.FAILED,
    }
    monkeypatch.setenv("DOTFLOW_TEST_FAIL", "transform")
    d = {"v": 4, "token": "s3cr3t-4"}
    failed = submit_job_run(workflow, d, instance=instance, resource=resource)
    assert not failed.success
    v4 = workflow.fingerprint(d)
    assert instance.get_status_by_partition(KEY, [v4], asset_def.partitions_def)[v4] == AssetPartitionStatus.FAILED
    description = failed.failure_data_for_node("orders_acme_submit").user_failure_data.description
    assert "step 'transform'" in description and "transient" in description and "corrected payload" in description
    assert "s3cr3t" not in description


def test_materializations_and_failures_say_which_input_is_current_with_the_history(history, instance, resource):
    workflow, (v1, v2, v3) = history
    latest = instance.fetch_materializations(KEY, limit=1).records[0].asset_materialization
    assert latest.metadata["dotflow/current_fingerprint"].value == v2
    table = latest.metadata["dotflow/history"].value
    rows = [line for line in table.splitlines() if line.startswith("| 20")]
    assert [row.split("|")[3].strip() for row in rows] == ["new", "reset"]  # time order, as of v2's run
    assert f"`{v2[:12]}` **current**" in table and "root['v']: 1 -> 2" in table
    assert "s3cr3t" not in table

    refused_run = [run for run in instance.get_runs() if run.tags.get("dotflow/fingerprint") == v3][0]
    failure_events = [
        event for event in instance.all_logs(refused_run.run_id) if event.dagster_event and event.dagster_event.is_step_failure
    ]
    metadata = failure_events[0].dagster_event.step_failure_data.user_failure_data.metadata
    assert metadata["dotflow/current_fingerprint"].value == v2
    refused_rows = [line for line in metadata["dotflow/history"].value.splitlines() if line.startswith("| 20")]
    assert [row.split("|")[3].strip() for row in refused_rows] == ["new", "reset", "raise"]
    assert "this partition" in refused_rows[-1] and "**current**" in refused_rows[1]


def test_a_second_run_waits_for_the_workflows_lock_instead_of_failing(instance, resource, side_effects):
    workflow = make_workflow()
    store = resource.get_store()
    fingerprint = workflow.put_payload(A, store=store)
    instance.add_dynamic_partitions(PARTITIONS, [fingerprint])
    released = threading.Event()

    def hold_then_release() -> None:
        with store.run_lock("orders-acme"):
            released.wait(30)

    holder = threading.Thread(target=hold_then_release)
    holder.start()
    time.sleep(0.2)
    threading.Timer(1.0, released.set).start()
    started = time.monotonic()
    result = run_partition(dotflow_asset(workflow), fingerprint, instance=instance, resource=resource)
    holder.join()
    assert result.success and time.monotonic() - started >= 0.8
    assert any(
        "waiting for the run that holds its lock" in entry.user_message for entry in instance.all_logs(result.run_id)
    )


def test_a_run_that_cannot_get_the_lock_in_time_fails_retryably(instance, tmp_path):
    resource = DotflowResource(base_dir=str(tmp_path / "store"), lock_timeout_seconds=0.5)
    workflow = make_workflow()
    store = resource.get_store()
    fingerprint = workflow.put_payload(A, store=store)
    instance.add_dynamic_partitions(PARTITIONS, [fingerprint])
    with store.run_lock("orders-acme"):
        result = run_partition(dotflow_asset(workflow), fingerprint, instance=instance, resource=resource)
    assert not result.success
    assert "already running" in result.failure_data_for_node("orders_acme").user_failure_data.description


def test_nan_and_infinities_show_as_themselves_in_the_payload(instance, resource):
    workflow = make_workflow()
    payload = {"v": 1, "ratio": math.nan, "cap": math.inf, "floor": -math.inf}
    fingerprint = workflow.put_payload(payload, store=resource.get_store())
    instance.add_dynamic_partitions(PARTITIONS, [fingerprint])
    assert run_partition(dotflow_asset(workflow), fingerprint, instance=instance, resource=resource).success
    shown = instance.fetch_materializations(KEY, limit=1).records[0].asset_materialization.metadata["dotflow/payload"].value
    assert shown["ratio"] == "NaN" and shown["cap"] == "Infinity" and shown["floor"] == "-Infinity"


def test_payloads_the_fingerprint_accepts_always_materialize(instance, resource):
    workflow = make_workflow()
    payload = {"v": 1, "huge": 2**200, "surrogate": "\ud800", (1, 2): "tuple key", frozenset({3}): "set key"}
    fingerprint = workflow.put_payload(payload, store=resource.get_store())
    instance.add_dynamic_partitions(PARTITIONS, [fingerprint])
    assert run_partition(dotflow_asset(workflow), fingerprint, instance=instance, resource=resource).success
    shown = instance.fetch_materializations(KEY, limit=1).records[0].asset_materialization.metadata["dotflow/payload"].value
    assert shown["huge"] == str(2**200)


def test_the_definition_says_its_policy_is_the_default_and_how_to_read_partitions():
    asset_def = dotflow_asset(make_workflow("raise"))
    metadata = asset_def.metadata_by_key[KEY]
    assert metadata["dotflow/default_on_input_change"] == "raise"
    assert "dotflow/on_input_change" not in metadata
    assert "dotflow/current_fingerprint" in asset_def.descriptions_by_key[KEY]
