"""Input-change policies: which steps run, and what happens to prior checkpoints."""

import copy
import dataclasses
import pickle
from dataclasses import FrozenInstanceError
from typing import Any, NamedTuple

import pydantic
import pytest
from deepdiff import DeepDiff
from dotflow.core.exception import InputChangedError as DotflowInputChangedError
from hypothesis import given, settings
from hypothesis import strategies as st

from dotflow_dagster import InputChange, InputChangedError, LocalStore, UnknownFingerprintError
from dotflow_dagster import diff as diff_module
from dotflow_dagster.paths import format_path, parse_paths, redact
from dotflow_dagster.policy import ChangeDescription, describe_changes
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


def test_retention_deletes_checkpoints_and_payloads_of_old_fingerprints(store):
    workflow = make_workflow("reset", retention=1)
    fingerprints = [workflow.run({"v": value}, store=store).fingerprint for value in (1, 2, 3)]
    assert checkpoint_folders(store) == set(fingerprints[1:])
    with pytest.raises(UnknownFingerprintError, match="retention has pruned its payload"):
        workflow.run_fingerprint(fingerprints[0], store=store)
    newest = workflow.run_fingerprint(fingerprints[1], store=store)  # retained: still runnable by key
    assert newest.decision == "reset" and newest.outputs["transform"] == {"total": 12}


def test_refused_inputs_count_among_the_most_recent_decisions(store):
    workflow = make_workflow("reset", retention=1)
    first = workflow.run({"v": 1}, store=store).fingerprint
    second = workflow.run({"v": 2}, store=store).fingerprint
    with pytest.raises(InputChangedError):
        workflow.run({"v": 3}, store=store, on_input_change="raise")
    workflow.run({"v": 2}, store=store)
    assert checkpoint_folders(store) == {second}  # the refusal is the 1 most recent earlier decision
    assert workflow.retained_fingerprints(store=store) == {second, workflow.fingerprint({"v": 3})}
    assert not store.exists(workflow.ledger(store=store).payload_key(first))


def test_an_unreadable_checkpoint_is_recomputed_not_fatal(store, side_effects):
    workflow = make_workflow()
    report = workflow.run(A, store=store)
    transform_key = next(step.key for step in workflow.steps if step.name == "transform")
    store.write_bytes(f"workflows/orders-acme/checkpoints/{report.fingerprint}/{transform_key}", b"not a pickle")
    again = workflow.run(A, store=store)
    assert again.ok and again.resumed == ["extract"] and again.executed == ["transform", "load"]


# --- describe_changes: the fast, bounded differ --------------------------------------------------

PROPERTY = settings(max_examples=150, deadline=None)


def stored(payload: Any) -> Any:
    """The payload as the ledger hands it back: an unpickled copy sharing no object with the input."""
    return pickle.loads(pickle.dumps(payload))


def line_paths(description: ChangeDescription) -> list[str]:
    return [line.split(": ", 1)[0] for line in description.lines if not line.startswith("...")]


def orders(count: int) -> dict:
    return {
        "batch": "b-1",
        "orders": [
            {"id": f"ORD-{n:04d}", "qty": n % 7, "customer": {"name": f"c{n}"}, "tags": ["a", "b"]}
            for n in range(count)
        ],
    }


def test_describe_changes_lists_changed_added_and_removed_values_sorted_by_path():
    before = {"v": 1, "gone": {"x": 1}, "rows": [0] * 12, "same": [{"a": 1}] * 3}
    after = {"v": 2, "new": "n", "rows": [0] * 2 + [5] + [0] * 7 + [6, 0], "same": [{"a": 1}] * 3}
    description = describe_changes(stored(before), after)
    assert description.lines == (
        "root['gone']: removed {'x': 1}",
        "root['new']: added 'n'",
        "root['rows'][2]: 0 -> 5",
        "root['rows'][10]: 0 -> 6",  # numeric order, not text order
        "root['v']: 1 -> 2",
    )
    assert (description.found, description.shown, description.exhaustive, description.complete) == (5, 5, True, True)
    assert description.text == "\n".join(description.lines)


def test_long_values_are_shortened_and_a_resized_list_says_where_it_changed():
    before = orders(50)
    appended = copy.deepcopy(before)
    appended["orders"].append({"id": "ORD-new", "qty": 1})
    removed = copy.deepcopy(before)
    del removed["orders"][3]
    (added_line,) = describe_changes(before, appended).lines
    assert added_line.startswith("root['orders']: 50 -> 51 items; added at [50]: {'id': 'ORD-new', 'qty': 1}")
    (removed_line,) = describe_changes(before, removed).lines
    assert removed_line.startswith("root['orders']: 50 -> 49 items; removed at [3]: {'id': 'ORD-0003'")
    assert len(removed_line) < 200
    long_text = describe_changes({"s": "x" * 10_000}, {"s": "y" * 10_000}).lines[0]
    assert long_text.endswith("...") and len(long_text) < 200


