"""Bad-input rows for Dagster runs (run tags, partition keys, run config) and for tampered stores.

Runs go through ``materialize()`` and the submit job's ``execute_in_process`` on a real
Dagster instance, with the ``DotflowResource`` the asset uses. Stored objects are truncated or
swapped on disk the way a crashed copy, a full disk or a careless operator would leave them.

Example:
    >>> from tests.support.bad_inputs_table import ROWS
    >>> import tests.support.bad_inputs_runs
    >>> any(item.name == "tag_on_input_change_bogus" for item in ROWS)
    True
"""

import pickle
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from dagster import DagsterInvalidConfigError

from dotflow_dagster import DirectorySource, DotflowWorkflow, LocalStore, StoreError, dotflow_submit_job
from dotflow_dagster.verify import verify_store
from tests.support.bad_inputs_harness import Env, assert_nothing_lost, captured_log, drop, run_failure_text, work_queue
from tests.support.bad_inputs_payloads import GOOD, SEED
from tests.support.bad_inputs_table import row
from tests.support.flow import extract, make_workflow

__all__ = ["failed_run_then_good_run"]

GOES_ON = "the run fails alone; the next run (a good payload submitted) succeeds"
KEPT = "every ledger entry, payload and checkpoint from before, byte for byte"


def _payload_file(env: Env, workflow: DotflowWorkflow, payload: object) -> Path:
    return env.root / "workflows" / workflow.workflow_id / "payloads" / f"{workflow.fingerprint(payload)}.pickle"


def _checkpoint_file(env: Env, workflow: DotflowWorkflow, payload: object, step: int) -> Path:
    spec = workflow.steps[step]
    return env.root / "workflows" / workflow.workflow_id / "checkpoints" / workflow.fingerprint(payload) / spec.key


def failed_run_then_good_run(
    env: Env,
    launch: Callable[[DotflowWorkflow], object],
    *,
    names: list[str],
    tamper: Callable[[DotflowWorkflow], None] = lambda workflow: None,
) -> str:
    """Submit SEED, ``tamper``, ``launch`` a run that must fail naming ``names``, then submit GOOD.

    Returns the failed run's failure text. The failed run must leave the store as it found it,
    and the good run after it must succeed as ``reset``: a failed run never poisons the next one.
    """
    orders = make_workflow()
    assert env.submit(orders, SEED).success
    tamper(orders)
    before = env.snapshot()
    result = launch(orders)
    text = run_failure_text(result) if hasattr(result, "all_events") else str(result)
    assert not getattr(result, "success", False), text
    assert_nothing_lost(before, env.snapshot())
    good = env.submit(orders, GOOD)
    assert good.success
    [materialization] = good.asset_materializations_for_node("orders_acme")
    assert materialization.metadata["dotflow/decision"].value == "reset"
    for fragment in names:
        assert fragment in text, (fragment, text)
    return text


# -- run tags and partition keys -----------------------------------------------------------------------


@row(
    where="run tag",
    hostile="`dotflow/on_input_change=bogus` on a materialization",
    sees="the run fails before any step: workflow 'orders-acme': dotflow/on_input_change='bogus' is not a policy; use "
    "one of reset, reuse, raise",
    goes_on=GOES_ON,
    kept=KEPT,
)
def tag_on_input_change_bogus(env: Env) -> None:
    failed_run_then_good_run(
        env,
        lambda orders: env.materialize(orders, orders.fingerprint(SEED), tags={"dotflow/on_input_change": "bogus"}),
        names=["workflow 'orders-acme': dotflow/on_input_change='bogus' is not a policy; use one of reset, reuse, raise"],
    )


@row(
    where="run (partition key)",
    hostile="a partition key that is no fingerprint ('not-a-fingerprint', added by hand)",
    sees="the run fails: no payload stored for workflow 'orders-acme' with fingerprint not-a-fingerprint in <store>; "
    "store it first with DotflowWorkflow.put_payload(...) or run the payload itself",
    goes_on=GOES_ON,
    kept=KEPT,
)
def partition_key_not_a_fingerprint(env: Env) -> None:
    failed_run_then_good_run(
        env,
        lambda orders: env.materialize(orders, "not-a-fingerprint"),
        names=[f"no payload stored for workflow 'orders-acme' with fingerprint not-a-fingerprint in {env.root}"],
    )


