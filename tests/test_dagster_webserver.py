"""A real dagster-webserver on loopback, queried over GraphQL as the UI does."""

from collections.abc import Iterator

import pytest

from tests.story import graphql, webserver

QUERY = """
query DotflowAsset {
  assetNodes(assetKeys: [{path: ["orders_demo"]}]) {
    partitionKeys
    partitionDefinition { name }
  }
  assetOrError(assetKey: {path: ["orders_demo"]}) {
    ... on Asset {
      assetMaterializations(limit: 1) {
        partition
        metadataEntries {
          label
          ... on TextMetadataEntry { text }
          ... on JsonMetadataEntry { jsonString }
          ... on MarkdownMetadataEntry { mdStr }
        }
      }
    }
  }
}
"""


@pytest.fixture(scope="module")
def url(story) -> Iterator[str]:
    home, _ = story
    with webserver(home) as served:
        yield served


def test_graphql_shows_fingerprint_partitions_and_dotflow_metadata(url):
    data = graphql(url, QUERY)
    node = data["assetNodes"][0]
    assert node["partitionDefinition"]["name"] == "orders_demo_fingerprints"
    partitions = node["partitionKeys"]
    assert len(partitions) == 3 and all(len(key) == 64 for key in partitions)

    latest = data["assetOrError"]["assetMaterializations"][0]
    entries = {entry["label"]: entry for entry in latest["metadataEntries"]}
    assert entries["dotflow/workflow_id"]["text"] == "orders-demo"
    assert entries["dotflow/fingerprint"]["text"] == latest["partition"] == partitions[1]
    assert entries["dotflow/decision"]["text"] == "reset"
    assert entries["dotflow/previous_fingerprint"]["text"] == partitions[0]
    assert '"extract"' in entries["dotflow/steps_executed"]["jsonString"]
    assert "| load | executed |" in entries["dotflow/steps"]["mdStr"]
    payload = entries["dotflow/payload"]["jsonString"]
    assert '"***"' in payload and "demo-token" not in payload
    assert "orders_2026_12.csv" in entries["dotflow/diff"]["mdStr"]


# What the asset's partitions page and its latest event read, and the run a failed partition links to.
PARTITIONS_QUERY = """
query DotflowPartitions($refused: String!) {
  assetNodes(assetKeys: [{path: ["orders_demo"]}]) {
    partitionKeys
    assetPartitionStatuses {
      __typename
      ... on DefaultPartitionStatuses {
        materializedPartitions failedPartitions materializingPartitions unmaterializedPartitions
      }
    }
    latestRunForPartition(partition: $refused) {
      runId
      status
      tags { key value }
      eventConnection(limit: 500) {
        events {
          __typename
          ... on ExecutionStepFailureEvent {
            error { message }
            failureMetadata { metadataEntries { label ... on TextMetadataEntry { text } ... on MarkdownMetadataEntry { mdStr } } }
          }
        }
      }
    }
  }
  assetOrError(assetKey: {path: ["orders_demo"]}) {
    ... on Asset {
      assetMaterializations(limit: 1) {
        partition
        metadataEntries {
          label
          ... on TextMetadataEntry { text }
          ... on MarkdownMetadataEntry { mdStr }
        }
      }
    }
  }
}
"""


def test_the_submit_jobs_refusal_marks_the_partition_failed_and_events_say_what_is_current(url):
    v1, v2, v3 = graphql(url, QUERY)["assetNodes"][0]["partitionKeys"]
    data = graphql(url, PARTITIONS_QUERY, refused=v3)
    node = data["assetNodes"][0]
    statuses = node["assetPartitionStatuses"]
    assert statuses["__typename"] == "DefaultPartitionStatuses"
    assert sorted(statuses["materializedPartitions"]) == sorted([v1, v2])
    assert statuses["failedPartitions"] == [v3]  # v3, refused under raise by the submit job
    assert statuses["materializingPartitions"] == []

    # The failed partition links to the submit job's asset run, whose failure carries the history.
    refused_run = node["latestRunForPartition"]
    assert refused_run["status"] == "FAILURE"
    tags = {tag["key"]: tag["value"] for tag in refused_run["tags"]}
    assert tags["dotflow/arrival"] == "submit" and tags["dotflow/fingerprint"] == v3
    [failure] = [e for e in refused_run["eventConnection"]["events"] if e["__typename"] == "ExecutionStepFailureEvent"]
    assert "on_input_change='raise'" in failure["error"]["message"]
    failure_entries = {entry["label"]: entry for entry in failure["failureMetadata"]["metadataEntries"]}
    assert failure_entries["dotflow/decision"]["text"] == "raise"
    assert failure_entries["dotflow/current_fingerprint"]["text"] == v2
    assert "root['region']: 'EU' -> 'US'" in failure_entries["dotflow/diff"]["mdStr"]
    refused_row = next(line for line in failure_entries["dotflow/history"]["mdStr"].splitlines() if "this partition" in line)
    assert f"`{v3[:12]}`" in refused_row and "| raise | refused |" in refused_row

    # The latest materialization (v2's reset) says which input is current and shows the history.
    latest = data["assetOrError"]["assetMaterializations"][0]
    entries = {entry["label"]: entry for entry in latest["metadataEntries"]}
    assert latest["partition"] == entries["dotflow/current_fingerprint"]["text"] == v2
    table = entries["dotflow/history"]["mdStr"].splitlines()
    assert table[0] == "| first seen (UTC) | fingerprint | decision | outcome | runs | what changed |"
    assert table[1].startswith("| --- |")
    rows = [line for line in table if line.startswith("| 20")]
    assert [row.split("|")[3].strip() for row in rows] == ["new", "reset"]  # as of v2's run, oldest first
    assert f"`{v1[:12]}` |" in rows[0] and "| 2 |" in rows[0]  # v1 and v1 again: one decision, two runs
    assert f"`{v2[:12]}` **current**, this partition" in rows[1]
    assert "orders_2026_11.csv' -> 'orders_2026_12.csv'" in rows[1]
    assert "demo-token" not in entries["dotflow/history"]["mdStr"]
