"""Retention of checkpoints and payloads, the sensor's pruning, and the ledger's decision counter."""

import orjson
import pytest

from dotflow_dagster import InputChangedError, LedgerState, RunTrigger, StoreError, UnknownFingerprintError
from dotflow_dagster import ledger as ledger_module
from dotflow_dagster.runner import execute
from tests.support.flow import make_workflow

REPLAY = RunTrigger(arrival=False, description="backfill run")


def payload(value: int) -> dict:
    return {"v": value}


def fp(workflow, value: int) -> str:
    return workflow.fingerprint(payload(value))


def has_payload(workflow, store, fingerprint: str) -> bool:
    return store.exists(workflow.ledger(store=store).payload_key(fingerprint))


def has_checkpoints(workflow, store, fingerprint: str) -> bool:
    return bool(store.list_keys(workflow.ledger(store=store).checkpoint_prefix(fingerprint)))


def test_a_run_prunes_payloads_beyond_retention_when_no_sensor_manages_them(store, side_effects):
    workflow = make_workflow("reset", retention=1)
    for value in (1, 2, 3):
        workflow.run(payload(value), store=store)
    assert [has_payload(workflow, store, fp(workflow, v)) for v in (1, 2, 3)] == [False, True, True]
    assert [has_checkpoints(workflow, store, fp(workflow, v)) for v in (1, 2, 3)] == [False, True, True]

    with pytest.raises(UnknownFingerprintError) as raised:
        workflow.run_fingerprint(fp(workflow, 1), store=store)
    assert raised.value.pruned and "retention has pruned its payload" in str(raised.value)
    assert fp(workflow, 1) in str(raised.value) and "orders-acme" in str(raised.value)

    # Already seen does not expire with the payload: the input itself is a change, not a new input.
    back = workflow.run(payload(1), store=store)
    assert back.decision == "reset" and back.executed == ["extract", "transform", "load"]


def test_a_replay_of_a_pruned_fingerprint_is_skipped_not_failed(store, side_effects):
    workflow = make_workflow("reset", retention=0)
    old = workflow.run(payload(1), store=store)
    workflow.run(payload(2), store=store)
    state = workflow.state(store=store)

    replay = workflow.run_fingerprint(old.fingerprint, store=store, trigger=REPLAY)

    assert replay.skipped and replay.executed == [] and replay.payload is None and not replay.complete
    assert "pruned its stored payload" in replay.skip_reason and "backfill run" in replay.skip_reason
    assert workflow.state(store=store) == state


def test_a_fingerprint_nothing_ever_stored_is_unknown_not_pruned(store):
    workflow = make_workflow()
    with pytest.raises(UnknownFingerprintError) as raised:
        workflow.run_fingerprint("0" * 64, store=store, trigger=REPLAY)
    assert not raised.value.pruned and "put_payload" in str(raised.value)


def test_refused_fingerprints_count_among_the_most_recent_decisions(store, side_effects):
    workflow = make_workflow("reset", retention=1)
    workflow.run(payload(1), store=store)
    workflow.run(payload(2), store=store)
    with pytest.raises(InputChangedError):
        workflow.run(payload(3), store=store, on_input_change="raise")
    workflow.run(payload(4), store=store)
    # Current: 4. The most recent earlier decision is the refusal of 3, so 2 is pruned, not 3.
    assert workflow.retained_fingerprints(store=store) == {fp(workflow, 4), fp(workflow, 3)}
    assert [has_payload(workflow, store, fp(workflow, v)) for v in (1, 2, 3, 4)] == [False, False, True, True]
    with pytest.raises(UnknownFingerprintError):
        workflow.run_fingerprint(fp(workflow, 2), store=store)
    # The refused input stays resettable while it is among the most recent decisions.
    reset = workflow.run_fingerprint(fp(workflow, 3), store=store, on_input_change="reset")
    assert reset.decision == "reset" and reset.executed == ["extract", "transform", "load"]


def test_a_run_never_prunes_a_payload_no_run_has_decided(store, side_effects):
    workflow = make_workflow("reset", retention=0)
    queued = workflow.put_payload(payload(9), store=store)  # stored for a run still in the queue
    for value in (1, 2, 3):
        workflow.run(payload(value), store=store)
    assert has_payload(workflow, store, queued)
    assert workflow.run_fingerprint(queued, store=store, trigger=REPLAY).decision == "reset"  # first run: new input


def test_a_run_stores_its_payload_again_if_retention_pruned_it_while_the_run_waited(store, side_effects):
    workflow = make_workflow("reset", retention=0)
    workflow.run(payload(1), store=store)
    workflow.run(payload(2), store=store)
    pruned = fp(workflow, 1)
    assert not has_payload(workflow, store, pruned)
    # run() stores first and then takes the lock; another run's retention can prune in between.
    with pytest.raises(InputChangedError):
        execute(workflow, payload=payload(1), fingerprint=pruned, store=store, policy="raise")
    assert has_payload(workflow, store, pruned)  # refused, so retained: an operator can still reset it
    store.delete(workflow.ledger(store=store).payload_key(pruned))
    execute(workflow, payload=payload(1), fingerprint=pruned, store=store, policy="reset")
    assert has_payload(workflow, store, pruned)
    assert workflow.run_fingerprint(pruned, store=store).decision == "unchanged"


