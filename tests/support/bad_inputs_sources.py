"""Bad-input rows for the payload-change sensor: inbox files, S3 objects, SQS messages.

Each row ticks a real ``payload_change_sensor`` (``build_sensor_context`` on a real Dagster
instance) over a real source, a directory, or a bucket or queue of the moto server over HTTP,
holding one hostile item for the workflow ``returns`` and one good payload for
``orders-acme``. The good one must be requested in the same tick, the bad one reported naming
its location, and the store must keep everything both workflows had before.

Example:
    >>> from tests.support.bad_inputs_table import ROWS
    >>> import tests.support.bad_inputs_sources
    >>> any(item.name == "inbox_invalid_json" for item in ROWS)
    True
"""

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from dagster import SensorResult

from dotflow_dagster import DirectorySource, DotflowWorkflow, PayloadSource, S3Source, SQSSource
from tests.support.bad_inputs_harness import (
    Env,
    RacingSource,
    age,
    assert_nothing_lost,
    drop,
    file_permissions_enforced,
)
from tests.support.bad_inputs_payloads import GOOD, SEED
from tests.support.bad_inputs_table import row
from tests.support.flow import extract, make_workflow
from tests.test_sensor import Harness

__all__ = ["sensor_goes_on"]

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
GOES_ON = "the same tick requests the good payload's run"
KEPT = "every earlier ledger entry, payload and checkpoint of both workflows"


def _workflows() -> tuple[DotflowWorkflow, DotflowWorkflow]:
    return make_workflow(), DotflowWorkflow("returns", steps=[extract])


def _seeded(env: Env) -> tuple[DotflowWorkflow, DotflowWorkflow]:
    orders, returns = _workflows()
    assert orders.run(SEED, store=env.store).ok and returns.run(SEED, store=env.store).ok
    return orders, returns


def sensor_goes_on(
    env: Env,
    *,
    source: PayloadSource,
    arrange: Callable[[], None],
    names: list[str],
    level: str = "WARNING",
    **options: Any,
) -> tuple[Harness, SensorResult]:
    """Seed both workflows, ``arrange`` the bad and the good item, tick once, check the three promises."""
    orders, returns = _seeded(env)
    harness = env.sensor([orders, returns], source, **options)
    arrange()
    before = env.snapshot()
    result = harness.tick()
    assert [request.partition_key for request in result.run_requests] == [orders.fingerprint(GOOD)]
    log = env.logged(level)
    for fragment in names:
        assert fragment in log, (fragment, log)
    assert_nothing_lost(before, env.snapshot())
    return harness, result


# -- inbox files -------------------------------------------------------------------------------------


def _inbox_with(env: Env, bad: Callable[[Path], Path | None]) -> tuple[Path, Callable[[], None]]:
    inbox = env.inbox()

    def arrange() -> None:
        bad(inbox)
        drop(inbox, "orders-acme", GOOD)

    return inbox, arrange


