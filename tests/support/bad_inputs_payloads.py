"""Bad-input rows for the core: hostile payloads in a queue worker, workflow ids, path lists.

Every payload row runs a queue worker's loop (``work_queue``: each message on its own, as
``example_project/queue_worker.py`` and the Lambda handler do) over the hostile payload and
then a good one, on a store that already holds an earlier input's ledger, payload and
checkpoints.

Example:
    >>> from tests.support.bad_inputs_table import ROWS
    >>> import tests.support.bad_inputs_payloads
    >>> any(item.name == "reference_cycle" for item in ROWS)
    True
"""

import dataclasses
from typing import Any

import pytest
from dotflow import action

from dotflow_dagster import DotflowWorkflow, FingerprintError, InputChangedError
from tests.support.bad_inputs_harness import Env, Outcome, assert_nothing_lost, work_queue
from tests.support.bad_inputs_table import row
from tests.support.flow import extract, make_workflow

__all__ = ["GOOD", "SEED", "Creds", "Sealed", "refused_by_worker"]

SEED, GOOD = {"v": 1}, {"v": 2}
ALL_STEPS = ("extract", "transform", "load")


@dataclasses.dataclass(frozen=True)
class Creds:
    """A payload field holding a secret: ``redact_paths`` reaches it as ``root['c'].token``."""

    user: str
    token: str


@dataclasses.dataclass(frozen=True)
class Sealed:
    """A dataclass that fingerprints (by its fields) but refuses to be pickled."""

    ref: int

    def __reduce__(self):
        raise RuntimeError("Sealed objects are not for pickling")


class _Opaque:
    """Hashable (by identity) but without a canonical encoding."""


@action
def keep(initial_context):
    return initial_context.storage


@action
def export(initial_context):
    return Sealed(1) if initial_context.storage.get("sealed") else initial_context.storage["v"]


def refused_by_worker(
    env: Env,
    bad: Any,
    *,
    error: type[BaseException],
    names: list[str],
    workflow: DotflowWorkflow | None = None,
    seed: Any = SEED,
    good: Any = GOOD,
    good_decision: str = "reset",
    untouched: bool = False,
) -> Outcome:
    """Seed the store, feed ``bad`` then ``good`` to one worker loop, check all three promises.

    The refusal is an ``error`` whose message holds every fragment of ``names``; the good message
    after it is decided ``good_decision`` and runs; everything stored before the bad message is
    still there after it, and with ``untouched`` the bad message wrote nothing at all.
    """
    workflow = workflow or make_workflow()
    store = env.store
    assert workflow.run(seed, store=store).ok
    before = env.snapshot()
    between: list[dict[str, bytes]] = []
    failed, passed = work_queue(workflow, [bad, good], store=store, after_each=lambda _: between.append(env.snapshot()))
    assert isinstance(failed.error, error), failed.text or failed
    for fragment in names:
        assert fragment in str(failed.error), (fragment, failed.text)
    assert passed.error is None and passed.decision == good_decision, passed
    assert_nothing_lost(before, between[0])
    if untouched:
        assert between[0] == before, "the refused payload left something in the store"
    return failed


GOES_ON = "the worker's next message runs"
KEPT = "the ledger, payloads and checkpoints of earlier inputs, byte for byte"


@row(
    where="payload (a queue worker's `run`)",
    hostile="a dict that contains itself (a reference cycle)",
    sees="`FingerprintError`: cannot fingerprint value at root['self']: this 'dict' contains itself (a reference "
    "cycle); payloads must be trees",
    goes_on=GOES_ON,
    kept=KEPT + "; nothing of the refused payload is stored",
)
def reference_cycle(env: Env) -> None:
    payload: dict[str, Any] = {"v": 3}
    payload["self"] = payload
    refused_by_worker(env, payload, error=FingerprintError, names=["root['self']", "reference cycle"], untouched=True)


