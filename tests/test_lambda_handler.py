"""The SQS -> Lambda handler (example_project/lambda_handler.py) against a real moto S3 server.

Records are shaped like real SQS events (tests/fixtures/sqs_event_*.json); the answer is a
partial batch response, so every assertion is about which messageIds come back and what ran.
"""

import copy
import json
import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dotflow_dagster import S3Store
from example_project import lambda_handler
from tests.conftest import ROOT, subprocess_env
from tests.moto_server import MotoServer, moto_server_fixture  # noqa: F401
from tests.support.flow import make_workflow

FIXTURES = Path(__file__).resolve().parent / "fixtures"
LOGGER = "example_project.lambda_handler"
ALL_STEPS = ["extract", "transform", "load"]


def fixture_event(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"sqs_event_{name}.json").read_text())


def record(message_id: str, body: Any, **attributes: str) -> dict[str, Any]:
    """An SQS record like the fixtures' (same attributes), with this id and body (a dict is JSON-encoded)."""
    template = copy.deepcopy(fixture_event("orders_first")["Records"][0])
    template["messageId"] = message_id
    template["body"] = body if isinstance(body, str) else json.dumps(body)
    template["attributes"].update(attributes)
    return template


def acme(message_id: str, v: int, **attributes: str) -> dict[str, Any]:
    """A record for tests.support.flow's workflow ``orders-acme`` (its steps log to DOTFLOW_TEST_LOG)."""
    return record(message_id, {"workflow_id": "orders-acme", "payload": {"v": v, "api_token": "s3cr3t"}}, **attributes)


def failed_ids(response: dict[str, list[dict[str, str]]]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


@pytest.fixture
def s3_store(moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> S3Store:
    """A fresh bucket, as one Lambda container's store; the example's warehouse goes to tmp_path."""
    monkeypatch.setenv("ORDERS_DEMO_WAREHOUSE", str(tmp_path / "warehouse.sqlite"))
    return S3Store(moto_server.new_bucket(), "dotflow/", s3=moto_server.client())


@pytest.fixture
def acme_workflow(monkeypatch: pytest.MonkeyPatch) -> Callable[[str], None]:
    """Register tests.support.flow's ``orders-acme`` with the handler, under a given policy."""

    def register(policy: str = "reset") -> None:
        monkeypatch.setitem(lambda_handler.WORKFLOWS, "orders-acme", make_workflow(policy))

    register()
    return register


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], str]]:
    caplog.set_level(logging.INFO, logger=LOGGER)
    yield lambda: "\n".join(r.getMessage() for r in caplog.records if r.name == LOGGER)


def test_first_delivery_runs_everything_and_poison_records_fail_alone(s3_store, logs):
    response = lambda_handler.handle_batch(fixture_event("orders_first"), store=s3_store)

    # The order file ran; the truncated JSON and the unknown workflow come back, nothing else.
    assert failed_ids(response) == ["5f1c6a0e-3b7a-4c55-9a51-0c2f1d7e0002", "5f1c6a0e-3b7a-4c55-9a51-0c2f1d7e0003"]
    text = logs()
    assert "message 5f1c6a0e-3b7a-4c55-9a51-0c2f1d7e0001: workflow orders-demo new fingerprint" in text
    assert f"executed={ALL_STEPS} resumed=[]" in text
    assert "message 5f1c6a0e-3b7a-4c55-9a51-0c2f1d7e0002 failed: the body is not JSON" in text
    assert "message 5f1c6a0e-3b7a-4c55-9a51-0c2f1d7e0003 failed: unknown workflow_id 'invoices'" in text
    assert "demo-token" not in text  # payloads are never logged
    assert lambda_handler.orders_workflow.state(store=s3_store).current_fingerprint is not None

    # Redelivered (another received_at, which the fingerprint ignores): nothing runs; December resets.
    response = lambda_handler.handle_batch(fixture_event("orders_redelivered"), store=s3_store)
    assert failed_ids(response) == []
    text = logs()
    assert "message 5f1c6a0e-3b7a-4c55-9a51-0c2f1d7e0011: workflow orders-demo unchanged" in text
    assert f"executed=[] resumed={ALL_STEPS}" in text
    assert "message 5f1c6a0e-3b7a-4c55-9a51-0c2f1d7e0012: workflow orders-demo reset" in text


