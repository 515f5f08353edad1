"""A real backfill over every fingerprint partition, launched through the webserver, run by the daemon.

After the CLI story (v1, v1 again, v2 reset, v3 refused under ``raise``) the asset has three
partitions: v1 superseded, v2 current, v3 refused. An operator selects all of them in the UI
and launches a backfill. Nothing about the workflow may change: the ledger still stands on v2 and
no old input's side effects happen again. v1's run re-materializes v1's own kept result without
executing a step (decision ``skipped``, naming the backfill), v2's run finds all its steps done,
and v3's run fails saying v3 was refused and how to accept it on purpose, so v3 stays failed and
the backfill counts exactly that one partition as failed.
"""

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from dotflow_dagster import LocalStore
from example_project.orders import orders_workflow
from tests.story import dagster_process, graphql, run_story, webserver

# The story, the webserver, the daemon and the backfill's runs all happen in the module fixture
# (about 90 s on two cores); leave room above the suite's 300 s per test for a loaded machine.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

KEY = AssetKey("orders_demo")
PARTITIONS = "orders_demo_fingerprints"

LAUNCH_BACKFILL = """
mutation Backfill($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on PartitionKeysNotFoundError { message }
    ... on UnauthorizedError { message }
  }
}
"""
BACKFILL = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      status
      numPartitions
      partitionNames
      error { message }
      assetBackfillData {
        assetBackfillStatuses {
          ... on AssetPartitionsStatusCounts {
            numPartitionsTargeted numPartitionsInProgress numPartitionsMaterialized numPartitionsFailed
          }
        }
      }
    }
    ... on PythonError { message }
  }
}
"""
# What the asset's partitions page colours each partition by.
PARTITION_STATUSES = """
query Statuses {
  assetNodes(assetKeys: [{path: ["orders_demo"]}]) {
    assetPartitionStatuses {
      ... on DefaultPartitionStatuses {
        materializedPartitions failedPartitions materializingPartitions unmaterializedPartitions
      }
    }
  }
}
"""
FINISHED = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}




@dataclass
class Backfilled:
    home: Path
    v1: str  # superseded
    v2: str  # current
    v3: str  # refused under raise
    before_history: tuple
    before_materializations: list
    before_observations: int
    before_batches: dict[str, int]
    before_warehouse_mtime: int
    backfill_id: str
    backfill: dict  # the final partitionBackfillOrError answer
    statuses: dict  # assetPartitionStatuses after the backfill


def warehouse_batches(home: Path) -> dict[str, int]:
    with sqlite3.connect(home / "warehouse.sqlite") as connection:
        return dict(connection.execute("SELECT batch, COUNT(*) FROM customer_totals GROUP BY batch"))


def ledger(home: Path):
    return orders_workflow.state(store=LocalStore(home / "dotflow_store"))


def materializations(instance: DagsterInstance) -> list:
    return [r.asset_materialization for r in instance.fetch_materializations(KEY, limit=100, ascending=True).records]


def observation_records(instance: DagsterInstance) -> list:
    return list(instance.fetch_observations(KEY, limit=100, ascending=True).records)


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory) -> Backfilled:
    home = tmp_path_factory.mktemp("backfill") / "dagster_home"
    # dagster.yaml as the story writes it: the default run coordinator of Dagster 1.13 is the
    # QueuedRunCoordinator, so the daemon dequeues the backfill's runs; no pool limit, so the
    # three runs start together and wait for the workflow's lock one after another.
    runs = run_story(home)
    assert [run.returncode == 0 for run in runs] == [True, True, True, False], runs[-1].output[-2000:]
    with DagsterInstance.from_config(str(home)) as instance:
        v1, v2, v3 = instance.get_dynamic_partitions(PARTITIONS)
        before_materializations = materializations(instance)
        before_observations = len(observation_records(instance))
    before = ledger(home)
    before_batches = warehouse_batches(home)
    before_warehouse_mtime = (home / "warehouse.sqlite").stat().st_mtime_ns
    assert before.current_fingerprint == v2

    # Nothing asks for the partitions' statuses before the backfill (Dagster caches them on first
    # read), as on an instance where nobody opened the asset's page since v3 was refused.
    with webserver(home) as url, dagster_process(home, "dagster-daemon", "run", "-w", "workspace.yaml") as daemon:
        launched = graphql(url, LAUNCH_BACKFILL, params={
            "assetSelection": [{"path": ["orders_demo"]}],
            "allPartitions": True,  # every partition of the asset, as selecting all of them in the UI does
            "fromFailure": False,
        })["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]
        deadline = time.monotonic() + 240
        while True:
            answer = graphql(url, BACKFILL, id=backfill_id)["partitionBackfillOrError"]
            assert answer["__typename"] == "PartitionBackfill", answer
            if answer["status"] in FINISHED:
                break
            assert daemon.poll() is None, daemon.stderr.read()
            assert time.monotonic() < deadline, f"backfill {backfill_id} still {answer['status']} after 240 s: {answer}"
            time.sleep(2)
        statuses = graphql(url, PARTITION_STATUSES)["assetNodes"][0]["assetPartitionStatuses"]
    return Backfilled(
        home=home, v1=v1, v2=v2, v3=v3, before_history=before.history,
        before_materializations=before_materializations, before_observations=before_observations,
        before_batches=before_batches, before_warehouse_mtime=before_warehouse_mtime,
        backfill_id=backfill_id, backfill=answer, statuses=statuses,
    )


def backfill_runs(backfilled: Backfilled) -> dict:
    """The backfill's runs by partition."""
    with DagsterInstance.from_config(str(backfilled.home)) as instance:
        runs = instance.get_runs(RunsFilter(tags={"dagster/backfill": backfilled.backfill_id}))
    return {run.tags["dagster/partition"]: run for run in runs}


