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