def test_a_redelivered_record_executes_nothing(s3_store, acme_workflow, side_effects):
    event = {"Records": [acme("m-1", 1)]}
    assert failed_ids(lambda_handler.handle_batch(event, store=s3_store)) == []
    assert side_effects() == {"extract v=1": 1, "transform v=1": 1, "load v=1": 1}

    event["Records"][0]["attributes"]["ApproximateReceiveCount"] = "2"
    assert failed_ids(lambda_handler.handle_batch(event, store=s3_store)) == []
    assert side_effects() == {"extract v=1": 1, "transform v=1": 1, "load v=1": 1}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json at all", "the body is not JSON"),
        ("[1, 2]", "the body is not an object"),
        (json.dumps({"payload": {"v": 1}}), "missing ['workflow_id']"),
        (json.dumps({"workflow_id": "orders-acme", "payload": {}, "extra": 1}), "unexpected fields ['extra']"),
        (json.dumps({"workflow_id": ["orders-acme"], "payload": {}}), "unknown workflow_id 'list'"),
        ('{"workflow_id": "orders-acme", "payload": {"v": ' + "7" * 5000 + "}}",
         "the body cannot be read: it holds an integer of more than 4300 digits, which Python refuses to read"),
    ],
)
def test_poison_bodies_fail_alone(s3_store, acme_workflow, side_effects, logs, body, reason):
    event = {"Records": [acme("good-1", 1), record("poison", body), acme("good-2", 2)]}
    assert failed_ids(lambda_handler.handle_batch(event, store=s3_store)) == ["poison"]
    failure = next(line for line in logs().splitlines() if line.startswith("message poison failed: "))
    assert reason in failure
    assert side_effects()["load v=2"] == 1  # the record after the poison one ran


def test_an_unfingerprintable_payload_fails_alone(s3_store, acme_workflow, logs, monkeypatch):
    # JSON has nothing unfingerprintable, so make the decoder hand over an object that is.
    real_decode = lambda_handler.decode_json
    monkeypatch.setattr(
        lambda_handler,
        "decode_json",
        lambda data: {"workflow_id": "orders-acme", "payload": {"v": object()}} if data == b"odd" else real_decode(data),
    )
    event = {"Records": [record("odd", "odd"), acme("good", 1)]}
    assert failed_ids(lambda_handler.handle_batch(event, store=s3_store)) == ["odd"]
    assert "message odd failed: the payload cannot be fingerprinted" in logs()
    assert "root['v']" in logs()


def test_integers_beyond_64_bits_stay_exact_so_a_change_in_their_last_digit_runs(
    s3_store, acme_workflow, side_effects, logs
):
    # orjson alone reads both as 1e+30: the second would be dropped as unchanged.
    event = {"Records": [acme("first", 10**30 + 1), acme("second", 10**30 + 2)]}
    assert failed_ids(lambda_handler.handle_batch(event, store=s3_store)) == []
    assert "message second: workflow orders-acme reset" in logs()
    assert side_effects()[f"load v={10**30 + 2}"] == 1


def test_a_raise_policy_refusal_fails_that_record(s3_store, acme_workflow, side_effects, logs):
    acme_workflow("raise")
    assert failed_ids(lambda_handler.handle_batch({"Records": [acme("first", 1)]}, store=s3_store)) == []

    event = {"Records": [acme("changed", 2), acme("same-again", 1)]}
    assert failed_ids(lambda_handler.handle_batch(event, store=s3_store)) == ["changed"]
    text = logs()
    assert "message changed failed: refused by on_input_change: input for workflow 'orders-acme' changed" in text
    assert "root['v']: 1 -> 2" in text  # the redacted diff names the change...
    assert "s3cr3t" not in text  # ...and no payload value outside it
    assert side_effects() == {"extract v=1": 1, "transform v=1": 1, "load v=1": 1}  # v=2 ran nothing


