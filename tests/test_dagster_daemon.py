"""The operator's path: launch a partition from the UI's API, queued and run by the real daemon.

After v3 is refused under ``raise``, an operator materializes its partition with the run tag
``dotflow/on_input_change=reset``, as the Launchpad would; the QueuedRunCoordinator hands the
run to ``dagster-daemon``, which launches it.
"""

import time

from dagster import AssetKey, DagsterInstance

from tests.story import dagster_process, graphql, run_story, webserver

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message }
  }
}
"""
STATUS = "query Status($id: ID!) { runOrError(runId: $id) { ... on Run { status tags { key value } } } }"


def launch_partition(url: str, partition: str, tags: dict[str, str]) -> dict:
    params = {
        "selector": {
            "repositoryLocationName": "example_project",
            "repositoryName": "__repository__",
            "jobName": "__ASSET_JOB",
            "assetSelection": [{"path": ["orders_demo"]}],
        },
        "executionMetadata": {
            "tags": [{"key": "dagster/partition", "value": partition}]
            + [{"key": key, "value": value} for key, value in tags.items()]
        },
    }
    return graphql(url, LAUNCH, params=params)["launchRun"]


def wait_for(url: str, run_id: str, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = graphql(url, STATUS, id=run_id)["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(1)
    raise AssertionError(f"run {run_id} still {status} after {timeout}s")


def test_operator_resets_a_refused_partition_through_the_queue_and_the_daemon(tmp_path):
    home = tmp_path / "dagster_home"
    runs = run_story(home)
    assert [run.returncode == 0 for run in runs] == [True, True, True, False]
    with DagsterInstance.from_config(str(home)) as instance:
        refused = instance.get_dynamic_partitions("orders_demo_fingerprints")[-1]

    with webserver(home) as url, dagster_process(home, "dagster-daemon", "run", "-w", "workspace.yaml"):
        launched = launch_partition(url, refused, {"dotflow/on_input_change": "reset"})
        assert launched["__typename"] == "LaunchRunSuccess", launched
        assert launched["run"]["status"] == "QUEUED"  # the daemon, not the webserver, runs it
        assert wait_for(url, launched["run"]["runId"]) == "SUCCESS"

    with DagsterInstance.from_config(str(home)) as instance:
        latest = instance.fetch_materializations(AssetKey("orders_demo"), limit=1).records[0].asset_materialization
    assert latest.partition == refused
    assert latest.metadata["dotflow/decision"].value == "reset"
    assert latest.metadata["dotflow/steps_executed"].value == ["extract", "transform", "load"]
    assert "root['region']: 'EU' -> 'US'" in latest.metadata["dotflow/diff"].value