@row(
    where="run (partition key)",
    hostile="a partition key '../../etc' (path traversal, added by hand)",
    sees="the run fails (not retried): '../../etc' is not a fingerprint of workflow 'orders-acme', so nothing can "
    "be stored for it in <store>: a fingerprint is 64 hex digits, or what the workflow's fingerprint_fn returns; "
    "nothing is read or written outside the store",
    goes_on=GOES_ON,
    kept=KEPT,
)
def partition_key_path_traversal(env: Env) -> None:
    text = failed_run_then_good_run(
        env, lambda orders: env.materialize(orders, "../../etc"),
        names=["'../../etc' is not a fingerprint of workflow 'orders-acme'"],
    )
    assert not (env.root.parent / "etc.pickle").exists()
    assert "'orders-acme'" in text and "DagsterExecutionStepExecutionError" not in text, text


# -- run config ----------------------------------------------------------------------------------------------


def _submit_config(env: Env, orders: DotflowWorkflow, config: dict) -> str:
    job = dotflow_submit_job(orders)
    with pytest.raises(DagsterInvalidConfigError) as refused:
        job.execute_in_process(run_config={"ops": {"orders_acme_submit": {"config": config}}}, instance=env.instance,
                               resources={"dotflow": env.resource})
    return str(refused.value)


@row(
    where="run config (submit job)",
    hostile="`payload: [1, 2]` (a list where a JSON object is expected)",
    sees="Dagster refuses the run config before any run starts: Error in config for job orders_acme_submit: Value at "
    "path root:ops:orders_acme_submit:config:payload must be dict",
    goes_on="nothing was launched; the next submit with a valid config runs",
    kept=KEPT,
)
def config_payload_wrong_type(env: Env) -> None:
    failed_run_then_good_run(
        env,
        lambda orders: _submit_config(env, orders, {"payload": [1, 2]}),
        names=["Error in config for job orders_acme_submit", "root:ops:orders_acme_submit:config:payload must be dict"],
    )


@row(
    where="run config (submit job)",
    hostile="`on_input_change: bogus`",
    sees="Dagster refuses the run config: Value at path root:ops:orders_acme_submit:config:on_input_change not in enum "
    "type DotflowOnInputChange got bogus",
    goes_on="nothing was launched; the next submit with a valid config runs",
    kept=KEPT,
)
def config_on_input_change_bogus(env: Env) -> None:
    failed_run_then_good_run(
        env,
        lambda orders: _submit_config(env, orders, {"payload": {"v": 3}, "on_input_change": "bogus"}),
        names=["on_input_change not in enum type DotflowOnInputChange got bogus"],
    )


# -- stored objects ----------------------------------------------------------------------------------------


def _truncate(path: Path, keep: int = 10) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _verify_reports(env: Env, path: Path, reason: str) -> None:
    """``python -m dotflow_dagster verify`` names the damaged object (its library call, on the same store)."""
    key = path.relative_to(env.root).as_posix()
    problems = [str(problem) for problem in verify_store(env.store).problems]
    assert any(f"key {key}: " in problem and reason in problem for problem in problems), problems


@row(
    where="stored payload",
    hostile="the payload file of the current input truncated (`payloads/<fp>.pickle`)",
    sees="a run of its partition fails: payload <fp> of workflow 'orders-acme' in <store> is unreadable: "
    "UnpicklingError: pickle data was truncated; `verify` reports workflow 'orders-acme' key "
    "workflows/orders-acme/payloads/<fp>.pickle: payload cannot be unpickled",
    goes_on=GOES_ON,
    kept=KEPT + " (the truncated file too, as evidence)",
)
def stored_payload_truncated(env: Env) -> None:
    failed_run_then_good_run(
        env,
        lambda orders: env.materialize(orders, orders.fingerprint(SEED), tags={"dotflow/on_input_change": "reset"}),
        tamper=lambda orders: _truncate(_payload_file(env, orders, SEED)),
        names=[f"payload {make_workflow().fingerprint(SEED)} of workflow 'orders-acme' in {env.root} is unreadable: "
               "UnpicklingError: pickle data was truncated"],
    )
    _verify_reports(env, _payload_file(env, make_workflow(), SEED), "payload cannot be unpickled")


@row(
    where="stored payload",
    hostile="the payload file of one fingerprint replaced by another payload's file",
    sees="a run of its partition fails: workflow 'orders-acme': the payload stored for fingerprint <fp> now "
    "fingerprints to <other> (did ignore_paths change?); refusing to run it under the wrong key. `verify` cannot "
    "see it (it does not know the workflow's identity rules); a signed store refuses such a copy on read",
    goes_on=GOES_ON,
    kept=KEPT,
)
def stored_payload_swapped(env: Env) -> None:
    orders = make_workflow()
    other = {"v": 9}

    def swap(workflow: DotflowWorkflow) -> None:
        workflow.put_payload(other, store=env.store)
        _payload_file(env, workflow, SEED).write_bytes(_payload_file(env, workflow, other).read_bytes())

    failed_run_then_good_run(
        env,
        lambda workflow: env.materialize(workflow, workflow.fingerprint(SEED), tags={"dotflow/on_input_change": "reset"}),
        tamper=swap,
        names=[f"workflow 'orders-acme': the payload stored for fingerprint {orders.fingerprint(SEED)} now "
               f"fingerprints to {orders.fingerprint(other)}", "refusing to run it under the wrong key"],
    )