def test_a_run_in_progress_fails_that_record_alone(s3_store, moto_server, acme_workflow, side_effects, logs):
    # Another container (its own store object and client) holds orders-acme's lease in S3.
    other = S3Store(s3_store.bucket, s3_store.prefix, s3=moto_server.client())
    with other.run_lock("orders-acme"):
        event = {"Records": [acme("busy", 1), record("demo", fixture_event("orders_first")["Records"][0]["body"])]}
        assert failed_ids(lambda_handler.handle_batch(event, store=s3_store)) == ["busy"]
    assert "message busy failed: workflow 'orders-acme' is already running" in logs()
    assert side_effects() == {}

    # Once the other run is over, the redelivery runs it.
    assert failed_ids(lambda_handler.handle_batch({"Records": [acme("busy", 1)]}, store=s3_store)) == []
    assert side_effects()["load v=1"] == 1


def test_a_failed_step_fails_the_record_and_its_redelivery_resumes(
    s3_store, acme_workflow, side_effects, logs, monkeypatch
):
    monkeypatch.setenv("DOTFLOW_TEST_FAIL", "transform")
    event = {"Records": [acme("flaky", 1)]}
    assert failed_ids(lambda_handler.handle_batch(event, store=s3_store)) == ["flaky"]
    assert "message flaky failed: workflow orders-acme new" in logs()
    assert "failed at step 'transform'" in logs()

    monkeypatch.delenv("DOTFLOW_TEST_FAIL")
    assert failed_ids(lambda_handler.handle_batch(event, store=s3_store)) == []
    assert side_effects()["extract v=1"] == 1  # resumed, not executed again
    assert side_effects()["load v=1"] == 1


def test_fifo_records_after_a_failure_come_back_unprocessed(s3_store, acme_workflow, side_effects, logs):
    group = {"MessageGroupId": "orders-acme", "SequenceNumber": "1"}
    event = {"Records": [acme("a", 1, **group), record("b", "{", **group), acme("c", 2, **group)]}
    assert failed_ids(lambda_handler.handle_batch(event, store=s3_store)) == ["b", "c"]
    assert "message c not processed: an earlier FIFO message of the batch failed" in logs()
    assert "extract v=2" not in side_effects()


def _run_handler_module(code: str, env: dict[str, str]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=subprocess_env(**env), capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_the_lambda_entry_point_builds_its_store_from_the_environment(moto_server, tmp_path):
    # A fresh process, as a cold container: boto3's default client reaches moto via AWS_ENDPOINT_URL_S3.
    bucket = moto_server.new_bucket()
    code = (
        "import json, sys\n"
        "from example_project.lambda_handler import handler\n"
        f"event = json.load(open({str(FIXTURES / 'sqs_event_orders_first.json')!r}))\n"
        "first = handler(event, None)\n"
        "again = handler(event, None)\n"
        "print(json.dumps({'first': first, 'again': again}))\n"
    )
    env = {
        **moto_server.env(),
        "DOTFLOW_S3_BUCKET": bucket,
        "DOTFLOW_S3_PREFIX": "lambda/",
        "ORDERS_DEMO_WAREHOUSE": str(tmp_path / "w.sqlite"),
    }
    result = _run_handler_module(code, env)
    poison = ["5f1c6a0e-3b7a-4c55-9a51-0c2f1d7e0002", "5f1c6a0e-3b7a-4c55-9a51-0c2f1d7e0003"]
    assert failed_ids(result["first"]) == poison
    assert failed_ids(result["again"]) == poison
    listed = moto_server.client().list_objects_v2(Bucket=bucket, Prefix="lambda/workflows/orders-demo/")
    assert listed.get("KeyCount", 0) > 0  # the store lives where the environment said


def test_importing_the_handler_loads_no_dagster():
    code = (
        "import json, sys\n"
        "import example_project.lambda_handler\n"
        "loaded = sorted(m for m in sys.modules if m == 'dagster' or m.startswith(('dagster.', 'dagster_')))\n"
        "print(json.dumps({'dagster': loaded[:5]}))\n"
    )
    assert _run_handler_module(code, {})["dagster"] == []
