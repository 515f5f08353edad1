"""S3Source and SQSSource against a real moto server on loopback, over HTTP with boto3.

The server is tests/moto_server.py's session fixture. S3: only new or changed objects are
downloaded (counted with a botocore event hook), bad ones are bad items. SQS, through
payload_change_sensor: messages are deleted only once their payload is stored; malformed ones
are never deleted and reach the queue's dead-letter queue.
"""

import doctest
import json
import socket
import uuid

import boto3
import pytest
from botocore.config import Config
from dagster_aws.s3 import S3Resource

import dotflow_dagster.sources
from dotflow_dagster import DotflowResource, payload_change_sensor
from dotflow_dagster.sources import (
    ArrivedPayload,
    BadPayload,
    PayloadSource,
    S3Source,
    S3SourceError,
    SQSSource,
    SQSSourceError,
)
from dotflow_dagster.sources import s3 as s3_module
from dotflow_dagster.sources import sqs as sqs_module
from tests.moto_server import moto_server  # noqa: F401  (the session fixture)
from tests.support.flow import make_workflow
from tests.test_sensor import Harness

pytestmark = pytest.mark.integration

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
LIMIT = 1_000_000
A, B = {"v": 1}, {"v": 2}
NO_RETRIES = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2, read_timeout=5)


def _free_port() -> int:
    """A loopback port nothing listens on (for an endpoint that is down)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def endpoint(moto_server) -> str:  # noqa: F811  (the fixture, used by name)
    """The session's moto server (tests/moto_server.py): S3 and SQS on one loopback port."""
    return moto_server.endpoint


def client(service: str, endpoint: str, **options):
    return boto3.client(service, endpoint_url=endpoint, region_name=REGION, **CREDENTIALS, **options)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}"


def test_the_package_exports_the_cloud_sources():
    assert {"S3Source", "S3SourceError", "SQSSource", "SQSSourceError"} <= set(dotflow_dagster.sources.__all__)
    assert issubclass(S3Source, PayloadSource) and issubclass(SQSSource, PayloadSource)


@pytest.mark.parametrize("module", [s3_module, sqs_module])
def test_docstring_examples_run_without_a_server(module):
    assert doctest.testmod(module, optionflags=doctest.ELLIPSIS).failed == 0


# -- S3Source --------------------------------------------------------------------------------------


@pytest.fixture
def s3(endpoint):
    return client("s3", endpoint)


@pytest.fixture
def bucket(s3) -> str:
    name = unique("payloads")
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def gets(s3) -> list[dict]:
    """The parameters of every ``GetObject`` call made with the ``s3`` client."""
    calls: list[dict] = []
    s3.meta.events.register("provide-client-params.s3.GetObject", lambda params, **_: calls.append(dict(params)))
    return calls


def put(s3, bucket: str, key: str, data) -> str:
    body = data if isinstance(data, bytes | str) else json.dumps(data)
    return s3.put_object(Bucket=bucket, Key=key, Body=body)["ETag"].strip('"')


def scan(source, known=None, limit=LIMIT):
    result = source.scan(known=known or {}, max_payload_bytes=limit)
    return result, list(result.items)


def versions(items) -> dict[str, str]:
    return {item.location: item.version for item in items}


def test_new_objects_are_payloads_versioned_by_etag_and_other_keys_are_ignored(s3, bucket, gets):
    orders = put(s3, bucket, "inbox/orders.json", {"rows": 1})
    listing = put(s3, bucket, "inbox/a-b.json", [1, 2])
    for ignored in ("inbox/sub/deep.json", "inbox/notes.txt", "inbox/.hidden.json", "inbox/x.json.tmp", "other/y.json"):
        put(s3, bucket, ignored, {"ignored": True})
    source = S3Source(bucket, "inbox/", s3=s3)

    result, items = scan(source)

    assert source.key == f"s3:{bucket}/inbox/"
    assert items == [
        ArrivedPayload(workflow_id="a-b", payload=[1, 2], location=f"s3://{bucket}/inbox/a-b.json", version=listing),
        ArrivedPayload(workflow_id="orders", payload={"rows": 1}, location=f"s3://{bucket}/inbox/orders.json",
                       version=orders),
    ]
    assert result.present == {f"s3://{bucket}/inbox/a-b.json", f"s3://{bucket}/inbox/orders.json"}
    assert [call["Key"] for call in gets] == ["inbox/a-b.json", "inbox/orders.json"]
    # Guarded download: no more than the limit + 1 bytes, and only the object that was listed.
    assert gets[0]["Range"] == f"bytes=0-{LIMIT}" and gets[0]["IfMatch"].strip('"') == listing