def _write_aged(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return age(path)


@row(
    where="inbox file (`DirectorySource`)",
    hostile="invalid JSON in returns.json",
    sees="sensor warning: payload at <inbox>/returns.json is skipped: invalid JSON in <inbox>/returns.json: <orjson's "
    "reason with line and column>; once per version of the file",
    goes_on=GOES_ON,
    kept=KEPT,
)
def inbox_invalid_json(env: Env) -> None:
    inbox, arrange = _inbox_with(env, lambda inbox: _write_aged(inbox / "returns.json", b'{"v": 1,'))
    path = inbox / "returns.json"
    harness, _ = sensor_goes_on(env, source=DirectorySource(inbox), arrange=arrange,
                                names=[f"payload at {path} is skipped: invalid JSON in {path}: "])
    assert harness.tick().run_requests == [] and env.logged("WARNING") == ""  # logged once per version


@row(
    where="inbox file (`DirectorySource`)",
    hostile="a file that is not UTF-8 (a Latin-1 byte in a string)",
    sees="sensor warning: payload at <inbox>/returns.json is skipped: invalid JSON in <inbox>/returns.json: str is "
    "not valid UTF-8: ...",
    goes_on=GOES_ON,
    kept=KEPT,
)
def inbox_not_utf8(env: Env) -> None:
    inbox, arrange = _inbox_with(env, lambda inbox: _write_aged(inbox / "returns.json", b'{"v": "caf\xe9"}'))
    path = inbox / "returns.json"
    sensor_goes_on(env, source=DirectorySource(inbox), arrange=arrange,
                   names=[f"payload at {path} is skipped: invalid JSON in {path}: str is not valid UTF-8"])


@row(
    where="inbox file (`DirectorySource`)",
    hostile="a file over `max_payload_bytes`",
    sees="sensor warning: payload at <inbox>/returns.json is skipped: <inbox>/returns.json is 2011 bytes, over "
    "max_payload_bytes=1000; the file is never read",
    goes_on=GOES_ON,
    kept=KEPT,
)
def inbox_too_big(env: Env) -> None:
    blob = json.dumps({"v": 1, "blob": "x" * 2000}).encode()

    def unreadable_and_too_big(inbox: Path) -> None:
        os.chmod(_write_aged(inbox / "returns.json", blob), 0)  # opening it would be "Permission denied"

    inbox, arrange = _inbox_with(env, unreadable_and_too_big)
    path = inbox / "returns.json"
    with file_permissions_enforced():
        sensor_goes_on(env, source=DirectorySource(inbox), arrange=arrange, max_payload_bytes=1000,
                       names=[f"{path} is {len(blob)} bytes, over max_payload_bytes=1000"])


@row(
    where="inbox file (`DirectorySource`)",
    hostile="a 31-digit integer (beyond 64 bits) in a payload file",
    sees="nothing to refuse: the integer is read exactly (orjson alone reads 10**30 + 1 as 1e+30; a document with a "
    "run of 19 digits is decoded again by the standard library), so a file that differs only in its last digit is a "
    "change and gets its own run. The same holds for `S3Source`, `SQSSource` and the Lambda handler; an integer of "
    "over 4300 digits makes the item bad: cannot read <location>: it holds an integer of more than 4300 digits, "
    "which Python refuses to read",
    goes_on=GOES_ON + "; the next one requests the changed file's run",
    kept=KEPT + "; the stored payload holds the exact integer",
)
def inbox_integer_beyond_64_bits(env: Env) -> None:
    orders, returns = _seeded(env)
    exact, nearby = {"v": 1, "n": 10**30 + 1}, {"v": 1, "n": 10**30 + 2}
    inbox, arrange = _inbox_with(env, lambda inbox: _write_aged(inbox / "returns.json", json.dumps(exact).encode()))
    harness = env.sensor([orders, returns], DirectorySource(inbox))
    arrange()
    before = env.snapshot()
    requested = {request.tags["dotflow/workflow_id"]: request.partition_key for request in harness.tick().run_requests}
    assert requested == {"orders-acme": orders.fingerprint(GOOD), "returns": returns.fingerprint(exact)}
    stored = returns.ledger(store=env.store).get_payload(returns.fingerprint(exact))
    assert stored == exact and type(stored["n"]) is int
    drop(inbox, "returns", nearby)
    assert [request.partition_key for request in harness.tick().run_requests] == [returns.fingerprint(nearby)]
    assert_nothing_lost(before, env.snapshot())


@row(
    where="inbox file (`DirectorySource`)",
    hostile="the inbox path is a file (a directory is expected)",
    sees="the tick fails: `NotADirectoryError`: payload directory <path> is not a directory (a missing one: "
    "`FileNotFoundError` ... does not exist: create it, or fix DirectorySource's path); never an empty inbox",
    goes_on="the next tick after the path is fixed requests the payloads waiting there",
    kept=KEPT + "; the failed tick writes nothing",
)
def inbox_path_is_a_file(env: Env) -> None:
    orders, returns = _seeded(env)
    inbox = env.scratch / "inbox"
    harness = env.sensor([orders, returns], DirectorySource(inbox))
    before = env.snapshot()
    for make, error_type, message in [
        (lambda: None, FileNotFoundError,
         f"payload directory {inbox} does not exist: create it, or fix DirectorySource's path"),
        (lambda: inbox.write_text("not a directory"), NotADirectoryError, f"payload directory {inbox} is not a directory"),
    ]:
        make()
        try:
            harness.tick()
        except error_type as error:
            assert str(error) == message
        else:
            raise AssertionError(f"{message}: the tick must fail")
        assert env.snapshot() == before
    inbox.unlink()
    inbox.mkdir()
    drop(inbox, "orders-acme", GOOD)
    assert [request.partition_key for request in harness.tick().run_requests] == [orders.fingerprint(GOOD)]
    assert_nothing_lost(before, env.snapshot())


def _unreadable(inbox: Path) -> Path:
    path = _write_aged(inbox / "returns.json", json.dumps({"v": 5}).encode())
    os.chmod(path, 0)
    return path


@row(
    where="inbox file (`DirectorySource`)",
    hostile="a file without read permission",
    sees="sensor warning: payload at <inbox>/returns.json is skipped: cannot read <inbox>/returns.json: Permission "
    "denied",
    goes_on=GOES_ON,
    kept=KEPT,
)
def inbox_unreadable(env: Env) -> None:
    inbox, arrange = _inbox_with(env, _unreadable)
    path = inbox / "returns.json"
    with file_permissions_enforced():
        sensor_goes_on(env, source=DirectorySource(inbox), arrange=arrange,
                       names=[f"payload at {path} is skipped: cannot read {path}: Permission denied"])


@row(
    where="inbox file (`DirectorySource`)",
    hostile="that unreadable file made readable again (`chmod 644`, content unchanged)",
    sees="nothing to refuse: the chmod changed the file's ctime, which is part of its version "
    "(`mtime_ns:ctime_ns:size`), so the next tick reads it and requests its run",
    goes_on="the other payloads go on; the next tick requests the file's run",
    kept=KEPT,
)
def inbox_readable_again(env: Env) -> None:
    orders, returns = _seeded(env)
    inbox = env.inbox()
    harness = env.sensor([orders, returns], DirectorySource(inbox))
    path = _unreadable(inbox)
    with file_permissions_enforced():
        assert harness.tick().run_requests == []
    before = env.snapshot()
    os.chmod(path, 0o644)
    assert [request.partition_key for request in harness.tick().run_requests] == [returns.fingerprint({"v": 5})]
    assert harness.tick().run_requests == []  # read once, not on every tick
    assert_nothing_lost(before, env.snapshot())


@row(
    where="inbox file (`DirectorySource`)",
    hostile="a file deleted between the listing and its read (mid-scan)",
    sees="nothing, by design: the item is gone, so it is skipped without a warning; written again, it is read on the "
    "next tick",
    goes_on=GOES_ON + "; the re-written file's run is requested next tick",
    kept=KEPT,
)
def inbox_file_vanishes_mid_scan(env: Env) -> None:
    inbox = env.inbox()
    path = inbox / "returns.json"
    source = RacingSource(DirectorySource(inbox), interfere=lambda: path.unlink(missing_ok=True))

    def arrange() -> None:
        drop(inbox, "returns", {"v": 6})
        drop(inbox, "orders-acme", GOOD)

    harness, _ = sensor_goes_on(env, source=source, arrange=arrange, names=[])
    assert env.logged("WARNING") == "" and env.logged("ERROR") == ""
    _, returns = _workflows()
    source.interfere = lambda: None
    drop(inbox, "returns", {"v": 6})
    assert [request.partition_key for request in harness.tick().run_requests] == [returns.fingerprint({"v": 6})]


@row(
    where="workflow id (an inbox file name)",
    hostile="a 129-character file name (`x…x.json`)",
    sees="sensor warning: payload at <inbox>/xxx….json is skipped: <path>: invalid workflow_id 'xxx…': use 1-128 "
    "characters of letters, digits, '.', '_' or '-', not '.' or '..'",
    goes_on=GOES_ON,
    kept=KEPT,
)
def inbox_workflow_id_too_long(env: Env) -> None:
    name = "x" * 129
    inbox, arrange = _inbox_with(env, lambda inbox: _write_aged(inbox / f"{name}.json", b'{"v": 1}'))
    sensor_goes_on(env, source=DirectorySource(inbox), arrange=arrange,
                   names=[f"{inbox / name}.json is skipped: {inbox / name}.json: invalid workflow_id '{name}'"])


# -- S3 objects --------------------------------------------------------------------------------------


def _s3(env: Env) -> Any:
    return boto3.client("s3", endpoint_url=env.endpoint, region_name=REGION, **CREDENTIALS)


def _bucket(s3: Any) -> str:
    name = f"bad-inputs-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def _with_good_object(s3: Any, bucket: str, bad: Callable[[], None]) -> Callable[[], None]:
    def arrange() -> None:
        bad()
        s3.put_object(Bucket=bucket, Key="inbox/orders-acme.json", Body=json.dumps(GOOD))

    return arrange


@row(
    where="S3 object (`S3Source`)",
    hostile="invalid JSON in s3://<bucket>/inbox/returns.json",
    sees="sensor warning: payload at s3://<bucket>/inbox/returns.json is skipped: invalid JSON in "
    "s3://<bucket>/inbox/returns.json: ...; once per ETag",
    goes_on=GOES_ON,
    kept=KEPT,
    needs_moto=True,
)
def s3_invalid_json(env: Env) -> None:
    s3 = _s3(env)
    bucket = _bucket(s3)
    location = f"s3://{bucket}/inbox/returns.json"
    arrange = _with_good_object(s3, bucket, lambda: s3.put_object(Bucket=bucket, Key="inbox/returns.json", Body=b"{"))
    harness, _ = sensor_goes_on(env, source=S3Source(bucket, "inbox/", s3=s3), arrange=arrange,
                                names=[f"payload at {location} is skipped: invalid JSON in {location}: "])
    assert harness.tick().run_requests == [] and env.logged("WARNING") == ""


@row(
    where="S3 object (`S3Source`)",
    hostile="an object over `max_payload_bytes`",
    sees="sensor warning: payload at s3://<bucket>/inbox/returns.json is skipped: s3://<bucket>/inbox/returns.json is "
    "2011 bytes, over max_payload_bytes=1000; it is never downloaded",
    goes_on=GOES_ON,
    kept=KEPT,
    needs_moto=True,
)
def s3_oversized(env: Env) -> None:
    s3 = _s3(env)
    bucket = _bucket(s3)
    gets: list[str] = []
    s3.meta.events.register("provide-client-params.s3.GetObject", lambda params, **_: gets.append(params["Key"]))
    blob = json.dumps({"v": 1, "blob": "x" * 2000}).encode()
    arrange = _with_good_object(s3, bucket, lambda: s3.put_object(Bucket=bucket, Key="inbox/returns.json", Body=blob))
    sensor_goes_on(env, source=S3Source(bucket, "inbox/", s3=s3), arrange=arrange, max_payload_bytes=1000,
                   names=[f"s3://{bucket}/inbox/returns.json is {len(blob)} bytes, over max_payload_bytes=1000"])
    assert gets == ["inbox/orders-acme.json"]


@row(
    where="S3 object (`S3Source`)",
    hostile="an object deleted between the listing and its download",
    sees="nothing, by design: the conditional GET finds no object (NoSuchKey or 412) and the item is skipped without "
    "a warning; uploaded again, it is read on the next tick",
    goes_on=GOES_ON + "; the re-uploaded object's run is requested next tick",
    kept=KEPT,
    needs_moto=True,
)
def s3_object_deleted_mid_scan(env: Env) -> None:
    s3 = _s3(env)
    bucket = _bucket(s3)
    key = "inbox/returns.json"
    source = RacingSource(S3Source(bucket, "inbox/", s3=s3), interfere=lambda: s3.delete_object(Bucket=bucket, Key=key))
    arrange = _with_good_object(s3, bucket, lambda: s3.put_object(Bucket=bucket, Key=key, Body=json.dumps({"v": 6})))
    harness, _ = sensor_goes_on(env, source=source, arrange=arrange, names=[])
    assert env.logged("WARNING") == "" and env.logged("ERROR") == ""
    _, returns = _workflows()
    source.interfere = lambda: None
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps({"v": 6}))
    assert [request.partition_key for request in harness.tick().run_requests] == [returns.fingerprint({"v": 6})]


