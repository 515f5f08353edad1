"""The cloud path in Dagster: DotflowResource on S3, the sensor on S3Source, checkpoints in S3Store.

Against moto's server over HTTP (tests/moto_server.py), with a real boto3 client behind a
dagster-aws S3Resource, on a persistent test instance.
"""

import json

import pytest

from dotflow_dagster import DotflowResource, S3Source, S3Store, payload_change_sensor
from tests.moto_server import moto_server  # noqa: F401  (the session fixture)
from tests.support.flow import make_workflow
from tests.test_sensor import Harness

pytestmark = pytest.mark.integration


@pytest.fixture
def s3_resource(moto_server) -> DotflowResource:  # noqa: F811  (the fixture, used by name)
    bucket = moto_server.new_bucket()
    return DotflowResource(s3_bucket=bucket, s3_prefix="dotflow/", s3=moto_server.resource(), lease_seconds=5)


def upload(moto_server, bucket: str, workflow_id: str, payload: dict) -> None:  # noqa: F811
    moto_server.shared_client("boto3").put_object(
        Bucket=bucket, Key=f"inbox/{workflow_id}.json", Body=json.dumps(payload).encode()
    )


def test_the_resource_gives_an_s3_store_and_the_sensor_feeds_runs_from_s3(
    moto_server, s3_resource, instance, side_effects  # noqa: F811
):
    workflow = make_workflow("reset")
    store = s3_resource.get_store()
    assert isinstance(store, S3Store) and store.location == f"s3://{s3_resource.s3_bucket}/dotflow/"
    source = S3Source(s3_resource.s3_bucket, "inbox/", s3=moto_server.resource())
    sensor = Harness(payload_change_sensor([workflow], source=source), instance=instance, resource=s3_resource)

    upload(moto_server, s3_resource.s3_bucket, "orders-acme", {"v": 1})
    [first] = sensor.tick().run_requests
    assert sensor.run(first, workflow).success
    assert sensor.tick().run_requests == []  # unchanged object: nothing downloaded, nothing requested

    upload(moto_server, s3_resource.s3_bucket, "orders-acme", {"v": 2})
    [second] = sensor.tick().run_requests
    assert second.tags["dotflow/expected_decision"] == "reset"
    assert sensor.run(second, workflow).success

    state = workflow.state(store=store)
    assert [entry.decision for entry in state.history] == ["new", "reset"]
    assert state.current_fingerprint == second.partition_key
    ledger = workflow.ledger(store=store)
    assert len(store.list_keys(ledger.checkpoint_prefix(second.partition_key))) == 3  # checkpoints in S3
    objects = moto_server.shared_client("boto3").list_objects_v2(
        Bucket=s3_resource.s3_bucket, Prefix="dotflow/workflows/orders-acme/checkpoints/"
    )
    assert objects["KeyCount"] >= 3
    assert side_effects()["extract v=2"] == 1