def test_unchanged_objects_are_never_downloaded_and_a_changed_one_is(s3, bucket, gets):
    put(s3, bucket, "inbox/a.json", A)
    put(s3, bucket, "inbox/b.json", B)
    source = S3Source(bucket, "inbox/", s3=s3)
    _, first = scan(source)
    known = versions(first)
    gets.clear()

    result, items = scan(source, known)

    assert items == [] and gets == []
    assert result.present == set(known)

    etag = put(s3, bucket, "inbox/b.json", {"v": 3})
    result, items = scan(source, known)
    assert [(item.workflow_id, item.payload, item.version) for item in items] == [("b", {"v": 3}, etag)]
    assert etag != known[f"s3://{bucket}/inbox/b.json"]
    assert [call["Key"] for call in gets] == ["inbox/b.json"]


def test_bad_objects_are_bad_items_and_a_too_large_one_is_not_downloaded(s3, bucket, gets):
    put(s3, bucket, "inbox/broken.json", '{"v": ')
    put(s3, bucket, "inbox/Not Valid!.json", A)
    put(s3, bucket, "inbox/huge.json", {"blob": "x" * 200})
    put(s3, bucket, "inbox/empty.json", b"")
    put(s3, bucket, "inbox/good.json", A)

    result, items = scan(S3Source(bucket, "inbox/", s3=s3), limit=100)

    bad = {item.location.rpartition("/")[2]: item for item in items if isinstance(item, BadPayload)}
    assert sorted(bad) == ["Not Valid!.json", "broken.json", "empty.json", "huge.json"]
    location = f"s3://{bucket}/inbox/broken.json"
    assert bad["broken.json"].reason.startswith(f"invalid JSON in {location}: ")
    assert bad["broken.json"].workflow_id == "broken"
    assert bad["Not Valid!.json"].reason.startswith(f"s3://{bucket}/inbox/Not Valid!.json: invalid workflow_id")
    size = len(json.dumps({"blob": "x" * 200}))
    assert bad["huge.json"].reason == f"s3://{bucket}/inbox/huge.json is {size} bytes, over max_payload_bytes=100"
    assert bad["empty.json"].reason.startswith("invalid JSON in ")
    assert [item.workflow_id for item in items if isinstance(item, ArrivedPayload)] == ["good"]
    assert len(result.present) == 5
    # Neither the too large object, nor the empty one, nor the badly named one was downloaded.
    assert sorted(call["Key"] for call in gets) == ["inbox/broken.json", "inbox/good.json"]


def test_an_integer_beyond_64_bits_is_read_exactly_and_one_python_refuses_makes_the_object_bad(s3, bucket):
    put(s3, bucket, "inbox/exact.json", {"n": 10**30 + 1})  # orjson alone reads 1e+30
    put(s3, bucket, "inbox/refused.json", '{"n": ' + "7" * 5000 + "}")

    _, (exact, refused) = scan(S3Source(bucket, "inbox/", s3=s3))

    assert isinstance(exact, ArrivedPayload) and exact.payload == {"n": 10**30 + 1}
    assert isinstance(refused, BadPayload) and refused.workflow_id == "refused"
    assert refused.reason.startswith(f"cannot read s3://{bucket}/inbox/refused.json: it holds an integer of more "
                                     "than 4300 digits")