# -- SQS messages ------------------------------------------------------------------------------------


class _Queue:
    """A fresh queue on the moto server, and an SQSSource that reads it without waiting."""

    def __init__(self, env: Env, **attributes: str) -> None:
        self.sqs = boto3.client("sqs", endpoint_url=env.endpoint, region_name=REGION, **CREDENTIALS)
        self.url = self.sqs.create_queue(QueueName=f"bad-inputs-{uuid.uuid4().hex[:12]}",
                                         Attributes=attributes)["QueueUrl"]
        self.source = SQSSource(self.url, client=self.sqs)
        self.source.wait_time_seconds = 0
        self.source.visibility_timeout_seconds = 0  # a message left in the queue is received again at once

    def send(self, body: Any) -> str:
        text = body if isinstance(body, str) else json.dumps(body)
        return self.sqs.send_message(QueueUrl=self.url, MessageBody=text)["MessageId"]

    def location(self, message_id: str) -> str:
        return f"sqs:{self.source.queue_name}:{message_id}"

    def bodies(self) -> list[str]:
        received = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        return [message["Body"] for message in received.get("Messages", [])]

    def arn(self) -> str:
        return self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _sqs_row(env: Env, body: Any, *, reason: str) -> None:
    """One bad message and one good one: the good one is requested and deleted, the bad one named and left."""
    queue = _Queue(env)
    sent: list[str] = []

    def arrange() -> None:
        sent.append(queue.send(body))
        queue.send({"workflow_id": "orders-acme", "payload": GOOD})

    orders, returns = _seeded(env)
    harness = env.sensor([orders, returns], queue.source)
    arrange()
    before = env.snapshot()
    result = harness.tick()
    assert [request.partition_key for request in result.run_requests] == [orders.fingerprint(GOOD)]
    location = queue.location(sent[0])
    log = env.logged("WARNING")
    assert f"payload at {location} is skipped: {reason.format(location=location)}" in log, log
    assert "(left in the queue, received 1 time(s)" in log, log
    assert_nothing_lost(before, env.snapshot())
    text = body if isinstance(body, str) else json.dumps(body)
    assert queue.bodies() == [text]  # the good message was deleted, the bad one is left for the redrive queue