@row(
    where="payload (a queue worker's `run`)",
    hostile="lists nested 300 deep",
    sees="`FingerprintError`: cannot fingerprint value at root: the payload is nested more deeply than the encoder "
    "accepts (254 levels, ...); never a `RecursionError` or a crash",
    goes_on=GOES_ON,
    kept=KEPT,
)
def nested_300_deep(env: Env) -> None:
    deep: list = []
    for _ in range(300):
        deep = [deep]
    refused_by_worker(env, {"v": 3, "deep": deep}, error=FingerprintError, names=["at root", "254 levels"],
                      untouched=True)


@row(
    where="payload (a queue worker's `run`)",
    hostile="NaN as a dict key (two different NaN objects)",
    sees="nothing to refuse: NaN has a canonical encoding, so two NaN objects as keys give one fingerprint and the "
    "second message is `unchanged`",
    goes_on="both messages are handled; the second executes nothing",
    kept=KEPT,
)
def nan_keys(env: Env) -> None:
    workflow, store = make_workflow(), env.store
    assert workflow.run(SEED, store=store).ok
    before = env.snapshot()
    first, second = work_queue(workflow, [{"v": 3, float("nan"): 1}, {"v": 3, float("nan"): 1}], store=store)
    assert (first.decision, first.executed) == ("reset", ALL_STEPS), first
    assert (second.decision, second.executed) == ("unchanged", ()), second
    assert_nothing_lost(before, env.snapshot(), decided=True)


@row(
    where="payload (a queue worker's `run`)",
    hostile="a changed payload holding a 5000-digit integer",
    sees="nothing to refuse: fingerprints support such integers, so the change is decided (`reset`) and runs; "
    "its diff, which Python cannot write in decimal beyond 4300 digits, shows root['n']: added <int of 5001 "
    "digits: ...0000000000>",
    goes_on=GOES_ON,
    kept=KEPT,
)
def changed_huge_integer(env: Env) -> None:
    workflow, store = make_workflow(), env.store
    assert workflow.run(SEED, store=store).ok
    before = env.snapshot()
    between: list[dict[str, bytes]] = []
    huge, good = work_queue(workflow, [{"v": 3, "n": 10**5000}, GOOD], store=store,
                            after_each=lambda _: between.append(env.snapshot()))
    assert good.decision == "reset", good
    assert_nothing_lost(before, between[0], decided=True)
    assert huge.error is None and (huge.decision, huge.executed) == ("reset", ALL_STEPS), huge.text
    assert huge.changes == ("root['n']: added <int of 5001 digits: ...0000000000>", "root['v']: 1 -> 3"), huge.changes
    assert "root['n']: removed <int of 5001 digits: ...0000000000>" in good.changes, good.changes


@row(
    where="payload (a queue worker's `run`)",
    hostile="a set of plain objects (hashable by identity, no canonical encoding)",
    sees="`FingerprintError`: cannot fingerprint an element of the set at root['s']: unsupported type '_Opaque' "
    "(supported: ...); never `repr()`, whose addresses change between processes",
    goes_on=GOES_ON,
    kept=KEPT,
)
def set_of_opaque_objects(env: Env) -> None:
    refused_by_worker(
        env, {"v": 3, "s": {_Opaque(), _Opaque()}}, error=FingerprintError,
        names=["an element of the set at root['s']", "unsupported type '_Opaque'"], untouched=True,
    )


@row(
    where="payload (a queue worker's `run`)",
    hostile="a dataclass whose `__reduce__` raises (it fingerprints by its fields, but cannot be pickled)",
    sees="`ValueError`: workflow 'orders-acme': the payload with fingerprint <fp> cannot be stored (pickled): "
    "RuntimeError: ... (the object's own error)",
    goes_on=GOES_ON,
    kept=KEPT + "; nothing of the payload is stored",
)
def payload_refusing_pickle(env: Env) -> None:
    failed = refused_by_worker(env, {"v": 3, "sealed": Sealed(1)}, error=Exception, names=["Sealed"], untouched=True)
    assert "'orders-acme'" in str(failed.error) and "stored" in str(failed.error), failed.text


