"""Input-change policies: which steps run, and what happens to prior checkpoints."""

import pytest
from deepdiff import DeepDiff
from dotflow.core.exception import InputChangedError as DotflowInputChangedError

from dotflow_dagster import InputChange, InputChangedError, LocalStore
from tests.support.flow import make_workflow

A = {"v": 1, "customer": "acme", "token": "s3cr3t-A"}
B = {"v": 2, "customer": "acme", "token": "s3cr3t-A"}


def checkpoint_folders(store: LocalStore) -> set[str]:
    return {key.split("/")[3] for key in store.list_keys("workflows/orders-acme/checkpoints/")}


def test_first_payload_is_new_and_same_payload_is_unchanged_and_executes_nothing(store, side_effects):
    workflow = make_workflow()
    first = workflow.run(A, store=store)
    assert (first.decision, first.previous_fingerprint, first.executed) == ("new", None, ["extract", "transform", "load"])
    again = workflow.run(dict(reversed(list(A.items()))), store=store)  # same content, other key order
    assert again.decision == "unchanged"
    assert again.fingerprint == again.previous_fingerprint == first.fingerprint
    assert again.executed == [] and again.resumed == ["extract", "transform", "load"]
    assert again.result is None and again.outputs["transform"] == {"total": 6}
    assert sum(side_effects().values()) == 3


def test_reset_runs_every_step_for_the_new_input_and_keeps_old_checkpoints_for_retention(store, side_effects):
    workflow = make_workflow("reset")
    old = workflow.run(A, store=store)
    new = workflow.run(B, store=store)
    assert new.decision == "reset"
    assert new.previous_fingerprint == old.fingerprint
    assert new.executed == ["extract", "transform", "load"] and new.resumed == []
    assert new.outputs["transform"] == {"total": 12}  # computed from v=2, not restored from v=1
    assert new.changes == ("root['v']: 1 -> 2",)
    assert checkpoint_folders(store) == {old.fingerprint, new.fingerprint}
    assert side_effects() == {"extract v=1": 1, "transform v=1": 1, "load v=1": 1,
                              "extract v=2": 1, "transform v=2": 1, "load v=2": 1}


def test_reset_back_to_an_earlier_input_discards_its_retained_checkpoints(store, side_effects):
    workflow = make_workflow("reset")
    workflow.run(A, store=store)
    workflow.run(B, store=store)
    back = workflow.run(A, store=store)
    assert back.decision == "reset"
    assert back.executed == ["extract", "transform", "load"]
    assert side_effects()["load v=1"] == 2  # the load happens again for the input that is current again


def test_reuse_resumes_the_new_input_from_the_previous_inputs_completed_steps(store, side_effects):
    workflow = make_workflow("reuse")
    old = workflow.run(A, store=store)
    new = workflow.run(B, store=store)
    assert new.decision == "reuse"
    assert new.executed == [] and new.resumed == ["extract", "transform", "load"]
    assert new.outputs == old.outputs
    assert workflow.state(store=store).current_fingerprint == new.fingerprint  # the ledger moves under reuse too
    assert checkpoint_folders(store) == {old.fingerprint, new.fingerprint}
    assert sum(side_effects().values()) == 3


def test_reuse_after_a_partial_run_resumes_where_the_previous_input_stopped(store, side_effects, monkeypatch):
    workflow = make_workflow("reuse")
    monkeypatch.setenv("DOTFLOW_TEST_FAIL", "transform")
    assert workflow.run(A, store=store).failed_step == "transform"
    monkeypatch.delenv("DOTFLOW_TEST_FAIL")
    new = workflow.run(B, store=store)
    assert new.resumed == ["extract"] and new.executed == ["transform", "load"]


def test_raise_executes_nothing_deletes_nothing_and_explains_the_change(store, side_effects):
    workflow = make_workflow("raise")
    old = workflow.run(A, store=store)
    before = {key: store.read_bytes(key) for key in store.list_keys("workflows/orders-acme/checkpoints/")}
    with pytest.raises(InputChangedError) as raised:
        workflow.run(B, store=store)
    error = raised.value
    assert isinstance(error, DotflowInputChangedError)
    message = str(error)
    assert "orders-acme" in message
    assert old.fingerprint in message and workflow.fingerprint(B) in message
    assert "root['v']: 1 -> 2" in message
    assert (error.previous_fingerprint, error.current_fingerprint) == (old.fingerprint, workflow.fingerprint(B))
    after = {key: store.read_bytes(key) for key in store.list_keys("workflows/orders-acme/checkpoints/")}
    assert after == before
    state = workflow.state(store=store)
    assert state.current_fingerprint == old.fingerprint
    assert state.history[-1].decision == "raise" and state.history[-1].outcome == "refused"
    assert sum(side_effects().values()) == 3
    # The refused payload is stored, so an operator can re-run it under another policy.
    override = workflow.run_fingerprint(workflow.fingerprint(B), store=store, on_input_change="reset")
    assert override.decision == "reset" and override.executed == ["extract", "transform", "load"]


