"""A real dagster-webserver on loopback, queried over GraphQL as the UI does."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT
from tests.story import dagster_env

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def webserver(story):
    home, _ = story
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT, env=dagster_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stderr.read()
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "dagster-webserver did not come up"
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def test_graphql_shows_fingerprint_partitions_and_dotflow_metadata(webserver, story):
    home, runs = story
    response = requests.post(f"{webserver}/graphql", json={"query": QUERY}, timeout=60)
    response.raise_for_status()
    data = response.json()
    assert "errors" not in data, data
    node = data["data"]["assetNodes"][0]
    assert node["partitionDefinition"]["name"] == "orders_demo_fingerprints"
    partitions = node["partitionKeys"]
    assert len(partitions) == 3 and all(len(key) == 64 for key in partitions)

    latest = data["data"]["assetOrError"]["assetMaterializations"][0]
    entries = {entry["label"]: entry for entry in latest["metadataEntries"]}
    assert entries["dotflow/workflow_id"]["text"] == "orders-demo"
    assert entries["dotflow/fingerprint"]["text"] == latest["partition"] == partitions[1]
    assert entries["dotflow/decision"]["text"] == "reset"
    assert entries["dotflow/previous_fingerprint"]["text"] == partitions[0]
    assert '"extract"' in entries["dotflow/steps_executed"]["jsonString"]
    assert "| load | executed |" in entries["dotflow/steps"]["mdStr"]
    assert '"***"' in entries["dotflow/payload"]["jsonString"] and "demo-token" not in entries["dotflow/payload"]["jsonString"]
    assert "orders_2026_12.csv" in entries["dotflow/diff"]["mdStr"]
