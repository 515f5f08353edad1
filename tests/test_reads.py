"""Declared step reads: what a step sees, enforced under every policy, and refused declarations."""

import json
import pickle

import pytest
from dotflow import action

from dotflow_dagster import DotflowWorkflow
from dotflow_dagster.reads import PayloadView, UndeclaredReadError, parse_reads, project
from tests.support.incremental_flow import READS, make_workflow

PAYLOAD = {
    "source": "abc",
    "rate": 2,
    "table": "orders",
    "options": {"currency": "EUR", "rate_source": "ecb", "nested": {"deep": 1, "other": 2}},
    "items": [1, 2, 3],
}


def view_of(paths: list[str], payload=PAYLOAD) -> PayloadView:
    reads = parse_reads({"step": paths}, step_names=["step"], workflow_id="wf")["step"]
    return project(payload, reads, step="step")


def test_a_step_sees_exactly_its_declared_subtrees():
    view = view_of(["root['options']['currency']", "root['items']", "root['absent']"])
    assert view == {"options": {"currency": "EUR"}, "items": [1, 2, 3]}
    assert isinstance(view, dict) and isinstance(view["options"], dict)
    assert json.loads(json.dumps(view)) == {"options": {"currency": "EUR"}, "items": [1, 2, 3]}
    assert sorted(view) == ["items", "options"]


def test_a_declared_path_the_payload_lacks_is_absent_as_in_a_plain_dict():
    view = view_of(["root['absent']", "root['options']['missing']"])
    assert "absent" not in view
    assert view.get("absent", "default") == "default"
    with pytest.raises(KeyError) as raised:
        view["absent"]
    assert not isinstance(raised.value, UndeclaredReadError)
    assert view["options"].get("missing") is None


def test_a_broader_declaration_covers_the_narrower_one():
    view = view_of(["root['options']['nested']['deep']", "root['options']"])
    assert view == {"options": PAYLOAD["options"]}
    assert view["options"]["nested"]["other"] == 2


@pytest.mark.parametrize(
    "read",
    [
        pytest.param(lambda v: v["rate"], id="getitem"),
        pytest.param(lambda v: v.get("rate"), id="get"),
        pytest.param(lambda v: "rate" in v, id="in"),
        pytest.param(lambda v: v["options"]["rate_source"], id="nested-getitem"),
        pytest.param(lambda v: v["options"].get("rate_source", None), id="nested-get"),
        pytest.param(lambda v: "deep" in v["options"]["nested"], id="deeper-in"),
        pytest.param(lambda v: v.setdefault("rate", 1), id="setdefault"),
        pytest.param(lambda v: v.pop("rate", None), id="pop"),
        pytest.param(lambda v: v.copy()["rate"], id="copy"),
    ],
)
def test_reading_an_undeclared_key_fails_at_once_at_every_level(read):
    view = view_of(["root['source']", "root['options']['currency']", "root['options']['nested']['other']"])
    with pytest.raises(UndeclaredReadError) as raised:
        read(view)
    error = raised.value
    assert isinstance(error, KeyError)
    assert error.step == "step"
    assert error.declared == ("root['source']", "root['options']['currency']", "root['options']['nested']['other']")
    assert "which it does not declare" in str(error) and "root['source']" in str(error)
    assert pickle.loads(pickle.dumps(error)).path == error.path


def test_reads_nothing_means_an_empty_dict_that_refuses_every_key():
    view = view_of([])
    assert view == {}
    with pytest.raises(UndeclaredReadError, match=r"read root\['source'\].*reads are: nothing"):
        view["source"]


def test_a_view_pickles_to_a_plain_dict():
    view = view_of(["root['options']['currency']"])
    copy = pickle.loads(pickle.dumps(view))
    assert type(copy) is dict and type(copy["options"]) is dict
    assert copy == {"options": {"currency": "EUR"}}


@pytest.mark.parametrize("policy", ["reset", "reuse", "raise", "incremental"])
def test_a_step_reading_an_undeclared_key_fails_with_a_clear_error_under_every_policy(store, policy):
    @action
    def extract(initial_context):
        return initial_context.storage["rate"]  # declares only source

    workflow = DotflowWorkflow("reads-enforced", steps=[extract], on_input_change=policy, reads={"extract": ["root['source']"]})
    report = workflow.run(PAYLOAD, store=store)
    assert not report.ok and report.failed_step == "extract"
    assert "UndeclaredReadError" in report.error
    assert "step 'extract' read root['rate'], which it does not declare; its reads are: root['source']" in report.error


