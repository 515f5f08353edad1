"""S3Store on a real local S3 endpoint over HTTP (moto's server): what is S3's own.

Store semantics shared with LocalStore (overwrite, CAS contention, TTL, clear, the run lock's
waiting) run against both stores in tests/test_stores.py, dotflow's contract in
tests/test_storage_contract.py and the multi-process scenarios in tests/test_resume_processes.py.
Here: the layout under a prefix, the S3Resource and boto3 clients, the lease (expiry, takeover
after kill -9, renewal, loss) and S3 failures as StoreError.
"""

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
from botocore.exceptions import ClientError
from dotflow import action
from dotflow.core.context import Context

from dotflow_dagster import DotflowWorkflow, RunInProgressError, StoreError
from dotflow_dagster.stores import Lease, LeaseLostError, S3Store
from dotflow_dagster.stores import s3 as s3_module
from tests.conftest import ROOT, subprocess_env
from tests.moto_server import (  # noqa: F401 - the *_fixture names provide the fixtures
    moto_server_fixture,
    raw_object,
    s3_store_factory_fixture,
    unavailable_reason,
)

pytestmark = pytest.mark.skipif(bool(unavailable_reason()), reason=unavailable_reason() or "")

WORKFLOW = "orders-acme"
LEASE_KEY = f"workflows/{WORKFLOW}/#run.lease"


@pytest.fixture
def store(s3_store_factory) -> S3Store:
    return s3_store_factory(prefix="team/dotflow/")


def objects(store: S3Store) -> list[str]:
    """Every object name in the store's bucket."""
    listing = store.client.list_objects_v2(Bucket=store.bucket)
    return sorted(item["Key"] for item in listing.get("Contents", ()))


# -- construction and layout ---------------------------------------------------------------------------


def test_keys_live_under_the_prefix_and_the_location_says_where(store):
    store.post("workflows/w/ledger.json", Context(storage=1))
    assert objects(store) == ["team/dotflow/workflows/w/ledger.json"]
    assert store.location == f"s3://{store.bucket}/team/dotflow/"
    assert repr(store) == f"S3Store({store.bucket!r}, 'team/dotflow/')"
    assert store.list_keys("") == ["workflows/w/ledger.json"]


def test_stores_under_other_prefixes_of_one_bucket_do_not_see_each_other(store, moto_server):
    neighbour = S3Store(store.bucket, "team/", s3=store.client)
    other = S3Store(store.bucket, "team/dotflow-other/", s3=store.client)
    store.post("k", Context(storage="mine"))
    other.post("k", Context(storage="other's"))
    assert store.get("k").storage == "mine"
    assert other.list_keys("") == ["k"]
    # A store whose prefix contains another's sees its keys as keys of its own folder.
    assert neighbour.list_keys("") == ["dotflow-other/k", "dotflow/k"]
    other.clear("k")
    assert store.delete_prefix("") == 1
    assert other.get("k").storage == "other's"


def test_an_s3resource_and_a_plain_boto3_client_both_work(moto_server, s3_store_factory):
    via_resource = s3_store_factory(s3=moto_server.resource())  # get_client() is called
    via_client = S3Store(via_resource.bucket, s3=moto_server.client())
    via_resource.post("k", Context(storage={"n": 1}))
    assert via_client.get("k").storage == {"n": 1}
    assert via_resource.client is not via_client.client


@pytest.mark.parametrize("prefix", ["dotflow", "/dotflow/", "a//b/", "a/../b/", "a b/", "a/#x/", 7])
def test_invalid_prefixes_are_refused(moto_server, prefix):
    with pytest.raises((ValueError, TypeError), match="prefix"):
        S3Store("bucket", prefix, s3=moto_server.shared_client())


@pytest.mark.parametrize("bucket", ["", "s3://bucket", "bucket/dotflow", "a", None])
def test_invalid_bucket_names_are_refused(moto_server, bucket):
    with pytest.raises(ValueError, match="bucket"):
        S3Store(bucket, s3=moto_server.shared_client())


