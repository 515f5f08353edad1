"""Only an arrival makes an input current: replays of old inputs run nothing and move nothing."""

from datetime import UTC, datetime, timedelta

import pytest

from dotflow_dagster import RunTrigger
from dotflow_dagster import ledger as ledger_module
from tests.support.flow import make_workflow

A, B, C = {"v": 1}, {"v": 2}, {"v": 3}
BACKFILL = RunTrigger(arrival=False, description="backfill run")


def test_a_replay_of_a_superseded_input_executes_nothing_and_leaves_the_ledger_alone(store, side_effects):
    workflow = make_workflow("reset")
    old = workflow.run(A, store=store)
    workflow.run(B, store=store)
    before = store.read_bytes(workflow.ledger(store=store).ledger_key)

    replay = workflow.run_fingerprint(old.fingerprint, store=store, trigger=BACKFILL)

    assert replay.skipped and replay.ok and replay.executed == []
    # Nothing ran, but the old input's own completed results are still its own to hand on.
    assert replay.complete and replay.resumed == ["extract", "transform", "load"]
    assert replay.outputs == old.outputs
    assert store.read_bytes(workflow.ledger(store=store).ledger_key) == before
    assert side_effects()["extract v=1"] == 1
    assert old.fingerprint in replay.skip_reason and "superseded" in replay.skip_reason
    assert "dotflow/on_input_change=reset" in replay.skip_reason and "backfill run" in replay.skip_reason


def test_a_replay_of_a_refused_input_executes_nothing_and_says_it_was_refused(store, side_effects):
    workflow = make_workflow("raise")
    workflow.run(A, store=store)
    refused = workflow.put_payload(B, store=store)
    with pytest.raises(Exception, match="on_input_change='raise'"):
        workflow.run_fingerprint(refused, store=store)
    state = workflow.state(store=store)

    replay = workflow.run_fingerprint(refused, store=store, trigger=BACKFILL, on_input_change="reset")

    assert replay.skipped and "refused" in replay.skip_reason
    assert not replay.complete and replay.resumed == [] and replay.result is None
    assert workflow.state(store=store) == state
    assert "extract v=2" not in side_effects()


def test_a_replay_of_the_current_input_resumes_it(store, side_effects, monkeypatch):
    workflow = make_workflow()
    monkeypatch.setenv("DOTFLOW_TEST_FAIL", "load")
    first = workflow.run(A, store=store)
    monkeypatch.delenv("DOTFLOW_TEST_FAIL")
    replay = workflow.run_fingerprint(first.fingerprint, store=store, trigger=BACKFILL)
    assert replay.decision == "unchanged" and replay.executed == ["load"]


def test_an_input_no_run_has_decided_is_new_so_its_first_replay_is_an_arrival(store, side_effects):
    workflow = make_workflow("reset")
    workflow.run(A, store=store)
    registered = workflow.put_payload(B, store=store)  # as the asset's docstring shows
    first = workflow.run_fingerprint(registered, store=store, trigger=BACKFILL)
    assert first.decision == "reset" and workflow.state(store=store).current_fingerprint == registered


def test_an_arrival_may_return_to_an_earlier_input(store, side_effects):
    workflow = make_workflow("reset")
    old = workflow.run(A, store=store)
    workflow.run(B, store=store)
    back = workflow.run_fingerprint(old.fingerprint, store=store)  # a direct call is an arrival
    assert back.decision == "reset" and workflow.state(store=store).current_fingerprint == old.fingerprint


def test_already_seen_does_not_expire_with_the_capped_history(store, side_effects, monkeypatch):
    monkeypatch.setattr(ledger_module, "MAX_HISTORY", 2)
    workflow = make_workflow("reset")
    oldest = workflow.run(A, store=store)
    workflow.run(B, store=store)
    workflow.run(C, store=store)
    state = workflow.state(store=store)
    assert oldest.fingerprint not in {entry.fingerprint for entry in state.history}

    replay = workflow.run_fingerprint(oldest.fingerprint, store=store, trigger=BACKFILL)

    assert replay.skipped and "trimmed" in replay.skip_reason
    assert workflow.state(store=store).current_fingerprint == state.current_fingerprint


def test_a_retry_keeps_its_parents_arrival_only_while_the_input_has_not_moved(store, side_effects):
    workflow = make_workflow("reset")
    workflow.run(A, store=store)
    b = workflow.put_payload(B, store=store)
    parent_started = datetime.now(UTC) - timedelta(seconds=1)
    retry = RunTrigger(arrival=False, inherits_arrival_since=parent_started, description="retry")

    # Nothing was decided since the parent started: the retry carries its arrival through.
    assert workflow.run_fingerprint(b, store=store, trigger=retry).decision == "reset"

    # Once the input moved on (C arrived), a retry of B's run replays nothing.
    workflow.run(C, store=store)
    late = workflow.run_fingerprint(b, store=store, trigger=retry)
    assert late.skipped and workflow.state(store=store).current_fingerprint == workflow.fingerprint(C)


def test_reuse_never_overwrites_an_inputs_own_completed_checkpoints(store, side_effects, monkeypatch):
    workflow = make_workflow("reset")
    a = workflow.run(A, store=store)
    monkeypatch.setenv("DOTFLOW_TEST_FAIL", "load")
    workflow.run(B, store=store)  # B completes extract and transform, fails at load
    monkeypatch.delenv("DOTFLOW_TEST_FAIL")

    back = workflow.run_fingerprint(a.fingerprint, store=store, on_input_change="reuse")

    assert back.decision == "reuse" and back.executed == []
    assert back.outputs["transform"] == {"total": 6}  # A's own, computed from v=1, not B's 12
    assert side_effects()["extract v=1"] == 1


def test_running_the_current_input_after_a_refusal_adds_no_second_current_row(store, side_effects):
    workflow = make_workflow("reset")
    workflow.run(A, store=store)
    workflow.run(B, store=store)
    with pytest.raises(Exception, match="on_input_change='raise'"):
        workflow.run(C, store=store, on_input_change="raise")
    again = workflow.run(B, store=store)
    history = workflow.state(store=store).history
    assert again.decision == "unchanged"
    assert [(entry.decision, entry.runs) for entry in history] == [("new", 1), ("reset", 2), ("raise", 1)]
    assert history[1].outcome == "succeeded" and history[1].run_id == again.run_id