def test_an_object_replaced_after_the_listing_is_read_only_with_its_new_etag(s3, bucket, gets):
    put(s3, bucket, "inbox/orders.json", A)
    source = S3Source(bucket, "inbox/", s3=s3)
    result = source.scan(known={}, max_payload_bytes=100)
    put(s3, bucket, "inbox/orders.json", {"blob": "x" * 200})  # after the listing, before the download

    assert list(result.items) == []  # IfMatch refused it: looked at again next scan
    assert len(gets) == 1

    _, items = scan(source, limit=100)
    [item] = items
    assert isinstance(item, BadPayload) and "over max_payload_bytes=100" in item.reason
    assert len(gets) == 1


def test_listing_follows_every_page(s3, bucket):
    pages: list[str] = []

    def small_pages(params, **_):
        params["MaxKeys"] = 2
        pages.append(params.get("ContinuationToken", ""))

    s3.meta.events.register("provide-client-params.s3.ListObjectsV2", small_pages)
    for index in range(5):
        put(s3, bucket, f"in/w{index}.json", {"v": index})
    result, items = scan(S3Source(bucket, "in/", s3=s3))
    assert len(pages) == 3
    assert [item.workflow_id for item in items] == [f"w{index}" for index in range(5)]
    assert len(result.present) == 5


def test_an_s3_resource_is_used_through_its_client(endpoint, s3, bucket):
    put(s3, bucket, "orders.json", A)
    resource = S3Resource(endpoint_url=endpoint, region_name=REGION, **CREDENTIALS)
    _, items = scan(S3Source(bucket, "", s3=resource))
    assert [(item.workflow_id, item.payload) for item in items] == [("orders", A)]


def test_listing_errors_name_the_bucket(endpoint, s3):
    missing = unique("missing")
    with pytest.raises(S3SourceError, match=f"cannot list s3://{missing}/inbox/: NoSuchBucket") as caught:
        S3Source(missing, "inbox/", s3=s3).scan(known={}, max_payload_bytes=LIMIT)
    assert caught.value.bucket == missing

    down = client("s3", f"http://127.0.0.1:{_free_port()}", config=NO_RETRIES)
    with pytest.raises(S3SourceError, match="cannot list s3://payloads/inbox/: Could not connect"):
        S3Source("payloads", "inbox/", s3=down).scan(known={}, max_payload_bytes=LIMIT)


def test_s3_source_refuses_what_is_no_s3_client(endpoint):
    with pytest.raises(TypeError, match="not a 'sqs' client"):
        S3Source("b", "p/", s3=client("sqs", endpoint))
    with pytest.raises(TypeError, match="S3Resource or a boto3 S3 client"):
        S3Source("b", "p/", s3=object())
    with pytest.raises(ValueError, match="bucket"):
        S3Source("", "p/", s3=client("s3", endpoint))


def test_the_sensor_reads_an_s3_object_once_per_change(s3, bucket, gets, instance, tmp_path):
    resource = DotflowResource(base_dir=str(tmp_path / "store"))
    workflow = make_workflow()
    sensor = Harness(
        payload_change_sensor([workflow], source=S3Source(bucket, "inbox/", s3=s3)), instance=instance, resource=resource
    )
    put(s3, bucket, "inbox/orders-acme.json", A)
    assert [r.partition_key for r in sensor.tick().run_requests] == [workflow.fingerprint(A)]
    assert sensor.tick().run_requests == [] and len(gets) == 1
    put(s3, bucket, "inbox/orders-acme.json", B)
    assert [r.partition_key for r in sensor.tick().run_requests] == [workflow.fingerprint(B)]
    assert len(gets) == 2


# -- SQSSource -------------------------------------------------------------------------------------


@pytest.fixture
def sqs(endpoint):
    return client("sqs", endpoint)


def make_queue(sqs, **attributes: str) -> str:
    return sqs.create_queue(QueueName=unique("payloads"), Attributes=attributes)["QueueUrl"]


def send(sqs, queue_url: str, message) -> str:
    body = message if isinstance(message, str) else json.dumps(message)
    return sqs.send_message(QueueUrl=queue_url, MessageBody=body)["MessageId"]


def message(payload, workflow_id: str = "orders-acme") -> dict:
    return {"workflow_id": workflow_id, "payload": payload}