@dataclasses.dataclass(eq=False)  # compares by identity: equal content must still be no change
class Line:
    sku: str
    qty: int


@dataclasses.dataclass(frozen=True)
class Order:
    sku: str
    qty: int


class Customer(pydantic.BaseModel):
    name: str
    vip: bool


def test_values_that_are_equal_are_never_reported():
    nan = float("nan")
    before = {"ratio": nan, "line": Line("A", 1), "rows": [{"x": nan}], "v": 1}
    after = {"ratio": float("nan"), "line": Line("A", 1), "rows": [{"x": float("nan")}], "v": 2}
    assert describe_changes(stored(before), after).lines == ("root['v']: 1 -> 2",)
    assert describe_changes(stored(before), {**after, "v": 1}).lines == ()
    assert describe_changes(before, {**after, "v": 1}).text.strip().startswith("(no visible change")


@pytest.mark.parametrize(
    ("before", "after", "line"),
    [
        ({"qty": 1, "n": [1]}, {"qty": 1.0, "n": [1]}, "root['qty']: 1 -> 1.0"),
        ({"flag": 1}, {"flag": True}, "root['flag']: 1 -> True"),
        ({"x": [0.0]}, {"x": [-0.0]}, "root['x'][0]: 0.0 -> -0.0"),
    ],
)
def test_type_only_changes_hidden_by_equality_are_found_when_nothing_else_differs(before, after, line):
    description = describe_changes(stored(before), after)
    assert description.lines == (line,)
    assert dict(description.diff) == dict(DeepDiff(before, after))


def test_dataclass_fields_and_pydantic_fields_are_walked_into():
    before = {"order": Order("A", 1), "customer": Customer(name="ada", vip=False)}
    after = {"order": Order("A", 2), "customer": Customer(name="ada", vip=True)}
    assert describe_changes(stored(before), after).lines == (
        "root['customer']['vip']: False -> True",
        "root['order'].qty: 1 -> 2",
    )


def test_ignored_paths_are_not_compared():
    before = {"v": 1, "at": "09:00", "rows": [{"ts": 1, "x": 1}, 2], "tail": [1, 9]}
    after = {"v": 1, "at": "10:00", "rows": [{"ts": 2, "x": 1}, 2], "tail": [1]}
    ignore = parse_paths(["root['at']", "root['rows'][0]['ts']", "root['tail'][1]"])
    assert describe_changes(before, after, ignore_paths=ignore).lines == ()
    assert describe_changes(before, {**after, "v": 2}, ignore_paths=ignore).lines == ("root['v']: 1 -> 2",)


# --- redaction -------------------------------------------------------------------------------------


@dataclasses.dataclass
class Account:
    user: str
    secret: str


class Login(pydantic.BaseModel):
    user: str
    secret: str


class Pair(NamedTuple):
    user: str
    secret: str