@pytest.mark.parametrize("lease_seconds", [0, 0.5, -1, float("nan"), float("inf"), True, "60"])
def test_invalid_lease_seconds_are_refused(moto_server, lease_seconds):
    with pytest.raises(ValueError, match="lease_seconds"):
        S3Store("bucket", s3=moto_server.shared_client(), lease_seconds=lease_seconds)


def test_something_that_is_no_s3_client_is_refused():
    with pytest.raises(TypeError, match="S3Resource"):
        S3Store("bucket", s3=object())


def test_foreign_objects_and_folder_markers_are_not_keys(store):
    for name in ("team/dotflow/a/", "team/dotflow/a/with space", "team/dotflow/a//b", "team/dotflow/a/#tmp"):
        store.client.put_object(Bucket=store.bucket, Key=name, Body=b"x")
    store.post("a/key", Context(storage=1))
    assert store.list_keys("a/") == ["a/key"]
    assert store.delete_prefix("a/") == 1


def test_a_version_is_the_etag_and_a_ttl_header_is_part_of_it(store):
    store.write_bytes("k", b"value")
    data, version = store.read_versioned("k")
    assert data == b"value" and version == store.client.head_object(Bucket=store.bucket, Key="team/dotflow/k")["ETag"]
    store.write_bytes("k", b"value", ttl=60)  # the same value with an expiry is another version
    assert store.read_versioned("k")[1] != version
    assert not store.write_bytes_if("k", b"new", expected_version=version)


def test_empty_values_are_values(store):
    store.write_bytes("empty", b"")
    assert store.read_versioned("empty")[0] == b""
    assert store.list_keys("") == ["empty"]
    assert not store.write_bytes_if("empty", b"x", expected_version=None)
    version = store.read_versioned("empty")[1]
    assert S3Store(store.bucket, store.prefix, s3=store.client).write_bytes_if(  # no cached knowledge of it
        "empty", b"x", expected_version=version
    )
    store.write_bytes("empty", b"")
    assert store.delete("empty") is True


def test_delete_prefix_deletes_in_batches(store, monkeypatch):
    monkeypatch.setattr(s3_module, "_DELETE_BATCH", 2)
    for index in range(5):
        store.write_bytes(f"many/{index}", b"x")
    assert store.delete_prefix("many/") == 5
    assert objects(store) == []


def test_copy_prefix_is_server_side_and_keeps_expiry(store):
    store.post("src/a", Context(storage=1), ttl=60)
    store.post("src/b", Context(storage=2))
    assert store.copy_prefix("src/", "dst/") == 2
    assert raw_object(store, "dst/a") == raw_object(store, "src/a")  # header (expiry) included
    assert store.get("dst/b").storage == 2


def test_a_retried_conditional_write_that_landed_counts_as_won(store, monkeypatch):
    # A PutObject whose first attempt landed but whose answer was lost is retried by botocore,
    # and the retry fails its own condition (412): the object then holds exactly our bytes.
    real_put = store.client.put_object

    def put_then_lose_the_answer(**params):
        real_put(**params)
        raise ClientError(
            {
                "Error": {"Code": "PreconditionFailed", "Message": "At least one of the pre-conditions..."},
                "ResponseMetadata": {"HTTPStatusCode": 412, "RetryAttempts": 1},
            },
            "PutObject",
        )

    monkeypatch.setattr(store.client, "put_object", put_then_lose_the_answer)
    assert store.write_bytes_if("k", b"mine", expected_version=None)
    # Without a retry, a 412 means another writer won.
    real_put(Bucket=store.bucket, Key="team/dotflow/k2", Body=b"theirs")
    assert not store.write_bytes_if("k2", b"mine", expected_version=None)


# -- S3 failures are StoreErrors naming the bucket, the object and the error code ------------------------