@row(
    where="stored payload",
    hostile="a truncated stored payload, and the same payload submitted again",
    sees="a warning: payload <fp> of workflow 'orders-acme' in <store> is truncated; replacing it with the payload "
    "submitted again; the resubmission runs (`unchanged`, nothing executed), and runs by key work again",
    goes_on="the resubmission succeeds",
    kept=KEPT + "; the truncated copy is replaced by the same payload, compare-and-swap on the broken version",
)
def truncated_payload_repaired_by_resubmission(env: Env) -> None:
    orders, store = make_workflow(), env.store
    assert orders.run(SEED, store=store).ok
    _truncate(_payload_file(env, orders, SEED))
    report = orders.run(SEED, store=store)
    assert (report.decision, report.executed) == ("unchanged", [])
    try:
        stored = orders.ledger(store=store).get_payload(orders.fingerprint(SEED))
    except StoreError as error:
        stored = error
    assert stored == SEED, stored


@row(
    where="stored checkpoint",
    hostile="the checkpoint of the second step truncated",
    sees="a warning in the run's log: checkpoint workflows/orders-acme/checkpoints/<fp>/<step key> is unreadable and "
    "will be recomputed: cannot read ...: UnpicklingError: ...; `verify` reports the key before the run, and "
    "nothing after it",
    goes_on="the same run resumes after the first step and recomputes the second and third",
    kept="the first step's checkpoint and every other input's data; the unreadable checkpoint and those after it are "
    "replaced by recomputed ones",
)
def stored_checkpoint_truncated(env: Env) -> None:
    orders, store = make_workflow(), env.store
    assert orders.run(GOOD, store=store).ok and orders.run(SEED, store=store).ok
    first, second = _checkpoint_file(env, orders, SEED, 0), _checkpoint_file(env, orders, SEED, 1)
    _truncate(second)
    _verify_reports(env, second, "")
    before = env.snapshot()
    with captured_log() as warnings:
        [outcome] = work_queue(orders, [SEED], store=store)
    assert (outcome.decision, outcome.resumed, outcome.executed) == ("unchanged", ("extract",), ("transform", "load"))
    key = second.relative_to(env.root).as_posix()
    assert any(f"checkpoint {key} is unreadable and will be recomputed: cannot read" in line for line in warnings), warnings
    after = env.snapshot()
    untouched = {k: v for k, v in before.items() if f"checkpoints/{orders.fingerprint(SEED)}/" not in k}
    assert_nothing_lost(untouched, after)
    assert after[first.relative_to(env.root).as_posix()] == before[first.relative_to(env.root).as_posix()]
    assert verify_store(env.store).ok


@row(
    where="stored ledger",
    hostile="`workflows/orders-acme/ledger.json` truncated",
    sees="`StoreError`: ledger of workflow 'orders-acme' at <store> key workflows/orders-acme/ledger.json is "
    "unreadable: <JSON reason>; `verify` reports the key",
    goes_on="the worker's next message, for another workflow in the same store, runs",
    kept=KEPT + "; the damaged ledger is never overwritten",
)
def stored_ledger_truncated(env: Env) -> None:
    _ledger_damaged(env, damage=_truncate, names=[
        f"ledger of workflow 'orders-acme' at {env.root} key workflows/orders-acme/ledger.json is unreadable: "])
    _verify_reports(env, env.root / "workflows" / "orders-acme" / "ledger.json", "is unreadable")


def _ledger_damaged(env: Env, *, damage: Callable[[Path], None], names: list[str], within: float = 60.0) -> None:
    orders, returns = make_workflow(), DotflowWorkflow("returns", steps=[extract])
    store = env.store
    assert orders.run(SEED, store=store).ok and returns.run(SEED, store=store).ok
    damage(env.root / "workflows" / "orders-acme" / "ledger.json")
    before = env.snapshot()
    started = time.monotonic()
    [failed] = work_queue(orders, [GOOD], store=store)
    took = time.monotonic() - started
    after = env.snapshot()
    [passed] = work_queue(returns, [GOOD], store=store)
    assert passed.decision == "reset", passed
    damaged = {key for key in before if key.startswith("workflows/orders-acme/")}
    assert {key: after.get(key) for key in damaged} == {key: before[key] for key in damaged}  # never overwritten
    assert_nothing_lost({key: data for key, data in before.items() if key not in damaged}, after)
    assert isinstance(failed.error, StoreError), failed
    for fragment in names:
        assert fragment in str(failed.error), (fragment, failed.text)
    assert took < within, f"took {took:.1f} s to fail"