def test_every_partition_ran_once_and_only_the_refused_one_failed(backfilled):
    assert backfilled.backfill["numPartitions"] == 3
    assert set(backfilled.backfill["partitionNames"]) == {backfilled.v1, backfilled.v2, backfilled.v3}
    runs = backfill_runs(backfilled)
    assert {partition: run.status for partition, run in runs.items()} == {
        backfilled.v1: DagsterRunStatus.SUCCESS,
        backfilled.v2: DagsterRunStatus.SUCCESS,
        backfilled.v3: DagsterRunStatus.FAILURE,
    }
    [counts] = backfilled.backfill["assetBackfillData"]["assetBackfillStatuses"]
    assert (counts["numPartitionsTargeted"], counts["numPartitionsMaterialized"], counts["numPartitionsFailed"]) == (
        3, 2, 1
    )
    assert counts["numPartitionsInProgress"] == 0


def test_the_backfill_leaves_the_current_input_and_the_old_decisions_alone(backfilled):
    after = ledger(backfilled.home)
    assert after.current_fingerprint == backfilled.v2
    assert len(after.history) == len(backfilled.before_history)  # no decision was added
    for before, now in zip(backfilled.before_history, after.history, strict=True):
        if before.fingerprint == backfilled.v2:
            assert (now.decision, now.runs, now.outcome) == (before.decision, before.runs + 1, "succeeded")
        else:
            assert now == before  # v1's and v3's entries are untouched


def test_no_old_inputs_side_effects_happened_again(backfilled):
    with DagsterInstance.from_config(str(backfilled.home)) as instance:
        after = materializations(instance)
    new = after[len(backfilled.before_materializations):]
    assert after[: len(backfilled.before_materializations)] == backfilled.before_materializations
    assert sorted((m.partition, m.metadata["dotflow/decision"].value) for m in new) == sorted(
        [(backfilled.v1, "skipped"), (backfilled.v2, "unchanged")]
    )
    for materialization in new:
        assert materialization.metadata["dotflow/steps_executed"].value == []
        assert materialization.metadata["dotflow/steps_resumed"].value == ["extract", "transform", "load"]
    # Every step of every input ran exactly once over the whole story and the backfill.
    executed: dict[str, list[str]] = {}
    for materialization in after:
        executed.setdefault(materialization.partition, []).extend(materialization.metadata["dotflow/steps_executed"].value)
    assert executed == {
        backfilled.v1: ["extract", "transform", "load"],
        backfilled.v2: ["extract", "transform", "load"],
    }
    # `load` replaces its batch, so row counts cannot show a second run; the file's mtime can: no
    # load ran during the backfill. The warehouse holds v1's and v2's batches only (v3 never loaded).
    assert (backfilled.home / "warehouse.sqlite").stat().st_mtime_ns == backfilled.before_warehouse_mtime
    assert warehouse_batches(backfilled.home) == backfilled.before_batches
    assert set(backfilled.before_batches) == {"orders_2026_11.csv:EU:1", "orders_2026_12.csv:EU:1"}


def test_old_partitions_say_why_nothing_ran_naming_the_backfill(backfilled):
    runs = backfill_runs(backfilled)
    with DagsterInstance.from_config(str(backfilled.home)) as instance:
        v1_replay = next(
            m for m in materializations(instance)[len(backfilled.before_materializations):] if m.partition == backfilled.v1
        )
        v3_failure = next(
            entry.dagster_event.step_failure_data.user_failure_data
            for entry in instance.all_logs(runs[backfilled.v3].run_id)
            if entry.dagster_event and entry.dagster_event.is_step_failure
        )
        logs = {partition: instance.all_logs(runs[partition].run_id) for partition in (backfilled.v1, backfilled.v3)}
    reasons = {backfilled.v1: v1_replay.metadata["dotflow/skipped"].value, backfilled.v3: v3_failure.description}
    for partition, state in ((backfilled.v1, "superseded"), (backfilled.v3, "refused")):
        reason = reasons[partition]
        assert f"backfill run (backfill {backfilled.backfill_id})" in reason
        assert state in reason and "dotflow/on_input_change=reset" in reason
        messages = [entry.user_message for entry in logs[partition]]
        assert any("is not an arrival" in message for message in messages)
        assert not any("; executed " in message for message in messages), messages
    for metadata in (v1_replay.metadata, v3_failure.metadata):
        assert metadata["dotflow/decision"].value == "skipped"
        assert metadata["dotflow/current_fingerprint"].value == backfilled.v2
        this_row = next(line for line in metadata["dotflow/history"].value.splitlines() if "this partition" in line)
        assert "**current**" not in this_row


def test_the_partitions_keep_their_truth_v1_v2_materialized_v3_failed(backfilled):
    statuses = backfilled.statuses
    assert sorted(statuses["materializedPartitions"]) == sorted([backfilled.v1, backfilled.v2])
    assert statuses["failedPartitions"] == [backfilled.v3]
    assert statuses["materializingPartitions"] == []