@row(
    where="SQS message (`SQSSource`)",
    hostile="a body that is not JSON",
    sees="sensor warning: payload at sqs:<queue>:<MessageId> is skipped: invalid JSON in message sqs:<queue>:<id>: "
    "... (left in the queue, received 1 time(s): its redrive policy, if any, moves it to the dead-letter queue)",
    goes_on=GOES_ON + "; the good message is deleted, the bad one never is",
    kept=KEPT,
    needs_moto=True,
)
def sqs_body_not_json(env: Env) -> None:
    _sqs_row(env, '{"workflow_id": "returns", "payload": ', reason="invalid JSON in message {location}: ")


@row(
    where="SQS message (`SQSSource`)",
    hostile="a body that is JSON but not an object (`[1, 2, 3]`)",
    sees="sensor warning: ... is skipped: message sqs:<queue>:<id> is an array, not an object {\"workflow_id\": ..., "
    "\"payload\": ...} (left in the queue, ...)",
    goes_on=GOES_ON + "; the good message is deleted, the bad one never is",
    kept=KEPT,
    needs_moto=True,
)
def sqs_body_not_an_object(env: Env) -> None:
    _sqs_row(env, "[1, 2, 3]", reason="message {location} is an array, not an object")


@row(
    where="workflow id (an SQS message field)",
    hostile="`\"workflow_id\": \"../../etc/passwd\"` (path traversal)",
    sees="sensor warning: ... is skipped: message sqs:<queue>:<id>: invalid workflow_id '../../etc/passwd': use 1-128 "
    "characters ... (left in the queue, ...)",
    goes_on=GOES_ON + "; the good message is deleted, the bad one never is",
    kept=KEPT + "; nothing is written outside the store's own keys",
    needs_moto=True,
)
def sqs_workflow_id_traversal(env: Env) -> None:
    _sqs_row(env, {"workflow_id": "../../etc/passwd", "payload": {"v": 1}},
             reason="message {location}: invalid workflow_id '../../etc/passwd': use 1-128 characters")