@pytest.mark.parametrize(
    ("path", "before", "after", "expected"),
    [
        # the secret itself changed, nested and in lists (by index, by negative index)
        ("root['auth']['token']", {"auth": {"token": "SECRET-1"}}, {"auth": {"token": "SECRET-2"}},
         "root['auth']['token']: *** -> *** (redacted value changed)"),
        ("root['users'][1]['pin']", {"users": [{"pin": "0"}, {"pin": "SECRET-2"}]},
         {"users": [{"pin": "1"}, {"pin": "SECRET-3"}]},
         "root['users'][1]['pin']: *** -> *** (redacted value changed)"),
        ("root['keys'][-1]", {"keys": ["pub", "SECRET-1"]}, {"keys": ["pub", "SECRET-2"]},
         "root['keys'][1]: *** -> *** (redacted value changed)"),
        # a change inside the redacted value is reported at the redacted path
        ("root['creds']", {"creds": {"a": {"b": "SECRET-1"}}}, {"creds": {"a": {"b": "SECRET-2"}, "c": 1}},
         "root['creds']: *** -> *** (redacted value changed)"),
        # fields of dataclasses, pydantic models and namedtuples
        ("root['acct'].secret", {"acct": Account("ada", "SECRET-1")}, {"acct": Account("ada", "SECRET-2")},
         "root['acct'].secret: *** -> *** (redacted value changed)"),
        ("root['login']['secret']", {"login": Login(user="ada", secret="SECRET-1")},
         {"login": Login(user="ada", secret="SECRET-2")},
         "root['login']['secret']: *** -> *** (redacted value changed)"),
        ("root['pair'].secret", {"pair": Pair("ada", "SECRET-1")}, {"pair": Pair("ada", "SECRET-2")},
         "root['pair'][1]: *** -> *** (redacted value changed)"),
        # a change at an ancestor shows the whole value, with the secret still hidden
        ("root['users'][0]['pin']", {"users": [{"pin": "SECRET-1"}]}, {"users": [{"pin": "SECRET-2"}, {"pin": "x"}]},
         "root['users']: [{'pin': '***'}] -> [{'pin': '***'}, {'pin': 'x'}]"),
        ("root['cfg']['token']", {"cfg": "plain"}, {"cfg": {"token": "SECRET-2"}},
         "root['cfg']: 'plain' -> {'token': '***'}"),
        ("root['new']['token']", {}, {"new": {"token": "SECRET-2", "n": 1}},
         "root['new']: added {'token': '***', 'n': 1}"),
        ("root['acct'].secret", {"acct": None}, {"acct": Account("ada", "SECRET-2")},
         "root['acct']: None -> Account(user='ada', secret='***')"),
        ("root['login']['secret']", {"login": None}, {"login": Login(user="ada", secret="SECRET-2")},
         "root['login']: None -> Login(user='ada', secret='***')"),
        ("root['pair'].secret", {"pair": None}, {"pair": Pair("ada", "SECRET-2")},
         "root['pair']: None -> Pair(user='ada', secret='***')"),
        ("root['keys'][-1]", {"keys": ["SECRET-1"]}, {"keys": ["pub", "SECRET-2"]},
         "root['keys']: ['***'] -> ['pub', '***']"),
    ],
)
def test_redacted_values_never_appear_whatever_changes_around_them(path, before, after, expected):
    description = describe_changes(stored(before), after, redact_paths=parse_paths([path]))
    assert expected in description.lines
    shown = "\n".join(description.lines) + repr(description.previous) + repr(description.current)
    shown += repr(dict(description.diff))
    assert "SECRET" not in shown


def test_an_unchanged_secret_is_not_reported():
    before = {"token": "SECRET-1", "v": 1}
    description = describe_changes(stored(before), {"token": "SECRET-1", "v": 2}, redact_paths=[("token",)])
    assert description.lines == ("root['v']: 1 -> 2",)


# --- bounds ----------------------------------------------------------------------------------------


def test_max_lines_keeps_the_first_changes_and_counts_the_rest():
    before = {f"k{n}": n for n in range(5)}
    description = describe_changes(before, {key: value + 1 for key, value in before.items()}, max_lines=2)
    assert description.lines == (
        "root['k0']: 0 -> 1",
        "root['k1']: 1 -> 2",
        "... diff cut short after 2 changes; 3 more not shown",
    )
    assert (description.found, description.shown, description.exhaustive, description.complete) == (5, 2, True, False)


def test_node_budget_cuts_the_walk_short_and_says_so():
    before = orders(200)
    after = copy.deepcopy(before)
    for order in after["orders"]:
        order["qty"] += 1
    description = describe_changes(before, after, max_nodes=300, max_lines=3)
    *changes, last = description.lines
    assert not description.exhaustive and not description.complete
    assert 3 < description.found < 200 and len(changes) == 3
    assert last.startswith("... diff cut short after ") and "values compared (node budget reached)" in last
    assert last.endswith("the rest of the payload was not compared")
    assert f"{description.found} changes found, {description.found - 3} more not shown" in last
    everything = describe_changes(before, after, max_lines=1000).lines
    assert len(everything) == 200 and set(changes) <= set(everything)  # what is shown is accurate


def test_time_budget_cuts_the_walk_short_and_says_so():
    description = describe_changes(orders(10), orders(11), budget_seconds=0.0)
    assert description.lines[-1].startswith("... diff cut short after ")
    assert "(time budget reached): 0 changes found; the rest of the payload was not compared" in description.lines[-1]


# --- InputChange.diff: a DeepDiff built only when a hook reads it ---------------------------------