def test_hook_sees_the_change_redacted_and_its_answer_decides(store, side_effects):
    seen: list[InputChange] = []

    def policy(change: InputChange) -> str:
        seen.append(change)
        return "reuse" if change.current_payload["v"] < 10 else "reset"

    workflow = make_workflow(policy, redact_paths=["root['token']"])
    first = workflow.run(A, store=store)
    changed_token = {**B, "token": "s3cr3t-B"}
    reused = workflow.run(changed_token, store=store)
    assert reused.decision == "reuse" and reused.executed == []
    change = seen[0]
    assert change.workflow_id == "orders-acme"
    assert change.previous_fingerprint == first.fingerprint
    assert change.current_fingerprint == reused.fingerprint
    assert change.previous_payload == {**A, "token": "***"}
    assert change.current_payload == {**B, "token": "***"}
    assert isinstance(change.diff, DeepDiff)
    assert change.diff["values_changed"] == {"root['v']": {"new_value": 2, "old_value": 1}}
    assert "root['token']: *** -> *** (redacted value changed)" in change.changes
    assert "s3cr3t" not in repr(change) and "s3cr3t" not in repr(reused.payload)

    reset = workflow.run({**B, "v": 50}, store=store)
    assert reset.decision == "reset" and reset.executed == ["extract", "transform", "load"]


def test_hook_returning_something_else_is_a_clear_error_and_runs_nothing(store, side_effects):
    workflow = make_workflow(lambda change: "overwrite")
    workflow.run(A, store=store)
    with pytest.raises(ValueError, match=r"orders-acme.*returned 'overwrite'.*reset, reuse, raise"):
        workflow.run(B, store=store)
    assert sum(side_effects().values()) == 3
    assert workflow.state(store=store).current_fingerprint == workflow.fingerprint(A)


def test_invalid_policy_name_is_refused_up_front():
    with pytest.raises(ValueError, match=r"orders-acme.*on_input_change.*'overwrite'"):
        make_workflow("overwrite")


def test_redacted_values_never_appear_in_errors_or_reports(store):
    workflow = make_workflow("raise", redact_paths=["root['token']"])
    report = workflow.run(A, store=store)
    assert report.payload["token"] == "***"
    with pytest.raises(InputChangedError) as raised:
        workflow.run({**A, "token": "s3cr3t-B"}, store=store)
    assert "s3cr3t" not in str(raised.value)
    assert "root['token']: *** -> *** (redacted value changed)" in str(raised.value)


def test_ignored_paths_do_not_change_the_fingerprint_or_the_decision(store, side_effects):
    workflow = make_workflow("raise", ignore_paths=["root['received_at']"])
    first = workflow.run({**A, "received_at": "2026-11-26T08:00:00Z"}, store=store)
    again = workflow.run({**A, "received_at": "2026-11-26T09:30:00Z"}, store=store)
    assert again.fingerprint == first.fingerprint and again.decision == "unchanged" and again.executed == []


def test_a_failed_new_input_resumes_as_unchanged_because_the_ledger_moved_at_decision(store, monkeypatch):
    workflow = make_workflow("reset")
    workflow.run(A, store=store)
    monkeypatch.setenv("DOTFLOW_TEST_FAIL", "load")
    failed = workflow.run(B, store=store)
    assert (failed.decision, failed.ok, failed.failed_step) == ("reset", False, "load")
    assert workflow.state(store=store).current_fingerprint == failed.fingerprint
    monkeypatch.delenv("DOTFLOW_TEST_FAIL")
    retry = workflow.run(B, store=store)
    assert retry.decision == "unchanged"
    assert retry.resumed == ["extract", "transform"] and retry.executed == ["load"]
    assert workflow.state(store=store).history[-1].outcome == "succeeded"


def test_retention_deletes_checkpoints_of_old_fingerprints_but_keeps_payloads(store):
    workflow = make_workflow("reset", retention=1)
    fingerprints = [workflow.run({"v": value}, store=store).fingerprint for value in (1, 2, 3)]
    assert checkpoint_folders(store) == set(fingerprints[1:])
    oldest = workflow.run_fingerprint(fingerprints[0], store=store)  # still runnable from its key alone
    assert oldest.decision == "reset" and oldest.outputs["transform"] == {"total": 6}


def test_refused_inputs_do_not_use_up_retention(store):
    workflow = make_workflow("reset", retention=1)
    first = workflow.run({"v": 1}, store=store).fingerprint
    second = workflow.run({"v": 2}, store=store).fingerprint
    with pytest.raises(InputChangedError):
        workflow.run({"v": 3}, store=store, on_input_change="raise")
    workflow.run({"v": 2}, store=store)
    assert checkpoint_folders(store) == {first, second}


def test_an_unreadable_checkpoint_is_recomputed_not_fatal(store, side_effects):
    workflow = make_workflow()
    report = workflow.run(A, store=store)
    transform_key = next(step.key for step in workflow.steps if step.name == "transform")
    store.write_bytes(f"workflows/orders-acme/checkpoints/{report.fingerprint}/{transform_key}", b"not a pickle")
    again = workflow.run(A, store=store)
    assert again.ok and again.resumed == ["extract"] and again.executed == ["transform", "load"]