@row(
    where="payload (a queue worker's `run`)",
    hostile="a step returns an object whose `__reduce__` raises",
    sees="the step fails: `report.error` = step returned a Sealed that cannot be checkpointed: RuntimeError: ...; "
    "the ledger records `failed at export`",
    goes_on=GOES_ON + "; running the same payload again executes the step again",
    kept=KEPT + "; no checkpoint is written for the failed step",
)
def step_result_refusing_pickle(env: Env) -> None:
    workflow = DotflowWorkflow("exports", steps=[export])
    store = env.store
    assert workflow.run({"v": 1}, store=store).ok
    before = env.snapshot()
    between: list[dict[str, bytes]] = []
    failed, passed = work_queue(workflow, [{"v": 3, "sealed": True}, {"v": 2}], store=store,
                                after_each=lambda _: between.append(env.snapshot()))
    assert failed.error is None and failed.failed_step == "export", failed
    assert "step returned a Sealed that cannot be checkpointed: RuntimeError: Sealed objects" in failed.step_error
    assert passed.decision == "reset" and passed.executed == ("export",), passed
    assert_nothing_lost(before, between[0], decided=True)
    fingerprint = workflow.fingerprint({"v": 3, "sealed": True})
    assert not [key for key in between[0] if f"checkpoints/{fingerprint}/" in key]
    assert workflow.state(store=store).latest_entry(fingerprint).outcome == "failed at export"
    [again] = work_queue(workflow, [{"v": 3, "sealed": True}], store=store)
    assert (again.resumed, again.failed_step) == ((), "export"), again  # executed again, not taken as done


@row(
    where="payload (a queue worker's `run`)",
    hostile="a changed dataclass field holding a secret, under `on_input_change=\"raise\"` "
    "(`redact_paths=[\"root['c'].token\"]`)",
    sees="`InputChangedError`: input for workflow 'creds' changed from fingerprint ... to ...; changes: "
    "root['c'].token: *** -> *** (redacted value changed). The secret is in no message",
    goes_on="the worker's next message (the current input again) runs as `unchanged`",
    kept=KEPT + "; the refusal is added to the history",
)
def dataclass_secret_under_raise(env: Env) -> None:
    workflow = DotflowWorkflow("creds", steps=[keep], on_input_change="raise", redact_paths=["root['c'].token"])
    seed = {"v": 1, "c": Creds("ops", "tok-seed-8d2f")}
    failed = refused_by_worker(
        env, {"v": 1, "c": Creds("ops", "tok-new-51ac")}, error=InputChangedError, workflow=workflow, seed=seed,
        good=seed, good_decision="unchanged",
        names=["workflow 'creds'", "root['c'].token: *** -> *** (redacted value changed)"],
    )
    assert "tok-" not in str(failed.error)


@row(
    where="workflow id (a `fingerprint_fn` identity)",
    hostile="`fingerprint_fn` returns '../../etc' (path traversal through the identity)",
    sees="`ValueError`: workflow 'orders-by-id': fingerprint_fn returned '../../etc', which is not a valid identity "
    "...",
    goes_on=GOES_ON,
    kept=KEPT + "; nothing of the refused payload is stored, nothing is written outside the store",
)
def identity_path_traversal(env: Env) -> None:
    workflow = DotflowWorkflow("orders-by-id", steps=[keep], fingerprint_fn=lambda payload: payload["id"])
    refused_by_worker(
        env, {"id": "../../etc"}, error=ValueError, workflow=workflow, seed={"id": "order-1"}, good={"id": "order-2"},
        names=["workflow 'orders-by-id'", "'../../etc'"], untouched=True,
    )
    assert not (env.root.parent / "etc").exists() and sorted(path.name for path in env.root.iterdir()) == ["workflows"]