def test_with_a_sensor_managing_payloads_runs_prune_checkpoints_only(store, side_effects):
    workflow = make_workflow("reset", retention=0)
    ledger = workflow.ledger(store=store)
    assert ledger.mark_sensor_managed().payloads_managed_by == "sensor"
    before = store.read_bytes(ledger.ledger_key)
    assert ledger.mark_sensor_managed().payloads_managed_by == "sensor"
    assert store.read_bytes(ledger.ledger_key) == before  # already so: nothing written
    for value in (1, 2, 3):
        workflow.run(payload(value), store=store)
    assert workflow.state(store=store).payloads_managed_by == "sensor"  # runs keep the flag
    assert all(has_payload(workflow, store, fp(workflow, v)) for v in (1, 2, 3))
    assert [has_checkpoints(workflow, store, fp(workflow, v)) for v in (1, 2, 3)] == [False, False, True]
    assert workflow.run_fingerprint(fp(workflow, 1), store=store).decision == "reset"

    assert ledger.mark_sensor_managed(managed=False).payloads_managed_by is None
    workflow.run(payload(4), store=store)
    assert [has_payload(workflow, store, fp(workflow, v)) for v in (1, 2, 3, 4)] == [False, False, False, True]


def test_the_sensor_prunes_payloads_and_checkpoints_beyond_retention_except_what_it_keeps(store, side_effects):
    workflow = make_workflow("reset", retention=1)
    workflow.ledger(store=store).mark_sensor_managed()
    for value in (1, 2, 3, 4):
        workflow.run(payload(value), store=store)
    queued = workflow.put_payload(payload(9), store=store)  # requested, its run still queued
    stale = workflow.put_payload(payload(8), store=store)  # stored, but no run will come
    keep = {fp(workflow, 1), queued}
    expected = sorted({fp(workflow, 2), stale})

    assert workflow.fingerprints_to_prune(store=store, keep=keep) == expected
    assert has_payload(workflow, store, stale)  # the read-only variant deleted nothing

    assert workflow.prune(store=store, keep=keep) == expected
    for value, kept in ((1, True), (2, False), (3, True), (4, True), (8, False), (9, True)):
        assert has_payload(workflow, store, fp(workflow, value)) is kept, value
    assert not has_checkpoints(workflow, store, fp(workflow, 2))
    assert has_checkpoints(workflow, store, fp(workflow, 3)) and has_checkpoints(workflow, store, fp(workflow, 4))
    assert workflow.prune(store=store, keep=keep) == []

    # A pruned fingerprint stays decided: no longer runnable by key, and never new again.
    with pytest.raises(UnknownFingerprintError, match="retention has pruned"):
        workflow.run_fingerprint(fp(workflow, 2), store=store)
    assert workflow.ledger(store=store).was_decided(fp(workflow, 2))
    assert workflow.run(payload(2), store=store).decision == "reset"


def test_prune_refuses_a_single_string_as_keep(store):
    with pytest.raises(TypeError, match="single string"):
        make_workflow().prune(store=store, keep="abc")


def test_decision_count_counts_every_appended_entry_past_the_capped_history(store, side_effects, monkeypatch):
    monkeypatch.setattr(ledger_module, "MAX_HISTORY", 2)
    workflow = make_workflow("reset")
    assert workflow.state(store=store).decision_count == 0
    workflow.run(payload(1), store=store)  # new
    workflow.run(payload(1), store=store)  # unchanged: merged into its entry, not counted
    assert workflow.state(store=store).decision_count == 1
    workflow.run(payload(2), store=store)  # reset
    workflow.run(payload(3), store=store, on_input_change="reuse")  # reuse
    with pytest.raises(InputChangedError):
        workflow.run(payload(4), store=store, on_input_change="raise")  # raise
    workflow.run(payload(1), store=store)  # reset back
    state = workflow.state(store=store)
    assert len(state.history) == 2 and state.decision_count == 5
    assert orjson.loads(store.read_bytes(workflow.ledger(store=store).ledger_key))["decision_count"] == 5


def test_a_ledger_written_before_the_counter_reads_it_as_its_history_length(store, side_effects):
    workflow = make_workflow("reset")
    for value in (1, 2, 3):
        workflow.run(payload(value), store=store)
    ledger = workflow.ledger(store=store)
    document = orjson.loads(store.read_bytes(ledger.ledger_key))
    del document["decision_count"], document["payloads_managed_by"]
    store.write_bytes(ledger.ledger_key, orjson.dumps(document))

    state = ledger.read()
    assert (state.decision_count, state.payloads_managed_by, state.extra) == (3, None, {})
    workflow.run(payload(4), store=store)
    assert ledger.read().decision_count == 4


def test_a_state_never_counts_fewer_decisions_than_its_history(store, side_effects):
    assert LedgerState(workflow_id="w").decision_count == 0
    workflow = make_workflow()
    workflow.run(payload(1), store=store)
    workflow.run(payload(2), store=store)
    history = workflow.state(store=store).history
    assert LedgerState(workflow_id="w", history=history).decision_count == 2
    assert LedgerState(workflow_id="w", history=history, decision_count=0).decision_count == 2
    assert LedgerState(workflow_id="w", history=history, decision_count=7).decision_count == 7


@pytest.mark.parametrize("field", [{"decision_count": "3"}, {"decision_count": -1}, {"payloads_managed_by": 1}])
def test_a_ledger_with_a_malformed_field_is_refused_by_name(store, side_effects, field):
    workflow = make_workflow()
    workflow.run(payload(1), store=store)
    ledger = workflow.ledger(store=store)
    document = {**orjson.loads(store.read_bytes(ledger.ledger_key)), **field}
    store.write_bytes(ledger.ledger_key, orjson.dumps(document))
    with pytest.raises(StoreError, match=f"orders-acme.*{next(iter(field))}"):
        ledger.read()
