"""The real `dagster` CLI on the example project: exit codes, and what the instance recorded."""

import sqlite3
import subprocess

from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from example_project.orders import orders_workflow
from tests.conftest import ROOT
from tests.story import DAGSTER, PAYLOADS, dagster_env, dagster_job_execute


def materializations(home) -> list:
    with DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(AssetKey("orders_demo"), limit=50, ascending=True).records
        return [record.asset_materialization for record in records]


def test_definitions_validate_passes_for_the_workspace(tmp_path):
    completed = subprocess.run(
        [DAGSTER, "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT, env=dagster_env(tmp_path), capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Validation successful for code location example_project" in completed.stdout + completed.stderr


def test_exit_codes_follow_the_story(story):
    _, runs = story
    assert [(run.payload_file, run.returncode == 0) for run in runs] == [
        ("orders_v1.yaml", True), ("orders_v1_again.yaml", True), ("orders_v2.yaml", True),
        ("orders_v3_raise.yaml", False),
    ], "\n\n".join(run.output[-2000:] for run in runs)


def test_instance_holds_one_materialization_per_successful_run_keyed_by_fingerprint(story):
    home, _ = story
    v1 = orders_workflow.fingerprint({"orders_file": "orders_2026_11.csv", "region": "EU", "min_quantity": 1,
                                      "received_at": "whenever", "api_token": "demo-token-1f6c"})
    records = materializations(home)
    decisions = [(m.partition, m.metadata["dotflow/decision"].value) for m in records]
    assert decisions[:2] == [(v1, "new"), (v1, "unchanged")]
    assert decisions[2][1] == "reset" and decisions[2][0] != v1
    assert len(decisions) == 3  # the refused v3 materialized nothing
    assert [m.metadata["dotflow/steps_executed"].value for m in records] == [
        ["extract", "transform", "load"], [], ["extract", "transform", "load"],
    ]
    reset = records[2]
    assert reset.metadata["dotflow/previous_fingerprint"].value == v1
    assert "root['orders_file']: 'orders_2026_11.csv' -> 'orders_2026_12.csv'" in reset.metadata["dotflow/diff"].value
    for materialization in records:
        assert materialization.metadata["dotflow/workflow_id"].value == "orders-demo"
        assert materialization.metadata["dotflow/fingerprint"].value == materialization.partition
        assert materialization.metadata["dotflow/payload"].value["api_token"] == "***"


def test_runs_carry_workflow_and_fingerprint_tags_and_partitions_are_registered(story):
    home, _ = story
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(RunsFilter(job_name="orders_demo_submit"), ascending=True)
        partitions = instance.get_dynamic_partitions("orders_demo_fingerprints")
    assert len(runs) == 4
    assert [run.status for run in runs] == [DagsterRunStatus.SUCCESS] * 3 + [DagsterRunStatus.FAILURE]
    assert all(run.tags["dotflow/workflow_id"] == "orders-demo" for run in runs)
    fingerprints = [run.tags["dotflow/fingerprint"] for run in runs]
    assert fingerprints[0] == fingerprints[1] != fingerprints[2] != fingerprints[3]
    # The refused v3 is registered too, so an operator can launch it with a reset from the UI.
    assert partitions == [fingerprints[0], fingerprints[2], fingerprints[3]]


def test_raise_exits_non_zero_with_the_diff_against_v2_and_runs_nothing(story):
    home, runs = story
    refused = runs[3].output
    assert "on_input_change='raise'" in refused
    assert "root['region']: 'EU' -> 'US'" in refused and "root['min_quantity']: 1 -> 3" in refused
    assert "root['api_token']: *** -> *** (redacted value changed)" in refused
    assert "demo-token" not in refused.replace("api_token", "")  # the secret never shows
    with sqlite3.connect(home / "warehouse.sqlite") as connection:
        batches = {row[0] for row in connection.execute("SELECT DISTINCT batch FROM customer_totals")}
    assert batches == {"orders_2026_11.csv:EU:1", "orders_2026_12.csv:EU:1"}


def test_a_bad_payload_fails_the_run_naming_the_payload_key(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(
        "ops:\n  orders_demo_submit:\n    config:\n      payload:\n"
        "        orders_file: ../../etc/passwd\n        region: EU\n"
    )
    (tmp_path / "home").mkdir()
    run = dagster_job_execute(tmp_path / "home", config)
    assert run.returncode != 0
    assert "step 'extract' of workflow 'orders-demo' failed" in run.output
    assert "payload key 'orders_file': '../../etc/passwd' is not a file" in run.output


def test_a_new_warehouse_table_under_incremental_re_runs_load_alone(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    runs = [dagster_job_execute(home, PAYLOADS / name) for name in ("orders_v2.yaml", "orders_v2_new_table.yaml")]
    assert [run.returncode for run in runs] == [0, 0], runs[-1].output[-3000:]
    latest = materializations(home)[-1].metadata
    assert latest["dotflow/decision"].value == "incremental"
    assert latest["dotflow/steps_resumed"].value == ["extract", "transform"]
    assert latest["dotflow/steps_executed"].value == ["load"]
    assert "| load | executed | root['warehouse_table'] changed |" in latest["dotflow/steps"].value
    assert "step load: executed (root['warehouse_table'] changed)" in runs[1].output
    with sqlite3.connect(home / "warehouse.sqlite") as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        copied = connection.execute("SELECT count(*) FROM customer_totals_v2").fetchone()[0]
        original = connection.execute("SELECT count(*) FROM customer_totals").fetchone()[0]
    assert tables == {"customer_totals", "customer_totals_v2"}
    assert copied == original > 0
