"""The core against hostile steps and environments: each test is one class of defect found by probing."""

import dataclasses
import multiprocessing
import pickle

import orjson
import pydantic
import pytest
from dotflow import action
from dotflow.providers.server_default import ServerDefault

from dotflow_dagster import DotflowWorkflow, InputChangedError, LocalStore, StepFailedError
from dotflow_dagster.ledger import Ledger
from tests.support.flow import make_workflow


def test_dotflows_server_provider_never_sends_the_payload_out(store, monkeypatch, tmp_path):
    """With SERVER_BASE_URL/SERVER_USER_TOKEN set, dotflow's default server POSTs every task,
    initial_context (the payload, secrets included) among it. Ours must stay silent, and must not
    read ~/.dotflow either (an unreadable HOME used to fail the run)."""
    sent: list[tuple[str, object]] = []
    monkeypatch.setattr(ServerDefault, "_post", lambda self, url, json: sent.append((url, json)))
    monkeypatch.setattr(ServerDefault, "_patch", lambda self, url, json: sent.append((url, json)))
    monkeypatch.setenv("SERVER_BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SERVER_USER_TOKEN", "token")
    unreadable_home = tmp_path / "home-is-a-file"
    unreadable_home.write_text("")
    monkeypatch.setenv("HOME", str(unreadable_home))

    report = make_workflow().run({"v": 1, "token": "s3cr3t"}, store=store)

    assert report.ok and report.executed == ["extract", "transform", "load"]
    assert sent == []


def _raise_step_failed(store_path: str) -> None:
    make_workflow().run({"v": 1}, store=LocalStore(store_path), raise_on_failure=True)


def test_step_failed_error_crosses_a_multiprocessing_pool(tmp_path, monkeypatch):
    """A Pool worker that raised StepFailedError used to hang the pool: the error did not unpickle."""
    monkeypatch.setenv("DOTFLOW_TEST_FAIL", "transform")
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pending = pool.apply_async(_raise_step_failed, (str(tmp_path / "store"),))
        with pytest.raises(StepFailedError) as raised:
            pending.get(timeout=60)
    assert raised.value.report.failed_step == "transform"
    assert "transform failed on purpose" in str(raised.value)
    copy = pickle.loads(pickle.dumps(raised.value))
    assert str(copy) == str(raised.value) and copy.report.fingerprint == raised.value.report.fingerprint


def test_a_step_with_a_dotflow_timeout_is_refused_with_the_reason():
    """dotflow's timeout leaves the step running in a thread; a rerun would execute it twice at once."""

    @action(timeout=5)
    def slow(initial_context):
        return 1

    with pytest.raises(ValueError) as refused:
        DotflowWorkflow("timeouts", steps=[slow])
    message = str(refused.value)
    assert "'timeouts'" in message and "'slow'" in message and "timeout=5" in message
    assert "dagster/max_runtime" in message


def test_steps_see_the_payload_as_fingerprinted_whatever_earlier_steps_did(store):
    @action
    def vandal(initial_context):
        initial_context.storage["region"] = "MUTATED"
        initial_context.storage["items"].append("extra")
        return "done"

    @action
    def reader(initial_context, previous_context):
        return {"region": initial_context.storage["region"], "items": list(initial_context.storage["items"])}

    workflow = DotflowWorkflow("mutation", steps=[vandal, reader])
    payload = {"region": "EU", "items": ["a"]}
    fresh = workflow.run(payload, store=store)
    assert payload == {"region": "EU", "items": ["a"]}  # the caller's object is untouched
    assert fresh.result == {"region": "EU", "items": ["a"]}
    assert workflow.fingerprint(payload) == fresh.fingerprint

    # A resumed run (reader only) sees exactly what the fresh run's reader saw.
    attempts = []

    @action
    def flaky_reader(initial_context, previous_context):
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("first attempt fails")
        return {"region": initial_context.storage["region"], "items": list(initial_context.storage["items"])}

    other = DotflowWorkflow("mutation-resume", steps=[vandal, flaky_reader])
    failed = other.run(payload, store=store)
    resumed = other.run(payload, store=store)
    assert failed.failed_step == "flaky_reader" and resumed.resumed == ["vandal"]
    assert resumed.result == fresh.result


class _RefusesToPickle:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __reduce__(self):
        raise self.error


@pytest.mark.parametrize(
    "result_factory, error_name",
    [
        (lambda: _RefusesToPickle(ValueError("no")), "ValueError"),
        (lambda: _RefusesToPickle(RuntimeError("no")), "RuntimeError"),
        (lambda: _deep_list(100_000), "RecursionError"),
    ],
)
def test_every_failure_to_checkpoint_fails_the_step_and_settles_the_ledger(store, result_factory, error_name):
    @action
    def produce(initial_context):
        return result_factory()

    workflow = DotflowWorkflow("checkpoints", steps=[produce])
    report = workflow.run({"v": 1}, store=store)
    assert not report.ok and report.failed_step == "produce"
    assert "cannot be checkpointed" in report.error and error_name in report.error
    entry = workflow.state(store=store).history[-1]
    assert entry.outcome == "failed at produce"  # never left at "running"


def _deep_list(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("retention", [True, False, 1.5, -1, "3"])
def test_retention_must_be_a_plain_non_negative_integer(retention):
    with pytest.raises(ValueError, match="retention"):
        make_workflow(retention=retention)


def test_a_ledger_written_by_a_newer_version_is_read_and_its_extra_fields_kept(store):
    workflow = make_workflow()
    workflow.run({"v": 1}, store=store)
    ledger = Ledger(store=store, workflow_id="orders-acme")
    document = orjson.loads(store.read_bytes(ledger.ledger_key))
    document["written_by"] = "dotflow_dagster 9.0"
    document["history"][0]["cost_usd"] = 0.25
    store.write_bytes(ledger.ledger_key, orjson.dumps(document))

    report = workflow.run({"v": 2}, store=store)

    assert report.decision == "reset"
    rewritten = orjson.loads(store.read_bytes(ledger.ledger_key))
    assert rewritten["written_by"] == "dotflow_dagster 9.0"
    assert rewritten["history"][0]["cost_usd"] == 0.25
    assert [entry["decision"] for entry in rewritten["history"]] == ["new", "reset"]


@dataclasses.dataclass(frozen=True)
class Credentials:
    user: str
    token: str


class PydanticCredentials(pydantic.BaseModel):
    user: str
    token: str


@pytest.mark.parametrize(
    "make, path",
    [
        (Credentials, "root['c'].token"),
        (Credentials, "root['c']['token']"),
        (PydanticCredentials, "root['c']['token']"),
        (PydanticCredentials, "root['c'].token"),
    ],
)
def test_secrets_in_dataclass_and_pydantic_fields_stay_redacted_everywhere(store, make, path):
    from dotflow_dagster.metadata import report_metadata

    workflow = DotflowWorkflow("secrets", steps=[_identity], on_input_change="raise", redact_paths=[path])
    first = workflow.run({"c": make(user="ann", token="s3cr3t-one"), "v": 1}, store=store)
    with pytest.raises(InputChangedError) as refused:
        workflow.run({"c": make(user="bob", token="s3cr3t-two"), "v": 2}, store=store)

    shown = [str(refused.value), refused.value.diff_text, repr(first.payload), str(report_metadata(first))]
    assert not any("s3cr3t" in text for text in shown), shown
    assert "'ann' -> 'bob'" in refused.value.diff_text  # the rest of the change is still shown
    assert "(redacted value changed)" in refused.value.diff_text


@action
def _identity(initial_context):
    return initial_context.storage["v"]