def test_input_change_builds_its_deepdiff_only_when_read(monkeypatch):
    built = []
    real = diff_module._pruned_deepdiff
    monkeypatch.setattr(diff_module, "_pruned_deepdiff", lambda *args: built.append(args) or real(*args))
    description = describe_changes(stored(A), {**B, "token": "s3cr3t-B"}, redact_paths=[("token",)])
    change = InputChange.from_description(
        description, workflow_id="orders-acme", previous_fingerprint="f1", current_fingerprint="f2"
    )
    assert change.changes == description.lines and change.diff_text == description.text
    assert change.previous_payload == {**A, "token": "***"}
    repr(change), change == change  # neither builds it
    assert built == []
    assert change.diff["values_changed"] == {"root['v']": {"new_value": 2, "old_value": 1}}
    assert change.diff is change.diff and len(built) == 1
    with pytest.raises(FrozenInstanceError):
        change.diff = DeepDiff(1, 2)  # type: ignore[misc]


def test_input_change_still_accepts_a_diff_and_builds_one_without_a_description():
    given_diff = DeepDiff({"v": 1}, {"v": 2})
    change = InputChange("w", "f1", "f2", {"v": 1}, {"v": 2}, given_diff, ("root['v']: 1 -> 2",))
    assert change.diff is given_diff and change.diff_text == "root['v']: 1 -> 2"
    bare = InputChange(workflow_id="w", previous_fingerprint="f1", current_fingerprint="f2",
                       previous_payload={"v": 1}, current_payload={"v": 3})
    assert bare.diff["values_changed"] == {"root['v']": {"new_value": 3, "old_value": 1}}


@pytest.mark.parametrize(
    ("before", "after", "ignore"),
    [
        (orders(30), "one value", ()),
        (orders(30), "appended", ()),
        (orders(30), "removed", ()),
        (orders(30), "one value", ("root['orders'][7]['qty']", "root['batch']")),
        ({"a": 1, "b": 2, "c": 3, "d": {"x": 1}}, {"e": 1, "f": 2, "d": {"x": 2}}, ()),  # few keys in common
        ({"a": {"k1": 1, "k2": 2, "k3": 3}}, {"a": {"k1": 1, "k4": 4, "k5": 5, "k6": 6}}, ("root['a']['k1']",)),
        ({"l": [1, 2, 3, 9]}, {"l": [2, 3, 4, 9]}, ()),  # basic items: DeepDiff aligns them with difflib
        ({"l": [{"a": 1}, 2, 3, {"b": 1}]}, {"l": [{"a": 1}, 3, 2, {"b": 2}, 5]}, ()),
        ({"t": ({"a": 1}, [1, 2], "x")}, {"t": ({"a": 2}, [1, 2], "x")}, ()),
        ({"m": [[{"a": 1}], [{"a": 2}]]}, {"m": [[{"a": 1}], [{"a": 3}, {"z": 0}]]}, ()),
        ({"v": 1, "w": [1]}, {"v": 1.0, "w": [True]}, ()),  # only type changes
    ],
)
def test_deepdiff_on_pruned_payloads_equals_deepdiff_on_full_payloads(before, after, ignore):
    if isinstance(after, str):
        changed = copy.deepcopy(before)
        if after == "one value":
            changed["orders"][7]["customer"]["name"] = "renamed"
            changed["orders"][7]["qty"] += 1
        elif after == "appended":
            changed["orders"].append({"id": "ORD-new"})
        else:
            del changed["orders"][0]
        after = changed
    full = DeepDiff(before, after, exclude_paths=list(ignore))
    pruned = describe_changes(stored(before), after, ignore_paths=parse_paths(ignore)).diff
    assert set(pruned.affected_paths) == set(full.affected_paths)
    assert dict(pruned) == dict(full)


# --- properties against DeepDiff -------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "c", "d"])
# No two leaves of different types compare equal (no bools, no integral floats): equality is
# where == and DeepDiff agree; type-only changes have their own tests above.
LEAVES = st.one_of(st.none(), st.integers(-2, 2), st.sampled_from(["x", "y", ""]), st.sampled_from([0.5, -1.5]))
VALUES = st.recursive(
    LEAVES,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(KEYS, children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
    ),
    max_leaves=20,
)


@st.composite
def mutated(draw: st.DrawFn, value: Any) -> Any:
    """``value`` with a few random edits: replaced subtrees, added/removed keys and items."""
    if draw(st.integers(0, 7)) == 0:
        return draw(VALUES)
    if isinstance(value, dict):
        result = {key: draw(mutated(item)) if draw(st.booleans()) else item for key, item in value.items()}
        if result and draw(st.integers(0, 3)) == 0:
            del result[draw(st.sampled_from(sorted(result)))]
        if draw(st.integers(0, 3)) == 0:
            result[draw(KEYS)] = draw(VALUES)
        return result
    if isinstance(value, list | tuple):
        items = [draw(mutated(item)) if draw(st.booleans()) else item for item in value]
        if draw(st.integers(0, 4)) == 0:
            items.insert(draw(st.integers(0, len(items))), draw(VALUES))
        if items and draw(st.integers(0, 4)) == 0:
            items.pop(draw(st.integers(0, len(items) - 1)))
        return type(value)(items)
    return value