def test_a_step_writing_into_its_view_changes_nothing_for_the_others(store):
    seen = []

    @action
    def first(initial_context):
        initial_context.storage["options"]["currency"] = "USD"
        return None

    @action
    def second(initial_context):
        seen.append(initial_context.storage["options"]["currency"])

    workflow = DotflowWorkflow(
        "reads-isolated",
        steps=[first, second],
        reads={"first": ["root['options']['currency']"], "second": ["root['options']"]},
    )
    assert workflow.run(PAYLOAD, store=store).ok
    assert seen == ["EUR"] and PAYLOAD["options"]["currency"] == "EUR"


@pytest.mark.parametrize("payload", [[1, 2], "text", 3, None, (("source", "abc"),)])
def test_a_workflow_with_reads_refuses_a_payload_that_is_not_a_mapping_before_anything_runs(store, payload):
    workflow = make_workflow()
    with pytest.raises(ValueError, match=r"'incremental-acme' declares reads, so its payload must be a mapping"):
        workflow.run(payload, store=store)
    assert store.list_keys("workflows/") == []


@pytest.mark.parametrize(
    ("reads", "message"),
    [
        ({"extract": ["root[source"]}, r"reads\['extract'\]: payload path 'root\[source' is not valid"),
        ({"extract": ["root['a'"]}, r"reads\['extract'\]: payload path \"root\['a'\" is not valid"),
        ({"extract": ["source"]}, r"reads\['extract'\]: payload path 'source' is not valid"),
        ({"extract": ["root"]}, r"reads\['extract'\]: payload path 'root' names the whole payload"),
        ({"extract": ["root['items'][0]"]}, r"reads\['extract'\]: path \"root\['items'\]\[0\]\" reaches into a list.*declare the list itself, e.g. \"root\['items'\]\""),
        ({"extract": ["root[0]"]}, r"reads\['extract'\]: path 'root\[0\]' reaches into a list"),
        ({"extract": ["root" + "['k']" * 255]}, r"reads\['extract'\]: path .* is 255 keys deep; at most 254"),
        ({"extract": "root['source']"}, r"reads\['extract'\] must be a list of paths, not the single string"),
        ({"extract": [3]}, r"reads\['extract'\]: payload path 3 \(entry 0\) must be a string"),
        ({"extract": None}, r"reads\['extract'\] must be a list of payload paths, got NoneType"),
        ({"transform": ["root['a']"]}, r"reads names step 'transform', which the workflow does not have \(its steps: extract, enrich, load\)"),
    ],
)
def test_every_malformed_declaration_is_refused_when_the_workflow_is_built(reads, message):
    with pytest.raises(ValueError, match=message) as raised:
        make_workflow(reads=reads)
    assert "workflow 'incremental-acme'" in str(raised.value)


def test_reads_that_are_not_a_mapping_are_refused():
    with pytest.raises(TypeError, match="reads must map step names to lists of payload paths, got list"):
        make_workflow(reads=["extract"])


def test_declared_reads_are_part_of_the_step_identity(store):
    base = make_workflow()
    changed = make_workflow(reads={**READS, "enrich": ["root['rate']", "root['note']"]})
    same_paths_repeated = make_workflow(reads={**READS, "enrich": ["root['rate']", "root['rate']"]})
    undeclared = DotflowWorkflow("incremental-acme", steps=[s.action for s in base.steps])
    keys = [spec.key for spec in base.steps]

    assert [spec.key for spec in changed.steps][0] == keys[0]
    assert all(new != old for new, old in zip([s.key for s in changed.steps][1:], keys[1:], strict=True))
    assert [s.key for s in same_paths_repeated.steps] == keys
    # A declaration of no reads at all is not the same step as one that reads everything.
    assert [s.key for s in undeclared.steps] != keys
    assert make_workflow(reads={**READS, "enrich": []}).steps[1].key != keys[1]

    assert base.run({**PAYLOAD, "note": 1}, store=store).executed == ["extract", "enrich", "load"]
    report = changed.run({**PAYLOAD, "note": 1}, store=store)
    assert report.resumed == ["extract"] and report.executed == ["enrich", "load"]


def test_the_workflow_lists_its_reads():
    assert make_workflow().reads == {name: tuple(paths) for name, paths in READS.items()}
    assert DotflowWorkflow("no-reads", steps=[make_workflow().steps[0].action]).reads is None
