"""DotflowWorkflow: ids, step identity and names, modes, failures, run lock, stored payloads."""

import os
import uuid

import pytest
from dotflow import action

from dotflow_dagster import (
    DotflowWorkflow,
    LocalStore,
    RunInProgressError,
    StepFailedError,
    UnknownFingerprintError,
)
from dotflow_dagster.workflow import DOTFLOW_ID_NAMESPACE
from tests.support.flow import extract, load, make_workflow, transform


@pytest.mark.parametrize("bad_id", ["../x", "", "a" * 200, "a/b", ".", "..", "name with space", None, "é"])
def test_bad_workflow_ids_are_refused_by_name_and_write_nothing(tmp_path, bad_id):
    outside = tmp_path / "outside"
    outside.mkdir()
    with pytest.raises(ValueError) as raised:
        DotflowWorkflow(bad_id, steps=[extract])
    assert repr(bad_id) in str(raised.value)
    assert list(tmp_path.iterdir()) == [outside] and list(outside.iterdir()) == []


def test_store_keys_cannot_climb_out_of_the_store(tmp_path):
    store = LocalStore(tmp_path / "store")
    for key in ("../escape", "a/../../escape", "/abs", "a//b", "a/./b"):
        with pytest.raises(ValueError, match="store key"):
            store.write_bytes(key, b"x")
    assert not (tmp_path / "escape").exists() and not (tmp_path / "store").exists()


def test_longest_valid_id_maps_to_a_stable_dotflow_uuid():
    workflow = DotflowWorkflow("a" * 128, steps=[extract])
    assert workflow.dotflow_id == uuid.uuid5(DOTFLOW_ID_NAMESPACE, "a" * 128)
    # The namespace is part of the on-disk contract: changing it would orphan every ledger.
    assert DOTFLOW_ID_NAMESPACE == uuid.UUID("d33ac5bb-d74a-4317-89ef-08e8b2b63273")


def test_step_names_come_from_the_decorated_functions():
    @action(retry=3, retry_delay=0)
    def with_retry(initial_context):
        return 1

    def undecorated(previous_context):
        return previous_context.storage + 1

    workflow = DotflowWorkflow("names", steps=[extract, with_retry, undecorated])
    assert workflow.step_names == ["extract", "with_retry", "undecorated"]
    assert [step.qualified_name for step in workflow.steps] == [
        "tests.support.flow.extract",
        f"{__name__}.test_step_names_come_from_the_decorated_functions.<locals>.with_retry",
        f"{__name__}.test_step_names_come_from_the_decorated_functions.<locals>.undecorated",
    ]


def test_undecorated_functions_and_retries_run_through_dotflows_engine(store):
    attempts = []

    @action(retry=3, retry_delay=0)
    def flaky(initial_context):
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return initial_context.storage["n"]

    def plus_one(previous_context):
        return previous_context.storage + 1

    report = DotflowWorkflow("engine", steps=[flaky, plus_one]).run({"n": 1}, store=store)
    assert report.ok and report.result == 2
    assert len(attempts) == 3 and report.steps[0].attempts == 3


def test_duplicate_step_names_are_refused():
    with pytest.raises(ValueError, match="repeated: extract"):
        DotflowWorkflow("dupes", steps=[extract, extract])


@pytest.mark.parametrize("mode", ["parallel", "sequential_group"])
def test_modes_that_lose_checkpoints_in_dotflow_are_refused(mode):
    with pytest.raises(ValueError, match=rf"mode '{mode}' is refused"):
        DotflowWorkflow("modes", steps=[extract], mode=mode)


def test_background_mode_runs_joined(store):
    report = DotflowWorkflow("bg", steps=[extract, transform], mode="background").run({"v": 1}, store=store)
    assert report.ok and report.result == {"total": 6}


@action
def transform_renamed(initial_context, previous_context):
    return {"total": -1}


def test_changing_a_step_invalidates_checkpoints_from_that_step_on(store, side_effects):
    payload = {"v": 3}
    make_workflow().run(payload, store=store)
    renamed = DotflowWorkflow("orders-acme", steps=[extract, transform_renamed, load])
    report = renamed.run(payload, store=store)
    assert report.decision == "unchanged"
    assert report.resumed == ["extract"] and report.executed == ["transform_renamed", "load"]

    reordered = DotflowWorkflow("orders-acme", steps=[transform, extract, load])
    report = reordered.run(payload, store=store)
    assert report.resumed == [] and report.executed == []  # transform now reads a missing previous context
    assert report.failed_step == "transform"
    assert side_effects()["extract v=3"] == 1