def in_queue(sqs, queue_url: str) -> tuple[int, int]:
    """(visible, in flight) messages."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(attributes["ApproximateNumberOfMessagesNotVisible"])


def sqs_source(sqs, queue_url: str, *, visibility: int = 120) -> SQSSource:
    source = SQSSource(queue_url, client=sqs)
    source.wait_time_seconds = 0  # no long poll on an idle queue: keeps the tests fast
    source.visibility_timeout_seconds = visibility  # 0: a message not deleted is received again at once
    return source


@pytest.fixture
def resource(tmp_path) -> DotflowResource:
    return DotflowResource(base_dir=str(tmp_path / "store"), lock_timeout_seconds=30)


def sqs_harness(source: SQSSource, workflow, *, instance, resource) -> Harness:
    return Harness(payload_change_sensor([workflow], source=source), instance=instance, resource=resource)


def logged(capfd, level: str) -> str:
    return "\n".join(line for line in capfd.readouterr().err.splitlines() if f" - {level} - " in line)


def test_ten_deliveries_of_one_payload_give_one_run_and_are_all_deleted(sqs, instance, resource):
    queue_url = make_queue(sqs)
    for _ in range(10):
        send(sqs, queue_url, message(A))
    workflow = make_workflow()
    sensor = sqs_harness(sqs_source(sqs, queue_url), workflow, instance=instance, resource=resource)

    [request] = sensor.tick().run_requests

    assert request.partition_key == workflow.fingerprint(A)
    assert request.run_key == f"orders-acme:{workflow.fingerprint(A)}:1"
    assert in_queue(sqs, queue_url) == (0, 0)
    send(sqs, queue_url, message(A))  # delivered again later: dropped by fingerprint, and deleted
    assert sensor.tick().run_requests == []
    assert in_queue(sqs, queue_url) == (0, 0)


def test_a_malformed_message_between_good_ones_is_logged_and_never_deleted(sqs, instance, resource, capfd):
    queue_url = make_queue(sqs)
    send(sqs, queue_url, message(A))
    bad_id = send(sqs, queue_url, '{"workflow_id": "orders-acme", "payload": ')
    send(sqs, queue_url, message(B))
    workflow = make_workflow()
    source = sqs_source(sqs, queue_url, visibility=0)
    sensor = sqs_harness(source, workflow, instance=instance, resource=resource)
    capfd.readouterr()

    result = sensor.tick()

    assert [r.partition_key for r in result.run_requests] == [workflow.fingerprint(A), workflow.fingerprint(B)]
    warnings = logged(capfd, "WARNING")
    assert f"payload at sqs:{source.queue_name}:{bad_id} is skipped: invalid JSON in message" in warnings
    assert "left in the queue, received 1 time(s)" in warnings
    assert in_queue(sqs, queue_url) == (1, 0)
    [left] = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert left["MessageId"] == bad_id


def test_a_message_whose_payload_cannot_be_stored_is_received_again_later(sqs, instance, tmp_path, capfd):
    queue_url = make_queue(sqs)
    send(sqs, queue_url, message(A))
    store = tmp_path / "store"
    blocker = store / "workflows" / "orders-acme"  # a file where the workflow's folder belongs
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way")
    resource = DotflowResource(base_dir=str(store))
    workflow = make_workflow()
    sensor = sqs_harness(sqs_source(sqs, queue_url, visibility=0), workflow, instance=instance, resource=resource)
    capfd.readouterr()

    assert sensor.tick().run_requests == []
    assert "will retry" in logged(capfd, "ERROR")
    assert in_queue(sqs, queue_url) == (1, 0)  # not deleted

    blocker.unlink()
    [request] = sensor.tick().run_requests  # received again

    assert request.partition_key == workflow.fingerprint(A)
    assert in_queue(sqs, queue_url) == (0, 0)


def test_a_poison_message_reaches_the_dead_letter_queue(sqs, instance, resource, capfd):
    dead_letters = make_queue(sqs)
    dead_letters_arn = sqs.get_queue_attributes(QueueUrl=dead_letters, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps({"deadLetterTargetArn": dead_letters_arn, "maxReceiveCount": "2"})
    queue_url = make_queue(sqs, RedrivePolicy=redrive)
    poison = send(sqs, queue_url, "[1, 2, 3]")
    send(sqs, queue_url, message(A))
    workflow = make_workflow()
    sensor = sqs_harness(sqs_source(sqs, queue_url, visibility=0), workflow, instance=instance, resource=resource)
    capfd.readouterr()

    assert len(sensor.tick().run_requests) == 1
    for _ in range(2):
        assert sensor.tick().run_requests == []

    warnings = logged(capfd, "WARNING").splitlines()
    assert len(warnings) == 2  # one per receive, until SQS moved it
    assert all(f":{poison} is skipped: message sqs:" in line and "is an array, not an object" in line
               for line in warnings)
    assert in_queue(sqs, queue_url) == (0, 0)
    [dead] = sqs.receive_message(QueueUrl=dead_letters, MaxNumberOfMessages=10)["Messages"]
    assert (dead["MessageId"], dead["Body"]) == (poison, "[1, 2, 3]")


def test_several_messages_for_one_workflow_are_requested_in_arrival_order(sqs, instance, resource):
    queue_url = make_queue(sqs)
    for payload in (A, B):
        send(sqs, queue_url, message(payload))
    workflow = make_workflow()
    sensor = sqs_harness(sqs_source(sqs, queue_url), workflow, instance=instance, resource=resource)

    requests = sensor.tick().run_requests

    fingerprint_a, fingerprint_b = workflow.fingerprint(A), workflow.fingerprint(B)
    assert [r.run_key for r in requests] == [f"orders-acme:{fingerprint_a}:1", f"orders-acme:{fingerprint_b}:2"]
    assert [r.tags["dotflow/previous_fingerprint"] for r in requests] == ["", ""]
    assert in_queue(sqs, queue_url) == (0, 0)
    for request in requests:  # run in arrival order: the last one becomes the input
        assert sensor.run(request, workflow).success
    state = workflow.state(store=resource.get_store())
    assert state.current_fingerprint == fingerprint_b
    assert [entry.fingerprint for entry in state.history] == [fingerprint_a, fingerprint_b]


def test_a_payload_that_returns_within_one_batch_gets_a_fresh_run(sqs, instance, resource):
    queue_url = make_queue(sqs)
    for payload in (A, B, A):
        send(sqs, queue_url, message(payload))
    workflow = make_workflow()
    sensor = sqs_harness(sqs_source(sqs, queue_url), workflow, instance=instance, resource=resource)

    requests = sensor.tick().run_requests

    fingerprint_a, fingerprint_b = workflow.fingerprint(A), workflow.fingerprint(B)
    assert [r.run_key for r in requests] == [
        f"orders-acme:{fingerprint_a}:1",
        f"orders-acme:{fingerprint_b}:2",
        f"orders-acme:{fingerprint_a}:3",
    ]


def test_malformed_messages_are_bad_items_and_acknowledging_them_deletes_nothing(sqs):
    queue_url = make_queue(sqs)
    bodies = [
        ("not json", "invalid JSON in message"),
        ("[1]", "is an array, not an object"),
        ('"text"', "is a string, not an object"),
        (json.dumps({"payload": A}), "has no 'workflow_id' field"),
        (json.dumps({"workflow_id": "orders"}), "has no 'payload' field"),
        (json.dumps({"workflow_id": "orders", "payload": A, "sent_at": 1}), "unknown field(s) 'sent_at'"),
        (json.dumps({"workflow_id": "../etc", "payload": A}), "invalid workflow_id '../etc'"),
        (json.dumps({"workflow_id": 7, "payload": A}), "invalid workflow_id 7"),
        (json.dumps({"workflow_id": "orders", "payload": "x" * 200}), "over max_payload_bytes=150"),
    ]
    ids = [send(sqs, queue_url, body) for body, _ in bodies]
    good = send(sqs, queue_url, message(None, "orders"))
    source = sqs_source(sqs, queue_url, visibility=0)

    result, items = scan(source, limit=150)

    assert result.present is None
    assert [item.location for item in items] == [f"sqs:{source.queue_name}:{i}" for i in [*ids, good]]
    *bad, arrived = items
    for item, (_, reason) in zip(bad, bodies, strict=True):
        assert isinstance(item, BadPayload) and reason in item.reason, (item.reason, reason)
        assert item.version == item.location.rpartition(":")[2]
    assert [item.workflow_id for item in bad[4:6]] == ["orders", "orders"]
    assert arrived == ArrivedPayload(workflow_id="orders", payload=None, location=arrived.location, version=good)

    source.acknowledge(bad)
    assert in_queue(sqs, queue_url) == (len(bodies) + 1, 0)
    source.acknowledge([arrived, arrived])  # twice in the list, and again below: deleted once
    source.acknowledge([arrived])
    assert in_queue(sqs, queue_url) == (len(bodies), 0)


def test_a_message_with_an_integer_beyond_64_bits_is_read_exactly(sqs):
    queue_url = make_queue(sqs)
    exact = send(sqs, queue_url, message({"n": -(10**30) - 1}))  # orjson alone reads -1e+30
    refused = send(sqs, queue_url, '{"workflow_id": "orders", "payload": ' + "7" * 5000 + "}")

    _, items = scan(sqs_source(sqs, queue_url))

    assert {item.version: type(item) for item in items} == {exact: ArrivedPayload, refused: BadPayload}
    arrived, bad = sorted(items, key=lambda item: item.version != exact)
    assert arrived.payload == {"n": -(10**30) - 1}
    assert "it holds an integer of more than 4300 digits" in bad.reason


def test_acknowledge_ignores_items_from_elsewhere_or_from_an_earlier_scan(sqs):
    queue_url = make_queue(sqs)
    send(sqs, queue_url, message(A))
    source = sqs_source(sqs, queue_url, visibility=0)
    _, [first] = scan(source)
    _, [again] = scan(source)  # a new scan replaces the receipt handles of the last one
    assert again == first
    source.acknowledge([ArrivedPayload(workflow_id="x", payload=1, location="sqs:other:1", version="1")])
    assert in_queue(sqs, queue_url) == (1, 0)
    source.acknowledge([again])
    assert in_queue(sqs, queue_url) == (0, 0)


def test_a_source_built_from_an_endpoint_makes_its_own_client(endpoint, sqs, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    queue_url = make_queue(sqs)
    send(sqs, queue_url, message(A))
    source = SQSSource(queue_url, endpoint_url=endpoint, region_name=REGION)
    source.wait_time_seconds = 0
    assert source.key == f"sqs:{queue_url}" and repr(source) == f"SQSSource({queue_url!r})"
    _, [item] = scan(source)
    assert (item.workflow_id, item.payload) == ("orders-acme", A)


def test_receive_errors_name_the_queue(endpoint, sqs):
    missing = f"{endpoint}/123456789012/{unique('missing')}"
    with pytest.raises(SQSSourceError, match=f"cannot receive from SQS queue {missing}: ") as caught:
        SQSSource(missing, client=sqs).scan(known={}, max_payload_bytes=LIMIT)
    assert caught.value.queue_url == missing

    down = client("sqs", f"http://127.0.0.1:{_free_port()}", config=NO_RETRIES)
    queue_url = "http://127.0.0.1:1/123456789012/payloads"
    with pytest.raises(SQSSourceError, match=f"cannot receive from SQS queue {queue_url}: Could not connect"):
        SQSSource(queue_url, client=down).scan(known={}, max_payload_bytes=LIMIT)


def test_sqs_source_checks_its_arguments(endpoint):
    sqs = client("sqs", endpoint)
    with pytest.raises(ValueError, match="queue URL"):
        SQSSource("payloads")
    with pytest.raises(ValueError, match="not both"):
        SQSSource("https://sqs.us-east-1.amazonaws.com/1/q", client=sqs, region_name=REGION)
    with pytest.raises(TypeError, match="SQS client"):
        SQSSource("https://sqs.us-east-1.amazonaws.com/1/q", client=client("s3", endpoint))
    assert SQSSource("https://us-west-2.queue.amazonaws.com/1/q").region_name == "us-west-2"
    assert SQSSource("http://localhost:4566/000000000000/q").region_name is None

