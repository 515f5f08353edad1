"""payload_change_sensor with build_sensor_context on a persistent test instance and a real inbox."""

import json
import os
from pathlib import Path

import pytest
from dagster import (
    AddDynamicPartitionsRequest,
    DeleteDynamicPartitionsRequest,
    build_sensor_context,
    materialize,
)
from dotflow import action

from dotflow_dagster import DirectorySource, DotflowResource, DotflowWorkflow, dotflow_asset, payload_change_sensor
from tests.support.flow import extract, make_workflow

PARTITIONS = "orders_acme_fingerprints"
A, B, C = {"v": 1}, {"v": 2}, {"v": 3}


@pytest.fixture
def inbox(tmp_path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def resource(tmp_path) -> DotflowResource:
    return DotflowResource(base_dir=str(tmp_path / "store"), lock_timeout_seconds=30)


def drop(inbox: Path, workflow_id: str, payload, *, raw: str | None = None) -> Path:
    """Write a payload the documented way: a temporary name, then a rename into the inbox."""
    target = inbox / f"{workflow_id}.json"
    temporary = inbox / f".{workflow_id}.json.tmp"
    temporary.write_text(raw if raw is not None else json.dumps(payload))
    os.replace(temporary, target)
    stamp = target.stat().st_mtime_ns + 2_000_000_000  # distinct mtimes even within one clock tick
    os.utime(target, ns=(stamp, stamp))
    return target


class Harness:
    """Ticks the sensor as the daemon would: applies its partition requests, keeps its cursor."""

    def __init__(self, sensor_def, *, instance, resource) -> None:
        self.sensor_def, self.instance, self.resource = sensor_def, instance, resource
        self.cursor = None

    def tick(self):
        # A context manager: a DotflowResource with a nested S3Resource is set up like a generator.
        with build_sensor_context(
            instance=self.instance, resources={"dotflow": self.resource}, cursor=self.cursor
        ) as context:
            result = self.sensor_def(context)
        for request in result.dynamic_partitions_requests or []:
            if isinstance(request, AddDynamicPartitionsRequest):
                self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            elif isinstance(request, DeleteDynamicPartitionsRequest):
                for key in request.partition_keys:
                    self.instance.delete_dynamic_partition(request.partitions_def_name, key)
        self.cursor = result.cursor
        return result

    def run(self, request, workflow):
        """Launch a requested run as the daemon would: the asset partition, with the request's tags."""
        return materialize(
            [dotflow_asset(workflow)], partition_key=request.partition_key, instance=self.instance,
            resources={"dotflow": self.resource}, tags=request.tags, raise_on_error=False,
        )


def harness(workflow, inbox, *, instance, resource, **options) -> Harness:
    sensor_def = payload_change_sensor([workflow], source=DirectorySource(inbox), **options)
    return Harness(sensor_def, instance=instance, resource=resource)


def test_a_new_payload_becomes_a_partition_and_a_tagged_run(inbox, instance, resource):
    workflow = make_workflow("reset")
    sensor = harness(workflow, inbox, instance=instance, resource=resource)
    drop(inbox, "orders-acme", A)

    result = sensor.tick()

    fingerprint = workflow.fingerprint(A)
    [request] = result.run_requests
    assert request.partition_key == fingerprint
    assert request.run_key == f"orders-acme:{fingerprint}:1"
    assert request.tags == {
        "dotflow/arrival": "sensor",
        "dotflow/workflow_id": "orders-acme",
        "dotflow/fingerprint": fingerprint,
        "dotflow/previous_fingerprint": "",
        "dotflow/expected_decision": "new",
    }
    [add] = result.dynamic_partitions_requests
    assert add.partitions_def_name == PARTITIONS and list(add.partition_keys) == [fingerprint]
    assert workflow.ledger(store=resource.get_store()).get_payload(fingerprint) == A
    assert sensor.run(request, workflow).success
    assert workflow.state(store=resource.get_store()).current_fingerprint == fingerprint


def test_an_unchanged_or_touched_file_gives_nothing_before_or_after_its_run(inbox, instance, resource):
    workflow = make_workflow()
    sensor = harness(workflow, inbox, instance=instance, resource=resource)
    path = drop(inbox, "orders-acme", A)
    [request] = sensor.tick().run_requests
    assert sensor.tick().run_requests == []  # repeated tick before the run
    path.touch()
    assert sensor.tick().run_requests == []  # touched, same content
    sensor.run(request, workflow)
    drop(inbox, "orders-acme", {"v": 1})  # rewritten with the same payload after the run
    assert sensor.tick().run_requests == []


@pytest.mark.parametrize(
    "policy, expected", [("reset", "reset"), ("reuse", "reuse"), ("raise", "raise"), (lambda change: "reset", "hook")]
)
def test_a_changed_payload_is_requested_with_the_policys_expected_decision(inbox, instance, resource, policy, expected):
    workflow = make_workflow(policy)
    sensor = harness(workflow, inbox, instance=instance, resource=resource)
    drop(inbox, "orders-acme", A)
    sensor.run(sensor.tick().run_requests[0], workflow)
    drop(inbox, "orders-acme", B)

    [request] = sensor.tick().run_requests

    assert request.partition_key == workflow.fingerprint(B)
    assert request.tags["dotflow/expected_decision"] == expected
    assert request.tags["dotflow/previous_fingerprint"] == workflow.fingerprint(A)
    outcome = sensor.run(request, workflow)
    assert outcome.success == (expected != "raise")  # raise: the policy-driven failure, visible in the UI
    if expected == "raise":
        drop(inbox, "orders-acme", B)  # a refused payload touched again never repeats its run
        assert sensor.tick().run_requests == []


def warnings_logged(capfd) -> str:
    """What the sensor logged at warning level (Dagster's instigation logger writes to stderr)."""
    return "\n".join(line for line in capfd.readouterr().err.splitlines() if " - WARNING - " in line)


def test_bad_files_among_good_ones_are_logged_once_and_stop_nothing(inbox, instance, resource, capfd):
    good = make_workflow()
    sensor = harness(good, inbox, instance=instance, resource=resource, max_payload_bytes=1000)
    drop(inbox, "orders-acme", A)
    drop(inbox, "not-json", None, raw="{broken")
    drop(inbox, "unknown-workflow", {"v": 1})
    drop(inbox, "big", {"blob": "x" * 2000})
    (inbox / "bad name!.json").write_text("{}")
    old = (inbox / "bad name!.json").stat().st_mtime_ns - 5_000_000_000
    os.utime(inbox / "bad name!.json", ns=(old, old))
    os.utime(inbox / "not-json.json", ns=(old, old))
    capfd.readouterr()

    result = sensor.tick()

    assert [request.partition_key for request in result.run_requests] == [good.fingerprint(A)]
    warnings = warnings_logged(capfd)
    assert "not-json.json" in warnings and "invalid JSON" in warnings
    assert "unknown-workflow" in warnings and "no workflow 'unknown-workflow'" in warnings
    assert "big.json" in warnings and "max_payload_bytes=1000" in warnings
    assert "bad name!.json" in warnings
    assert sensor.tick().run_requests == []
    assert warnings_logged(capfd) == ""  # once per change of the file


def test_an_unfingerprintable_payload_is_a_bad_item(inbox, instance, resource, capfd):
    workflow = make_workflow()
    sensor = harness(workflow, inbox, instance=instance, resource=resource)
    drop(inbox, "orders-acme", {"v": 1, "deep": _deep(300)})
    capfd.readouterr()
    assert sensor.tick().run_requests == []
    warnings = warnings_logged(capfd)
    assert "orders-acme.json" in warnings and "nested" in warnings


def _deep(depth: int):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def test_losing_the_cursor_never_repeats_a_run(inbox, instance, resource):
    workflow = make_workflow()
    sensor = harness(workflow, inbox, instance=instance, resource=resource)
    drop(inbox, "orders-acme", A)
    [request] = sensor.tick().run_requests
    sensor.cursor = None
    assert sensor.tick().run_requests == []
    sensor.run(request, workflow)
    sensor.cursor = None
    assert sensor.tick().run_requests == []


STATE_KEY = "sensors/dotflow_payload_sensor/state.json"


def test_versions_of_the_format_before_ctime_read_every_file_once_and_request_nothing(inbox, instance, resource):
    orders, returns = make_workflow(), DotflowWorkflow("returns", steps=[extract])
    sensor = Harness(payload_change_sensor([orders, returns], source=DirectorySource(inbox)), instance=instance,
                     resource=resource)
    drop(inbox, "orders-acme", A)
    [ran] = sensor.tick().run_requests
    assert sensor.run(ran, orders).success
    drop(inbox, "returns", B)
    assert len(sensor.tick().run_requests) == 1  # requested, not run yet
    store = resource.get_store()
    state = json.loads(store.read_bytes(STATE_KEY))
    # As versions were written before the ctime was part of them: "<mtime_ns>:<size>".
    state["versions"] = {
        location: f"{os.stat(location).st_mtime_ns}:{os.stat(location).st_size}" for location in state["versions"]
    }
    store.write_bytes(STATE_KEY, json.dumps(state).encode())

    assert sensor.tick().run_requests == []  # both files read again, both dropped by fingerprint
    upgraded = json.loads(store.read_bytes(STATE_KEY))["versions"]
    assert sorted(version.count(":") for version in upgraded.values()) == [2, 2]
    assert sensor.tick().run_requests == []


@pytest.mark.parametrize(
    "damaged",
    [
        b'{"versions": {"/srv/in',  # truncated
        b"[]",
        b'{"format": 1, "versions": [], "requested": {}, "pending": []}',
        b'{"requested": {"returns": {"fingerprint": 7, "decisions": 0, "issued": 1}}}',
    ],
    ids=["truncated", "array", "versions-list", "requested-shape"],
)
def test_a_damaged_state_is_logged_and_the_sensor_starts_afresh_without_a_new_run(
    inbox, instance, resource, capfd, damaged
):
    orders, returns = make_workflow(), DotflowWorkflow("returns", steps=[extract])
    sensor = Harness(payload_change_sensor([orders, returns], source=DirectorySource(inbox)), instance=instance,
                     resource=resource)
    drop(inbox, "orders-acme", A)
    [ran] = sensor.tick().run_requests
    assert sensor.run(ran, orders).success  # decided: the ledger's current input
    drop(inbox, "returns", B)
    [queued] = sensor.tick().run_requests  # requested, not run yet
    store = resource.get_store()
    store.write_bytes(STATE_KEY, damaged)
    capfd.readouterr()

    result = sensor.tick()

    errors = "\n".join(line for line in capfd.readouterr().err.splitlines() if " - ERROR - " in line)
    assert f"sensor dotflow_payload_sensor: its state {STATE_KEY} in {store.location} cannot be read (" in errors
    assert "starting from an empty state" in errors
    # Both files read again: the decided payload is dropped, the queued one keeps its run key (Dagster skips it).
    assert [request.run_key for request in result.run_requests] == [queued.run_key]
    assert json.loads(store.read_bytes(STATE_KEY))["requested"]["returns"]["fingerprint"] == returns.fingerprint(B)
    assert sensor.tick().run_requests == []
    assert " - ERROR - " not in capfd.readouterr().err  # the damaged document was replaced


def test_a_to_b_to_a_gets_a_fresh_run_that_executes_every_step_again(inbox, instance, resource, side_effects):
    workflow = make_workflow("reset")
    sensor = harness(workflow, inbox, instance=instance, resource=resource)
    keys = []
    for payload in (A, B, A):
        drop(inbox, "orders-acme", payload)
        [request] = sensor.tick().run_requests
        keys.append(request.run_key)
        assert sensor.run(request, workflow).success
    assert len(set(keys)) == 3
    assert side_effects()["load v=1"] == 2


def test_a_b_c_b_before_any_run_gives_the_second_b_a_fresh_key(inbox, instance, resource):
    workflow = make_workflow("reset")
    sensor = harness(workflow, inbox, instance=instance, resource=resource)
    keys = []
    for payload in (A, B, C, B):
        drop(inbox, "orders-acme", payload)
        [request] = sensor.tick().run_requests
        keys.append(request.run_key)
    b = workflow.fingerprint(B)
    assert keys[1] == f"orders-acme:{b}:2" and keys[3] == f"orders-acme:{b}:4"


def queue(instance, request) -> None:
    """Record the run the daemon creates for ``request``, not started yet (as when it waits its turn)."""
    from dagster import DagsterRunStatus
    from dagster._core.test_utils import create_run_for_test

    create_run_for_test(instance, job_name="orders_acme_arrivals", status=DagsterRunStatus.NOT_STARTED, tags=request.tags)


def test_a_delivery_equal_to_the_current_input_runs_again_after_a_queued_run_of_another(inbox, instance, resource):
    """A runs and is current; B's run waits in the queue; A arrives last: the workflow must end on A."""
    workflow = make_workflow("reset")
    sensor = harness(workflow, inbox, instance=instance, resource=resource)
    drop(inbox, "orders-acme", A)
    [first] = sensor.tick().run_requests
    assert sensor.run(first, workflow).success
    drop(inbox, "orders-acme", B)
    [queued] = sensor.tick().run_requests
    queue(instance, queued)

    drop(inbox, "orders-acme", B)  # a duplicate of the queued input: it lands anyway
    assert sensor.tick().run_requests == []
    drop(inbox, "orders-acme", A)  # the current input again, after B: it must run after B
    [again] = sensor.tick().run_requests

    a = workflow.fingerprint(A)
    assert again.partition_key == a and again.run_key not in (first.run_key, queued.run_key)
    drop(inbox, "orders-acme", A)  # and now A is the last request: a duplicate again
    assert sensor.tick().run_requests == []


def test_the_current_input_delivered_again_with_nothing_queued_gets_no_run(inbox, instance, resource):
    workflow = make_workflow("reset")
    sensor = harness(workflow, inbox, instance=instance, resource=resource)
    for payload in (A, B):
        drop(inbox, "orders-acme", payload)
        [request] = sensor.tick().run_requests
        assert sensor.run(request, workflow).success
    drop(inbox, "orders-acme", B)
    assert sensor.tick().run_requests == []


def test_retention_prunes_old_partitions_and_payloads_but_never_what_may_still_run(inbox, instance, resource):
    workflow = make_workflow("reset", retention=1)
    store = resource.get_store()
    sensor = harness(workflow, inbox, instance=instance, resource=resource)
    fingerprints = []
    for value in (1, 2, 3):
        drop(inbox, "orders-acme", {"v": value})
        [request] = sensor.tick().run_requests
        fingerprints.append(request.partition_key)
        assert sensor.run(request, workflow).success
    sensor.tick()  # a tick that requests nothing still prunes once the runs moved the input
    first, second, third = fingerprints
    assert instance.get_dynamic_partitions(PARTITIONS) == [second, third]
    ledger = workflow.ledger(store=store)
    assert not store.exists(ledger.payload_key(first)) and store.exists(ledger.payload_key(second))
    with pytest.raises(Exception, match="no payload stored"):
        workflow.run_fingerprint(first, store=store)

    # A fingerprint with a queued run is never pruned, even beyond retention.
    drop(inbox, "orders-acme", {"v": 4})
    [queued] = sensor.tick().run_requests
    assert queued.partition_key in instance.get_dynamic_partitions(PARTITIONS)
    assert store.exists(ledger.payload_key(queued.partition_key))
    assert set(instance.get_dynamic_partitions(PARTITIONS)) >= {second, third, queued.partition_key}


def test_one_sensor_feeds_several_workflows_each_through_its_own_asset_job(inbox, instance, resource):
    from dagster import Definitions

    from dotflow_dagster import DotflowWorkflow

    orders, invoices = make_workflow(), DotflowWorkflow("invoices", steps=[_echo])
    sensor_def = payload_change_sensor([orders, invoices], source=DirectorySource(inbox), name="both")
    defs = Definitions(
        assets=[dotflow_asset(orders), dotflow_asset(invoices)], sensors=[sensor_def], resources={"dotflow": resource}
    )
    drop(inbox, "orders-acme", A)
    drop(inbox, "invoices", {"n": 7})
    Definitions.validate_loadable(defs)  # the arrivals jobs resolve against the assets
    with build_sensor_context(instance=instance, resources={"dotflow": resource}) as context:
        result = sensor_def(context)
    assert sorted(request.job_name for request in result.run_requests) == ["invoices_arrivals", "orders_acme_arrivals"]
    for request in result.dynamic_partitions_requests:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    for request in result.run_requests:
        outcome = defs.resolve_job_def(request.job_name).execute_in_process(
            partition_key=request.partition_key, tags=request.tags, instance=instance, resources={"dotflow": resource}
        )
        assert outcome.success
    assert invoices.state(store=resource.get_store()).current_fingerprint == invoices.fingerprint({"n": 7})


@action
def _echo(initial_context):
    return initial_context.storage


def test_one_identity_carrying_other_values_gets_no_run_and_one_warning(inbox, instance, resource, capfd):
    workflow = make_workflow(
        fingerprint_fn=lambda payload: f"order-{payload['id']}",
        validate_paths=["root['amount']"],
        redact_paths=["root['card']"],
    )
    sensor = harness(workflow, inbox, instance=instance, resource=resource)
    drop(inbox, "orders-acme", {"id": 7, "v": 1, "amount": 10, "card": "4111-secret"})
    [request] = sensor.tick().run_requests
    assert request.partition_key == "order-7"
    sensor.run(request, workflow)

    drop(inbox, "orders-acme", {"id": 7, "v": 1, "amount": 99, "card": "5500-secret"})
    capfd.readouterr()
    assert sensor.tick().run_requests == []
    warnings = warnings_logged(capfd)
    assert "orders-acme.json" in warnings and "'orders-acme'" in warnings and "root['amount']" in warnings
    assert "secret" not in warnings
    assert sensor.tick().run_requests == [] and warnings_logged(capfd) == ""  # once per change of the file


def test_run_tags_go_on_every_requested_run_under_the_sensors_own(inbox, instance, resource):
    workflow = make_workflow("reset")
    sensor = harness(workflow, inbox, instance=instance, resource=resource, run_tags={"dagster/max_retries": "2"})
    drop(inbox, "orders-acme", A)
    [request] = sensor.tick().run_requests
    assert request.tags["dagster/max_retries"] == "2"
    assert request.tags["dotflow/arrival"] == "sensor"


@pytest.mark.parametrize(
    ("run_tags", "error", "message"),
    [
        ({"dotflow/arrival": "submit"}, ValueError, "run tag 'dotflow/arrival' is refused"),
        ({"dagster/max_retries": 2}, TypeError, "run_tags must map strings to strings"),
    ],
)
def test_run_tags_cannot_pose_as_the_sensors_own_or_be_other_than_strings(inbox, run_tags, error, message):
    with pytest.raises(error, match=message):
        payload_change_sensor([make_workflow()], source=DirectorySource(inbox), run_tags=run_tags)