def test_a_step_failure_is_reported_not_raised_unless_asked(store, monkeypatch):
    monkeypatch.setenv("DOTFLOW_TEST_FAIL", "transform")
    report = make_workflow().run({"v": 1}, store=store)
    assert not report.ok and report.failed_step == "transform"
    assert report.error == "RuntimeError: transform failed on purpose"
    assert "Traceback" in report.traceback
    assert [step.status for step in report.steps] == ["executed", "failed", "not_run"]
    assert report.result is None
    with pytest.raises(StepFailedError, match="failed at step 'transform'.*resumes at that step") as raised:
        make_workflow().run({"v": 1}, store=store, raise_on_failure=True)
    assert raised.value.report.resumed == ["extract"]


def test_a_failed_step_leaves_no_checkpoint(store, monkeypatch):
    monkeypatch.setenv("DOTFLOW_TEST_FAIL", "transform")
    report = make_workflow().run({"v": 1}, store=store)
    keys = store.list_keys(f"workflows/orders-acme/checkpoints/{report.fingerprint}/")
    assert [key.rsplit("/", 1)[1].split("-")[1] for key in keys] == ["extract"]


def test_a_second_concurrent_run_gets_run_in_progress(store):
    workflow = make_workflow()
    with store.run_lock("orders-acme"):
        with pytest.raises(RunInProgressError, match=rf"'orders-acme' is already running \(held by pid {os.getpid()}"):
            workflow.run({"v": 1}, store=store)
    assert workflow.run({"v": 1}, store=store).ok  # released with the holder


def test_put_payload_then_run_fingerprint(store, side_effects):
    workflow = make_workflow()
    fingerprint = workflow.put_payload({"v": 4}, store=store)
    assert fingerprint == workflow.fingerprint({"v": 4})
    assert sum(side_effects().values()) == 0 and workflow.state(store=store).current_fingerprint is None
    report = workflow.run_fingerprint(fingerprint, store=store)
    assert report.decision == "new" and report.outputs["transform"] == {"total": 24}
    with pytest.raises(UnknownFingerprintError, match=r"orders-acme.*0{64}"):
        workflow.run_fingerprint("0" * 64, store=store)


def test_errors_survive_pickling_as_queues_send_them(store):
    import pickle

    from dotflow_dagster import InputChangedError

    workflow = make_workflow("raise")
    workflow.run({"v": 1}, store=store)
    with pytest.raises(InputChangedError) as changed:
        workflow.run({"v": 2}, store=store)
    copy = pickle.loads(pickle.dumps(changed.value))
    assert str(copy) == str(changed.value) and copy.current_fingerprint == changed.value.current_fingerprint
    with store.run_lock("orders-acme"), pytest.raises(RunInProgressError) as busy:
        workflow.run({"v": 1}, store=store)
    assert str(pickle.loads(pickle.dumps(busy.value))) == str(busy.value)
    with pytest.raises(UnknownFingerprintError) as unknown:
        workflow.run_fingerprint("0" * 64, store=store)
    assert str(pickle.loads(pickle.dumps(unknown.value))) == str(unknown.value)


def test_the_core_imports_without_dagster_and_the_dagster_names_load_on_use():
    import subprocess
    import sys

    from tests.conftest import ROOT, subprocess_env

    script = (
        "import sys\n"
        "from dotflow_dagster import DotflowWorkflow, LocalStore, fingerprint\n"
        "assert 'dagster' not in sys.modules, 'the core pulled in dagster'\n"
        "from dotflow_dagster import dotflow_asset, dotflow_submit_job, DotflowResource\n"
        "assert 'dagster' in sys.modules\n"
        "import dotflow_dagster\n"
        "assert all(hasattr(dotflow_dagster, name) for name in dotflow_dagster.__all__)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=subprocess_env(), capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr


def test_a_result_that_cannot_be_checkpointed_fails_its_step_clearly(store):
    def make_callback(initial_context):
        return lambda: "not picklable"

    report = DotflowWorkflow("unpicklable", steps=[make_callback, extract]).run({"v": 1}, store=store)
    assert not report.ok and report.failed_step == "make_callback"
    assert "returned a function that cannot be checkpointed" in report.error
    assert [step.status for step in report.steps] == ["failed", "not_run"]
    assert store.list_keys(f"workflows/unpicklable/checkpoints/{report.fingerprint}/") == []