def _directory_in_place(path: Path) -> None:
    path.unlink()
    path.mkdir()


@row(
    where="stored ledger",
    hostile="a directory where `ledger.json` should be",
    sees="at once, before anything runs: `StoreError`: LocalStore <store>: cannot read key "
    "'workflows/orders-acme/ledger.json': Is a directory (a folder holding no key is in the way of the key; remove "
    "it) [EISDIR] at <path>; `verify` reports the key: a folder stands where this key's file belongs",
    goes_on="the worker's next message, for another workflow in the same store, runs",
    kept=KEPT,
)
def stored_ledger_is_a_directory(env: Env) -> None:
    _ledger_damaged(env, damage=_directory_in_place, within=2.0, names=[
        f"LocalStore {env.root}: cannot read key 'workflows/orders-acme/ledger.json': Is a directory (a folder "
        "holding no key is in the way of the key; remove it)"])
    _verify_reports(env, env.root / "workflows" / "orders-acme" / "ledger.json",
                    "a folder stands where this key's file belongs")


@row(
    where="stored sensor state",
    hostile="`sensors/<name>/state.json` truncated",
    sees="a sensor error: sensor orders_inbox: its state sensors/orders_inbox/state.json in <store> cannot be read "
    "(not JSON: ...; a document of the wrong shape names the field); starting from an empty state: every item in "
    "<source> is read again once and payloads already known are dropped by fingerprint. `verify` reports the key",
    goes_on="the same tick requests the new payload; a payload requested before, not yet run, is requested again "
    "under the same run key (Dagster skips it); the next tick logs nothing",
    kept=KEPT + "; the damaged state is replaced by the new tick's",
)
def sensor_state_truncated(env: Env) -> None:
    orders, returns = make_workflow(), DotflowWorkflow("returns", steps=[extract])
    store = env.store
    assert orders.run(SEED, store=store).ok and returns.run(SEED, store=store).ok
    inbox = env.inbox()
    harness = env.sensor([orders, returns], DirectorySource(inbox), name="orders_inbox")
    drop(inbox, "returns", {"v": 4})
    [queued] = harness.tick().run_requests
    state = env.root / "sensors" / "orders_inbox" / "state.json"
    _truncate(state, keep=1)
    _verify_reports(env, state, "sensor state cannot be read (not JSON: ")
    before = env.snapshot()
    drop(inbox, "orders-acme", GOOD)
    run_keys = {request.partition_key: request.run_key for request in harness.tick().run_requests}
    assert f"sensor orders_inbox: its state sensors/orders_inbox/state.json in {env.root} cannot be read (not JSON: " \
        in env.logged("ERROR")
    assert sorted(run_keys) == sorted([orders.fingerprint(GOOD), returns.fingerprint({"v": 4})])
    assert run_keys[returns.fingerprint({"v": 4})] == queued.run_key
    assert_nothing_lost(before, env.snapshot())
    assert harness.tick().run_requests == [] and env.logged("ERROR") == ""
    assert verify_store(env.store).ok


# -- signed stores (LocalStore(path, signing_key=...)) -------------------------------------------------

SIGNING_KEY = "bad-inputs-signing-key-7c1e90d2"
NOT_UNPICKLED = "nothing was unpickled"