@st.composite
def payload_pairs(draw: st.DrawFn) -> tuple[dict, dict]:
    before = draw(st.dictionaries(KEYS, VALUES, min_size=1, max_size=4))
    return stored(before), draw(mutated(before))


def all_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list | tuple):
        items = list(enumerate(value))
    else:
        return []
    return [path for key, item in items for path in [(*prefix, key), *all_paths(item, (*prefix, key))]]


def related(outer: str, inner: str) -> bool:
    return inner == outer or inner.startswith(outer + "[")


@PROPERTY
@given(pair=payload_pairs(), data=st.data())
def test_lines_agree_with_deepdiff_no_false_changes_and_none_missed(pair, data):
    before, after = pair
    candidates = all_paths(before)
    ignore = data.draw(st.lists(st.sampled_from(candidates), max_size=2)) if candidates else []
    description = describe_changes(before, after, ignore_paths=ignore, max_lines=10_000)
    # DeepDiff pairing list items by index and always looking inside dicts, as our walk does.
    oracle = DeepDiff(before, after, exclude_paths=[format_path(path) for path in ignore],
                      zip_ordered_iterables=True, threshold_to_diff_deeper=0)
    expected, shown = set(oracle.affected_paths), line_paths(description)
    assert description.complete
    for path in shown:  # no false change: each line covers something DeepDiff reports
        assert any(related(path, deeper) for deeper in expected), (path, expected)
    for deeper in expected:  # nothing missed: each DeepDiff path is at or under a line
        assert any(related(path, deeper) for path in shown), (deeper, shown)
    assert len(shown) == len(set(shown))


@PROPERTY
@given(pair=payload_pairs(), data=st.data())
def test_pruned_deepdiff_equals_deepdiff_on_the_full_redacted_payloads(pair, data):
    before, after = pair
    candidates = all_paths(before)
    ignore = data.draw(st.lists(st.sampled_from(candidates), max_size=2)) if candidates else []
    secret = data.draw(st.lists(st.sampled_from(candidates), max_size=2)) if candidates else []
    description = describe_changes(before, after, ignore_paths=ignore, redact_paths=secret)
    full = DeepDiff(redact(before, secret), redact(after, secret), exclude_paths=[format_path(path) for path in ignore])
    assert set(description.diff.affected_paths) == set(full.affected_paths)
    assert dict(description.diff) == dict(full)


def settable_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Paths of ``value`` whose every container is a dict or a list (so a test can write there)."""
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return []
    return [path for key, item in items for path in [(*prefix, key), *settable_paths(item, (*prefix, key))]]


def place(payload: Any, path: tuple, value: Any) -> None:
    container = payload
    for element in path[:-1]:
        container = container[element]
    container[path[-1]] = value


@PROPERTY
@given(pair=payload_pairs(), data=st.data())
def test_secrets_never_appear_and_their_changes_are_reported(pair, data):
    before, after = copy.deepcopy(pair)
    in_after = set(settable_paths(after))
    candidates = [path for path in settable_paths(before) if path in in_after]
    drawn = data.draw(st.lists(st.sampled_from(candidates), max_size=3, unique=True)) if candidates else []
    secrets = [path for path in drawn if not any(other != path and path[: len(other)] == other for other in drawn)]
    changed = set()
    for number, path in enumerate(secrets):
        old = f"SECRET-{number}-old"
        new = data.draw(st.sampled_from([old, f"SECRET-{number}-new", {"pin": f"SECRET-{number}-pin"}]))
        place(before, path, old)
        place(after, path, new)
        if new != old:
            changed.add(format_path(path))
    description = describe_changes(stored(before), after, redact_paths=secrets, max_lines=10_000)
    shown = "\n".join(description.lines) + repr(description.previous) + repr(description.current)
    assert "SECRET" not in shown + repr(dict(description.diff))
    reported = line_paths(description)
    for path in changed:  # reported at the secret's path, or inside a larger change around it
        assert any(related(outer, path) for outer in reported), (path, description.lines)
    for line in description.lines:
        if "(redacted value changed)" in line:
            assert line.split(": ", 1)[0] in changed