OPERATIONS = {
    "post": lambda store: store.post("a/b", Context(storage=1)),
    "get": lambda store: store.get("a/b"),
    "create": lambda store: store.write_bytes_if("a/b", b"x", expected_version=None),
    "cas": lambda store: store.write_bytes_if("a/b", b"x", expected_version='"v"'),
    "delete": lambda store: store.delete("a/b"),
    "list_keys": lambda store: store.list_keys("a/"),
    "delete_prefix": lambda store: store.delete_prefix("a/"),
    "run_lock": lambda store: store.run_lock(WORKFLOW).__enter__(),
}


@pytest.mark.parametrize("operation", OPERATIONS.values(), ids=OPERATIONS.keys())
def test_a_missing_bucket_raises_store_error_naming_bucket_object_and_code(moto_server, operation):
    store = S3Store("no-such-bucket-here", "p/", s3=moto_server.shared_client())
    with pytest.raises(StoreError) as error:
        operation(store)
    message = str(error.value)
    assert "bucket 'no-such-bucket-here'" in message and "NoSuchBucket" in message, message
    assert "object 'p/" in message, message
    assert isinstance(error.value.__cause__, ClientError)


@pytest.mark.parametrize("operation", OPERATIONS.values(), ids=OPERATIONS.keys())
def test_an_unreachable_endpoint_raises_store_error_quickly(moto_server, operation):
    import socket

    import boto3
    from botocore.config import Config

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = boto3.client(
        "s3",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1, "mode": "standard"}),
    )
    store = S3Store("some-bucket", "p/", s3=client)
    started = time.monotonic()
    with pytest.raises(StoreError) as error:
        operation(store)
    assert time.monotonic() - started < 5
    message = str(error.value)
    assert "bucket 'some-bucket'" in message and "object 'p/" in message, message
    assert "EndpointConnectionError" in message and f"127.0.0.1:{port}" in message, message


# -- the lease ---------------------------------------------------------------------------------------------


def test_the_lease_is_an_object_beside_the_workflows_keys_hidden_from_listings(store):
    store.post(f"workflows/{WORKFLOW}/ledger.json", Context(storage=1))
    with store.run_lock(WORKFLOW) as lease:
        assert isinstance(lease, Lease) and lease.lost is None
        document = json.loads(raw_object(store, LEASE_KEY))
        assert document["owner"] == lease.owner and lease.owner.startswith(f"pid {os.getpid()} on ")
        assert document["token"] == lease.token and document["lease_seconds"] == 60.0
        assert abs(document["expires_at"] - (time.time() + 60)) < 5
        assert store.list_keys(f"workflows/{WORKFLOW}/") == [f"workflows/{WORKFLOW}/ledger.json"]
        # Clearing the workflow's keys leaves the lease alone.
        assert store.delete_prefix(f"workflows/{WORKFLOW}/") == 1
        assert raw_object(store, LEASE_KEY) is not None
        lease.check()
    assert raw_object(store, LEASE_KEY) is None  # released
    assert objects(store) == []


def test_a_held_lease_refuses_other_stores_naming_the_holder_and_its_expiry(store):
    other = S3Store(store.bucket, store.prefix, s3=store.client)
    with store.run_lock(WORKFLOW) as lease:
        with pytest.raises(RunInProgressError) as error:
            with other.run_lock(WORKFLOW):
                pass
    holder = error.value.holder
    assert holder.startswith(f"{lease.owner}, lease in {store.location} expires in "), holder
    with other.run_lock(WORKFLOW):  # released
        pass