@row(
    where="workflow id (an SQS message field)",
    hostile="`\"workflow_id\": 7` (not a string)",
    sees="sensor warning: ... is skipped: message sqs:<queue>:<id>: invalid workflow_id 7: use 1-128 characters ... "
    "(left in the queue, ...)",
    goes_on=GOES_ON + "; the good message is deleted, the bad one never is",
    kept=KEPT,
    needs_moto=True,
)
def sqs_workflow_id_not_a_string(env: Env) -> None:
    _sqs_row(env, {"workflow_id": 7, "payload": {"v": 1}}, reason="message {location}: invalid workflow_id 7: ")


@row(
    where="SQS message (`SQSSource`)",
    hostile="a poison message on a queue with a redrive policy (`maxReceiveCount` 2)",
    sees="one sensor warning per receive naming its MessageId (\"received 1 time(s)\", then 2); then SQS moves it to "
    "the dead-letter queue, unchanged",
    goes_on=GOES_ON + " and every later tick runs normally",
    kept=KEPT,
    needs_moto=True,
)
def sqs_poison_to_dead_letters(env: Env) -> None:
    dead_letters = _Queue(env)
    redrive = json.dumps({"deadLetterTargetArn": dead_letters.arn(), "maxReceiveCount": "2"})
    queue = _Queue(env, RedrivePolicy=redrive)
    sent: list[str] = []

    def arrange() -> None:
        sent.append(queue.send("not json"))
        queue.send({"workflow_id": "orders-acme", "payload": GOOD})

    harness, _ = sensor_goes_on(env, source=queue.source, arrange=arrange, names=["received 1 time(s)"])
    assert harness.tick().run_requests == []
    log = env.logged("WARNING")
    assert f"{queue.location(sent[0])} is skipped: invalid JSON" in log and "received 2 time(s)" in log, log
    assert harness.tick().run_requests == [] and env.logged("WARNING") == ""  # moved: no longer received
    assert queue.bodies() == [] and dead_letters.bodies() == ["not json"]