class _Planted:
    """A pickle that runs code when loaded: it creates ``marker``. What an attacker would plant."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@row(
    where="stored object (signed store)",
    hostile="one byte of the current input's stored payload changed, in a store with a `signing_key`",
    sees="a run of its partition fails: LocalStore <store>: refused key "
    "'workflows/orders-acme/payloads/<fp>.pickle': its HMAC-SHA256 signature does not match: it was changed, copied "
    "here from another key, or signed with another signing_key; nothing was unpickled. `verify` with the key "
    "reports it",
    goes_on=GOES_ON,
    kept=KEPT + " (the refused object too, as evidence)",
)
def signed_payload_changed(env: Env) -> None:
    env.signing_key = SIGNING_KEY

    def flip_a_byte(orders: DotflowWorkflow) -> None:
        path = _payload_file(env, orders, SEED)
        data = bytearray(path.read_bytes())
        data[-3] ^= 1
        path.write_bytes(bytes(data))

    fingerprint = make_workflow().fingerprint(SEED)
    failed_run_then_good_run(
        env,
        lambda orders: env.materialize(orders, orders.fingerprint(SEED), tags={"dotflow/on_input_change": "reset"}),
        tamper=flip_a_byte,
        names=[f"refused key 'workflows/orders-acme/payloads/{fingerprint}.pickle': its HMAC-SHA256 signature does "
               "not match", NOT_UNPICKLED],
    )
    _verify_reports(env, _payload_file(env, make_workflow(), SEED), "signature does not match")


@row(
    where="stored object (signed store)",
    hostile="an unsigned pickle planted as a checkpoint, one that runs code when unpickled",
    sees="the run stops, nothing was unpickled and the planted code never runs: `UntrustedObjectError` (a "
    "`StoreError`): LocalStore <store>: refused key 'workflows/orders-acme/checkpoints/<fp>/<step key>': it is not "
    "signed, and this store has a signing_key, so it accepts signed objects only ...; the ledger records the run "
    "as `interrupted: UntrustedObjectError`; `verify` with the key reports the object",
    goes_on="the worker's next message (another input) runs",
    kept=KEPT + "; the planted object too, as evidence (delete it, then run the input again)",
)
def signed_store_planted_checkpoint(env: Env) -> None:
    env.signing_key = SIGNING_KEY
    orders, store = make_workflow(), env.store
    assert orders.run(SEED, store=store).ok
    planted, marker = _checkpoint_file(env, orders, SEED, 1), env.scratch / "planted-code-ran"
    planted.write_bytes(pickle.dumps(_Planted(marker)))
    before = env.snapshot()
    between: list[dict[str, bytes]] = []
    refused, passed = work_queue(orders, [SEED, GOOD], store=store, after_each=lambda _: between.append(env.snapshot()))
    assert not marker.exists(), "the planted pickle was loaded"
    assert passed.decision == "reset" and passed.executed == ("extract", "transform", "load"), passed
    assert_nothing_lost(before, between[0])
    assert orders.state(store=store).latest_entry(orders.fingerprint(SEED)).outcome == "interrupted: UntrustedObjectError"
    _verify_reports(env, planted, "it is not signed")
    key = planted.relative_to(env.root).as_posix()
    assert isinstance(refused.error, StoreError), refused
    assert f"refused key '{key}': it is not signed" in str(refused.error) and NOT_UNPICKLED in str(refused.error)


@row(
    where="stored object (signed store)",
    hostile="a signed store opened by a worker configured without the `signing_key`",
    sees="`UntrustedObjectError` (a `StoreError`): LocalStore <store>: refused key "
    "'workflows/orders-acme/payloads/<fp>.pickle': it is signed (HMAC-SHA256) and this store has no signing_key to "
    "check it: give the store the signing_key it was written with; nothing was unpickled",
    goes_on="a worker with the key runs the next message",
    kept=KEPT,
)
def signed_store_without_key(env: Env) -> None:
    env.signing_key = SIGNING_KEY
    orders = make_workflow()
    assert orders.run(SEED, store=env.store).ok
    before = env.snapshot()
    [failed] = work_queue(orders, [SEED], store=LocalStore(env.root))
    assert_nothing_lost(before, env.snapshot())
    [passed] = work_queue(orders, [GOOD], store=env.store)
    assert passed.decision == "reset", passed
    fingerprint = orders.fingerprint(SEED)
    assert isinstance(failed.error, StoreError), failed
    assert f"refused key 'workflows/orders-acme/payloads/{fingerprint}.pickle': it is signed (HMAC-SHA256) and this " \
           "store has no signing_key to check it" in str(failed.error), failed.text


@row(
    where="stored object (signed store)",
    hostile="a `signing_key` shorter than 16 bytes ('hunter2')",
    sees="`ValueError`: signing_key is too short: it must be at least 16 bytes (use a random one, e.g. "
    "secrets.token_urlsafe(32)); the key itself is in no message or repr",
    goes_on="refused before anything is read or written; a store built with a proper key runs",
    kept="the store is untouched",
)
def signing_key_too_short(env: Env) -> None:
    env.signing_key = SIGNING_KEY
    assert make_workflow().run(SEED, store=env.store).ok
    before = env.snapshot()
    with pytest.raises(ValueError) as refused:
        LocalStore(env.root, signing_key="hunter2")
    assert env.snapshot() == before
    assert make_workflow().run(GOOD, store=env.store).decision == "reset"
    assert "signing_key is too short: it must be at least 16 bytes" in str(refused.value)
    assert "hunter2" not in str(refused.value) and SIGNING_KEY not in repr(env.store) + repr(env.resource)