def test_the_heartbeat_renews_the_lease_while_the_run_goes_on(s3_store_factory):
    store = s3_store_factory(lease_seconds=1)
    other = S3Store(store.bucket, s3=store.client, lease_seconds=1)
    with store.run_lock(WORKFLOW) as lease:
        first = json.loads(raw_object(store, LEASE_KEY))
        time.sleep(3)  # three times the lease: only renewals keep it
        renewed = json.loads(raw_object(store, LEASE_KEY))
        assert renewed["token"] == first["token"] and renewed["renewals"] >= 4
        assert renewed["expires_at"] > first["expires_at"] + 1.5
        with pytest.raises(RunInProgressError):
            with other.run_lock(WORKFLOW):
                pass
        store.write_bytes(f"workflows/{WORKFLOW}/checkpoints/f/extract", b"ok")
        lease.check()


HOLDER = """
import sys
import boto3
from dotflow_dagster.stores import S3Store
store = S3Store(sys.argv[1], s3=boto3.client("s3"), lease_seconds=float(sys.argv[3]))
with store.run_lock(sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_the_lease_of_a_killed_holder_is_taken_over_only_after_it_expires(store, moto_server):
    lease_seconds = 2.0
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, store.bucket, WORKFLOW, str(lease_seconds)],
        cwd=ROOT, env=subprocess_env(**moto_server.env()), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout.readline().strip() == "held"
        contender = S3Store(store.bucket, s3=store.client, lease_seconds=lease_seconds)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        killed_at = time.monotonic()
        # Before it expires, the dead holder still holds it: fail fast, naming it.
        with pytest.raises(RunInProgressError, match=f"held by pid {process.pid} on .* expires in "):
            with contender.run_lock(WORKFLOW):
                pass
        waits: list[str] = []
        with contender.run_lock(WORKFLOW, wait_seconds=15, on_wait=waits.append) as lease:
            acquired_after = time.monotonic() - killed_at
            assert json.loads(raw_object(contender, LEASE_KEY))["token"] == lease.token
    finally:
        if process.poll() is None:
            process.kill()
    # Its last renewal was at most lease_seconds / 3 before the kill; S3 says "expired" only
    # once the lease is older than lease_seconds (to the second, so up to 1 s more).
    assert lease_seconds * 2 / 3 - 0.1 <= acquired_after <= lease_seconds + 2.5, acquired_after
    assert waits and waits[0].startswith(f"pid {process.pid} on ")


def _overwrite_lease(store: S3Store, body: bytes = b'{"owner": "pid 1 on elsewhere"}') -> None:
    store.client.put_object(Bucket=store.bucket, Key=store.prefix + LEASE_KEY, Body=body)


def test_a_lost_lease_stops_the_holder_before_its_next_write(store):
    checkpoint = f"workflows/{WORKFLOW}/checkpoints/f/transform"
    with store.run_lock(WORKFLOW) as lease:
        store.post(f"workflows/{WORKFLOW}/checkpoints/f/extract", Context(storage=1))
        _overwrite_lease(store)  # another writer took the lease over
        with pytest.raises(LeaseLostError) as error:
            store.post(checkpoint, Context(storage=2))
        message = str(error.value)
        assert f"run lease of workflow {WORKFLOW!r} in {store.location} was lost" in message
        assert "overwritten by another writer" in message and repr(checkpoint) in message
        assert error.value.workflow_id == WORKFLOW and error.value.key == checkpoint
        assert isinstance(error.value, StoreError)
        assert lease.lost
        with pytest.raises(LeaseLostError):
            lease.check()
        # Every write under the workflow is refused now; other keys are not the lease's.
        for refused in (
            lambda: store.write_bytes_if(f"workflows/{WORKFLOW}/ledger.json", b"{}", expected_version=None),
            lambda: store.delete(f"workflows/{WORKFLOW}/checkpoints/f/extract"),
            lambda: store.delete_prefix(f"workflows/{WORKFLOW}/"),
        ):
            with pytest.raises(LeaseLostError):
                refused()
        store.write_bytes("workflows/other-workflow/ledger.json", b"{}")
    assert store.read_bytes(checkpoint) is None
    assert raw_object(store, LEASE_KEY) == b'{"owner": "pid 1 on elsewhere"}'  # not ours to delete


def test_lease_lost_errors_survive_pickling_and_a_released_lease_checks_as_lost(store):
    error = LeaseLostError(workflow_id=WORKFLOW, location=store.location, reason="taken over", key="workflows/x")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.workflow_id, copy.reason, copy.key, str(copy)) == (WORKFLOW, "taken over", "workflows/x", str(error))
    with store.run_lock(WORKFLOW) as lease:
        pass
    with pytest.raises(LeaseLostError, match="released when its block ended"):
        lease.check()


def test_a_deleted_lease_is_lost_too(store):
    with store.run_lock(WORKFLOW):
        store.client.delete_object(Bucket=store.bucket, Key=store.prefix + LEASE_KEY)
        with pytest.raises(LeaseLostError, match="its object was deleted"):
            store.write_bytes(f"workflows/{WORKFLOW}/ledger.json", b"{}")


def test_a_holder_whose_heartbeat_stalled_is_taken_over_and_then_refused(s3_store_factory):
    store = s3_store_factory(lease_seconds=1)
    contender = S3Store(store.bucket, s3=store.client, lease_seconds=1)
    with store.run_lock(WORKFLOW) as lease:
        lease._stop.set()  # the heartbeat stops, as in a process frozen by the OS
        lease._heartbeat.join(5)
        with contender.run_lock(WORKFLOW, wait_seconds=10):
            with pytest.raises(LeaseLostError, match="taken over"):
                store.write_bytes(f"workflows/{WORKFLOW}/ledger.json", b"{}")
        assert contender.read_bytes(f"workflows/{WORKFLOW}/ledger.json") is None


def test_a_stalled_heartbeat_without_a_takeover_renews_before_the_next_write(s3_store_factory):
    store = s3_store_factory(lease_seconds=1)
    with store.run_lock(WORKFLOW) as lease:
        lease._stop.set()
        lease._heartbeat.join(5)
        time.sleep(1.2)  # past the holder's own deadline, and nobody took the lease over
        store.write_bytes(f"workflows/{WORKFLOW}/ledger.json", b"{}")
        assert lease.lost is None
    assert store.read_bytes(f"workflows/{WORKFLOW}/ledger.json") == b"{}"


# The store a step takes the lease over in (payloads are pickled, so it cannot travel in one).
_TAKE_OVER_IN: list[S3Store] = []


@action
def extract(initial_context):
    return {"rows": [1, 2, 3]}


@action
def transform(initial_context, previous_context):
    if _TAKE_OVER_IN:  # another run takes the workflow over while this step runs
        _overwrite_lease(_TAKE_OVER_IN.pop())
    return {"total": sum(previous_context.storage["rows"])}


@action
def load(initial_context, previous_context):
    return "loaded"


def test_a_run_that_loses_its_lease_stops_before_its_next_checkpoint_and_resumes_later(store):
    workflow = DotflowWorkflow(WORKFLOW, steps=[extract, transform, load])
    payload = {"v": 1}
    _TAKE_OVER_IN[:] = [store]
    with pytest.raises(LeaseLostError) as error:
        workflow.run(payload, store=store)
    assert "was lost" in str(error.value) and not _TAKE_OVER_IN
    ledger = workflow.ledger(store=store)
    (fingerprint,) = ledger.checkpointed_fingerprints()
    # transform ran, but its checkpoint was refused: only extract's is there.
    prefix = ledger.checkpoint_prefix(fingerprint)
    assert [key[len(prefix) :].split("-")[1] for key in store.list_keys(prefix)] == ["extract"]

    # The other run is gone (its lease deleted); running the payload again resumes at transform.
    store.client.delete_object(Bucket=store.bucket, Key=store.prefix + LEASE_KEY)
    report = workflow.run(payload, store=store)
    assert report.ok and report.resumed == ["extract"] and report.executed == ["transform", "load"]
