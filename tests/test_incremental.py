"""The ``incremental`` policy: a changed payload re-runs exactly the steps whose inputs changed.

The workflow (tests/support/incremental_flow.py): ``extract`` reads ``source``, ``enrich``
reads ``rate`` and what ``extract`` returned, ``load`` reads ``table`` and what ``enrich``
returned; nobody reads ``note``. Every execution is logged, so "reused" is checked against what
actually ran, not only against the report.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from dotflow import action

from dotflow_dagster import DotflowWorkflow, LocalStore
from dotflow_dagster.runner import CompletedStep
from tests.conftest import ROOT, subprocess_env
from tests.support.incremental_flow import make_workflow

A = {"source": "abc", "rate": 2, "table": "orders", "note": "first"}


@pytest.fixture
def executions(tmp_path, monkeypatch):
    """The steps executed since the last call, as logged by the steps themselves."""
    log = tmp_path / "executions.log"
    monkeypatch.setenv("DOTFLOW_TEST_LOG", str(log))
    seen = 0

    def read() -> list[str]:
        nonlocal seen
        lines = log.read_text().splitlines() if log.exists() else []
        new, seen = lines[seen:], len(lines)
        return new

    return read


def statuses(report) -> dict[str, tuple[str, str]]:
    return {step.name: (step.status, step.reason) for step in report.steps}


def test_a_change_to_an_unread_field_reuses_every_step(store, executions):
    workflow = make_workflow()
    first = workflow.run(A, store=store)
    assert first.executed == ["extract", "enrich", "load"]
    executions()

    report = workflow.run({**A, "note": "second"}, store=store)

    assert report.decision == "incremental"
    assert report.executed == []
    assert report.resumed == ["extract", "enrich", "load"]
    assert executions() == []
    assert report.result == first.result
    assert statuses(report)["extract"] == ("resumed", "reads unchanged")
    assert statuses(report)["load"] == ("resumed", "reads unchanged, input from enrich unchanged")


def test_a_change_to_a_field_only_step_2_reads_reuses_step_1(store, executions):
    workflow = make_workflow()
    workflow.run(A, store=store)
    executions()

    report = workflow.run({**A, "rate": 3}, store=store)

    assert report.resumed == ["extract"]
    assert report.executed == ["enrich", "load"]
    assert executions() == ["enrich [3, 6] x 3", "load [9, 18] -> orders"]
    assert statuses(report)["enrich"] == ("executed", "root['rate'] changed")
    assert statuses(report)["load"] == ("executed", "input from enrich changed")
    assert report.result == {"table": "orders", "rows": [9, 18]}


def test_a_change_only_the_last_step_reads_re_runs_it_alone(store, executions):
    workflow = make_workflow()
    workflow.run(A, store=store)
    executions()

    report = workflow.run({**A, "table": "orders_v2"}, store=store)

    assert report.resumed == ["extract", "enrich"]
    assert report.executed == ["load"]
    assert executions() == ["load [6, 12] -> orders_v2"]


def test_a_re_run_step_returning_an_equal_result_cuts_off_the_rest(store, executions):
    workflow = make_workflow()
    workflow.run(A, store=store)
    executions()

    # round(3 * 2.04) == 6 and round(6 * 2.04) == 12: enrich runs again and returns what it did.
    report = workflow.run({**A, "rate": 2.04}, store=store)

    assert report.executed == ["enrich"]
    assert report.resumed == ["extract", "load"]
    assert executions() == ["enrich [3, 6] x 2.04"]
    assert statuses(report)["load"] == (
        "resumed",
        "reads unchanged, input from enrich unchanged (it re-ran and returned an equal result)",
    )
    assert report.result == {"table": "orders", "rows": [6, 12]}


def test_early_cutoff_does_not_reuse_a_later_step_whose_own_reads_changed(store, executions):
    workflow = make_workflow()
    workflow.run(A, store=store)
    executions()

    report = workflow.run({**A, "rate": 2.04, "table": "elsewhere"}, store=store)

    assert report.executed == ["enrich", "load"]
    assert statuses(report)["load"] == ("executed", "root['table'] changed")


def test_returning_to_an_earlier_payload_re_runs_what_differs_from_the_previous_one(store, executions):
    workflow = make_workflow()
    workflow.run(A, store=store)
    workflow.run({**A, "rate": 5}, store=store)
    executions()

    # A's own checkpoints are still kept (retention 5), and they match A exactly; but the world
    # now holds what the rate-5 run loaded, so what differs from *that* run must run again.
    report = workflow.run(A, store=store)

    assert report.decision == "incremental"
    assert report.resumed == ["extract"]
    assert report.executed == ["enrich", "load"]
    assert executions() == ["enrich [3, 6] x 2", "load [6, 12] -> orders"]


def test_checkpoints_are_never_reused_from_an_input_older_than_the_previous_one(store, executions):
    workflow = make_workflow()
    workflow.run(A, store=store)
    workflow.run({**A, "source": "abcdef"}, store=store)  # everything re-ran
    executions()

    # Only the table differs from A; but the previous input is the "abcdef" one, so extract and
    # enrich differ from it and run again, though A's checkpoints for them are still stored.
    report = workflow.run({**A, "table": "orders_v2"}, store=store)

    assert report.executed == ["extract", "enrich", "load"]
    assert statuses(report)["extract"] == ("executed", "root['source'] changed")


def test_an_undeclared_step_sees_the_whole_payload_and_re_runs_on_any_change(store):
    seen = []

    @action
    def summarize(initial_context, previous_context):
        seen.append(dict(initial_context.storage))
        return previous_context.storage

    workflow = DotflowWorkflow(
        "incremental-undeclared",
        steps=[make_workflow().steps[0].action, summarize],
        on_input_change="incremental",
        reads={"extract": ["root['source']"]},
    )
    workflow.run(A, store=store)
    assert seen == [A]

    report = workflow.run({**A, "note": "unread by extract"}, store=store)

    assert report.resumed == ["extract"]
    assert report.executed == ["summarize"]
    assert dict(statuses(report))["summarize"] == ("executed", "payload changed (the step declares no reads)")
    assert seen[-1] == {**A, "note": "unread by extract"}


def test_a_hook_may_answer_incremental(store, executions):
    answers = []

    def hook(change):
        answers.append(change.changes)
        return "incremental"

    workflow = make_workflow(hook)
    workflow.run(A, store=store)
    executions()
    report = workflow.run({**A, "table": "t2"}, store=store)
    assert report.decision == "incremental"
    assert answers == [("root['table']: 'orders' -> 't2'",)]
    assert executions() == ["load [6, 12] -> t2"]


@pytest.mark.parametrize("policy", ["reset", "reuse"])
def test_other_policies_still_decide_what_runs_but_steps_see_only_their_reads(store, executions, policy):
    workflow = make_workflow(policy)
    workflow.run(A, store=store)
    executions()
    report = workflow.run({**A, "note": "unread"}, store=store)
    assert report.decision == policy
    if policy == "reset":
        assert report.executed == ["extract", "enrich", "load"]
        assert statuses(report)["extract"] == ("executed", "input changed: reset runs every step")
    else:
        assert report.executed == [] and report.resumed == ["extract", "enrich", "load"]


def test_a_checkpoint_without_recorded_reads_is_not_reused(store, executions):
    """Checkpoints written before incremental existed carry no digests: their steps run again."""
    workflow = make_workflow()
    workflow.run(A, store=store)
    ledger = workflow.ledger(store=store)
    fingerprint = workflow.fingerprint(A)
    key = ledger.checkpoint_prefix(fingerprint) + workflow.steps[0].key
    old = store.get(key).storage
    from dotflow.core.context import Context

    store.post(key, Context(storage=CompletedStep(old.step_key, old.step_name, old.result, old.completed_at)))
    executions()

    report = workflow.run({**A, "note": "x"}, store=store)

    assert statuses(report)["extract"] == (
        "executed",
        "its checkpoint records no reads (written before incremental existed)",
    )
    # extract returned the same value again, so the later steps are cut off and reused.
    assert report.resumed == ["enrich", "load"]


def run_in_process(store_dir: Path, log: Path, payload: dict, **env: str) -> dict:
    completed = subprocess.run(
        [sys.executable, "-m", "tests.support.incremental_flow", "--store", str(store_dir),
         "--payload", json.dumps(payload)],
        cwd=ROOT,
        env=subprocess_env(DOTFLOW_TEST_LOG=str(log), **env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.stdout.strip(), completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_a_failed_incremental_run_resumes_in_a_new_process_at_the_failed_step(tmp_path):
    store_dir, log = tmp_path / "store", tmp_path / "executions.log"
    assert run_in_process(store_dir, log, A)["ok"]
    changed = {**A, "rate": 2.04, "note": "again"}

    failed = run_in_process(store_dir, log, changed, DOTFLOW_TEST_FAIL="enrich")
    assert failed["decision"] == "incremental" and not failed["ok"]
    assert [s["status"] for s in failed["steps"]] == ["resumed", "failed", "not_run"]

    log.write_text("")
    resumed = run_in_process(store_dir, log, changed)

    assert resumed["ok"] and resumed["decision"] == "unchanged"
    # The reused extract is kept; enrich runs now; load is still compared with the input that was
    # current before, and enrich's equal result lets it be reused.
    assert [(s["name"], s["status"]) for s in resumed["steps"]] == [
        ("extract", "resumed"),
        ("enrich", "executed"),
        ("load", "resumed"),
    ]
    assert log.read_text().splitlines() == ["enrich [3, 6] x 2.04"]
    assert resumed["result"] == {"table": "orders", "rows": [6, 12]}
    assert LocalStore(store_dir).list_keys("workflows/incremental-acme/checkpoints/")