def _refused_at_definition(env: Env, build, *, error: type[BaseException], names: list[str]) -> None:
    """A definition-time refusal: the store is untouched and the other workflows still run."""
    store = env.store
    assert make_workflow().run(SEED, store=store).ok
    before = env.snapshot()
    with pytest.raises(error) as refused:
        build()
    assert env.snapshot() == before
    assert make_workflow().run(GOOD, store=store).decision == "reset"
    for fragment in names:
        assert fragment in str(refused.value), (fragment, str(refused.value))


@row(
    where="workflow id (`DotflowWorkflow(...)`)",
    hostile="'../etc' (path traversal), 129 characters, '..', or the int 7",
    sees="`ValueError`: invalid workflow_id '../etc': use 1-128 characters of letters, digits, '.', '_' or '-', "
    "not '.' or '..' (the value shown as given, `7` for an int)",
    goes_on="refused when the code location loads; the other workflows build and run",
    kept="the store is untouched",
)
def invalid_workflow_ids(env: Env) -> None:
    for workflow_id, shown in [("../etc", "'../etc'"), ("x" * 129, "'" + "x" * 129 + "'"), ("..", "'..'"), (7, "7")]:
        _refused_at_definition(env, lambda wid=workflow_id: DotflowWorkflow(wid, steps=[extract]), error=ValueError,
                               names=[f"invalid workflow_id {shown}:"])


@row(
    where="paths (`ignore_paths`)",
    hostile="a malformed path: \"root['a'\"",
    sees="`ValueError`: payload path \"root['a'\" is not valid: expected ']' at character 8; expected root followed "
    "by ['key'], [index] or .name, e.g. \"root['items'][0].sku\"",
    goes_on="refused when the code location loads; the other workflows build and run",
    kept="the store is untouched",
)
def malformed_ignore_path(env: Env) -> None:
    _refused_at_definition(
        env, lambda: DotflowWorkflow("orders-acme", steps=[extract], ignore_paths=["root['a'"]), error=ValueError,
        names=["payload path \"root['a'\" is not valid", "at character 8"],
    )


@row(
    where="paths (`redact_paths`)",
    hostile="a single string instead of a list: \"root['api_token']\"",
    sees="`TypeError`: payload paths must be a list of paths, not the single string \"root['api_token']\"; write "
    "[\"root['api_token']\"]. A typo can never silently turn redaction off",
    goes_on="refused when the code location loads; the other workflows build and run",
    kept="the store is untouched",
)
def redact_paths_single_string(env: Env) -> None:
    _refused_at_definition(
        env, lambda: DotflowWorkflow("orders-acme", steps=[extract], redact_paths="root['api_token']"),
        error=TypeError, names=["not the single string \"root['api_token']\"", "write [\"root['api_token']\"]"],
    )


@row(
    where="paths (`validate_paths`)",
    hostile="`validate_paths` without a `fingerprint_fn`, or an entry without `root` ('amount')",
    sees="`ValueError`: workflow 'orders-acme': validate_paths need a fingerprint_fn ...; for 'amount': payload path "
    "'amount' is not valid: it must start with 'root' at character 0",
    goes_on="refused when the code location loads; the other workflows build and run",
    kept="the store is untouched",
)
def malformed_validate_paths(env: Env) -> None:
    _refused_at_definition(
        env, lambda: DotflowWorkflow("orders-acme", steps=[extract], validate_paths=["root['amount']"]),
        error=ValueError, names=["workflow 'orders-acme': validate_paths need a fingerprint_fn"],
    )
    _refused_at_definition(
        env,
        lambda: DotflowWorkflow("orders-acme", steps=[extract], validate_paths=["amount"], fingerprint_fn=str),
        error=ValueError, names=["payload path 'amount' is not valid: it must start with 'root'"],
    )


@row(
    where="paths (`redact_paths`)",
    hostile="a malformed entry (\"root['a'][*]\") in one of several workflows' path lists",
    sees="`ValueError`: workflow 'orders-acme': redact_paths: payload path \"root['a'][*]\" is not valid: ...: "
    "the workflow, the argument and the path",
    goes_on="refused when the code location loads; the other workflows build and run",
    kept="the store is untouched",
)
def malformed_path_names_its_workflow(env: Env) -> None:
    _refused_at_definition(
        env, lambda: DotflowWorkflow("orders-acme", steps=[extract], redact_paths=["root['a'][*]"]), error=ValueError,
        names=["workflow 'orders-acme': redact_paths: payload path \"root['a'][*]\" is not valid"],
    )


# -- declared reads (DotflowWorkflow(..., reads={step: [paths]})) -----------------------------------------


@row(
    where="paths (`reads`)",
    hostile="`reads` naming a step the workflow does not have ('lod')",
    sees="`ValueError`: workflow 'orders-acme': reads names step 'lod', which the workflow does not have (its steps: "
    "extract, transform, load)",
    goes_on="refused when the code location loads; the other workflows build and run",
    kept="the store is untouched",
)
def reads_unknown_step(env: Env) -> None:
    _refused_at_definition(
        env, lambda: make_workflow(reads={"lod": ["root['v']"]}), error=ValueError,
        names=["workflow 'orders-acme': reads names step 'lod', which the workflow does not have (its steps: "
               "extract, transform, load)"],
    )


@row(
    where="paths (`reads`)",
    hostile="a malformed path (\"root['v'\"), a single string, or a path into a list (\"root['items'][0]\") in "
    "`reads['load']`",
    sees="`ValueError`: workflow 'orders-acme': reads['load']: payload path \"root['v'\" is not valid: ...; "
    "... must be a list of paths, not the single string ...; path \"root['items'][0]\" reaches into a list ..., so "
    "declare the list itself, e.g. \"root['items']\"",
    goes_on="refused when the code location loads; the other workflows build and run",
    kept="the store is untouched",
)
def reads_malformed_paths(env: Env) -> None:
    cases = [
        (["root['v'"], "workflow 'orders-acme': reads['load']: payload path \"root['v'\" is not valid"),
        ("root['v']", "workflow 'orders-acme': reads['load'] must be a list of paths, not the single string"),
        (["root['items'][0]"], "workflow 'orders-acme': reads['load']: path \"root['items'][0]\" reaches into a list"),
    ]
    for paths, message in cases:
        _refused_at_definition(env, lambda paths=paths: make_workflow(reads={"load": paths}), error=ValueError,
                               names=[message])


@row(
    where="payload (a queue worker's `run`)",
    hostile="a step reads a payload key its `reads` do not declare",
    sees="the step fails at once: `report.error` = UndeclaredReadError: step 'extract' read root['v'], which it does "
    "not declare; its reads are: root['w'] (also through `.get()` and `in`: never a silent `None`)",
    goes_on="the worker's next message is handled (and fails the same way until the declaration is fixed)",
    kept=KEPT + "; no checkpoint is written for the failed step",
)
def reads_undeclared_at_run_time(env: Env) -> None:
    store = env.store
    assert make_workflow().run(SEED, store=store).ok
    misdeclared = make_workflow(reads={"extract": ["root['w']"]})
    before = env.snapshot()
    between: list[dict[str, bytes]] = []
    failed, next_one = work_queue(misdeclared, [{"v": 3, "w": 0}, {"v": 4, "w": 0}], store=store,
                                  after_each=lambda _: between.append(env.snapshot()))
    assert_nothing_lost(before, between[0], decided=True)
    assert (failed.error, next_one.error) == (None, None) and next_one.decision == "reset", (failed, next_one)
    assert (failed.failed_step, next_one.failed_step) == ("extract", "extract")
    assert "step 'extract' read root['v'], which it does not declare; its reads are: root['w']" in failed.step_error
    fingerprint = misdeclared.fingerprint({"v": 3, "w": 0})
    assert not [key for key in between[0] if f"checkpoints/{fingerprint}/" in key]
