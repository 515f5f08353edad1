"""The demo behind ``make demo``: drive the real ``dagster job execute`` through the whole story.

1. v1 materializes a partition (its fingerprint);
2. v1 again (keys reordered, an ignored field changed) executes nothing;
3. v2 resets and materializes a new partition;
4. v2 into another warehouse table, under ``incremental``: only ``load`` reads that key, so
   ``load`` alone runs and ``extract`` and ``transform`` are reused from v2;
5. v3 under ``raise`` fails with the diff against the input current before it and executes nothing;
6. re-materializing v1's partition (what a backfill does) executes nothing and keeps v2 current:
   only an arrival makes an input current.

Everything lives in ``.demo/`` (a fresh ``DAGSTER_HOME`` with the default SQLite instance and a
LocalStore beside it), so the demo can be run again and again.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEMO_HOME = ROOT / ".demo" / "dagster_home"
PAYLOADS = Path(__file__).resolve().parent / "payloads"

# Serialize one workflow's runs (the asset's pool is dotflow/<workflow_id>) however they are launched.
DAGSTER_YAML = """\
concurrency:
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""

STORY = [
    ("orders_v1.yaml", "v1: first payload", 0),
    ("orders_v1_again.yaml", "v1 again: keys reordered, ignored received_at changed", 0),
    ("orders_v2.yaml", "v2: December's file (policy reset)", 0),
    ("orders_v2_new_table.yaml", "v2 into another table (on_input_change: incremental): load runs alone", 0),
    ("orders_v3_raise.yaml", "v3 with on_input_change: raise", 1),
]


def dagster(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), *args],
        cwd=ROOT,
        env={**os.environ, "DAGSTER_HOME": str(DEMO_HOME)},
        capture_output=True,
        text=True,
        check=False,
    )


def main() -> int:
    shutil.rmtree(DEMO_HOME, ignore_errors=True)
    DEMO_HOME.mkdir(parents=True)
    (DEMO_HOME / "dagster.yaml").write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(DEMO_HOME)

    from dagster import AssetKey, DagsterInstance

    from example_project.orders import orders_workflow

    failures = 0
    for file_name, title, expected_exit in STORY:
        print(f"\n=== {title}")
        print(f"$ dagster job execute -m example_project -j orders_demo_submit -c example_project/payloads/{file_name}")
        completed = dagster("job", "execute", "-m", "example_project", "-j", "orders_demo_submit",
                            "-c", str(PAYLOADS / file_name))
        output = completed.stdout + completed.stderr
        print(f"exit code {completed.returncode} (expected {'non-zero' if expected_exit else 0})")
        for line in output.splitlines():
            if ("decision" in line and "workflow orders-demo" in line) or (
                " - step " in line and ("executed (" in line or "resumed (" in line)
            ):
                print("  " + line.split(" - orders_demo - ")[-1])
        if expected_exit:
            refusal = output[output.find("input for workflow") :].split("\n\n")[0] if "input for workflow" in output else ""
            print("  " + refusal.replace("\n", "\n  ") if refusal else "  (no refusal message found)")
        if (completed.returncode != 0) != bool(expected_exit):
            failures += 1
            print(output[-3000:], file=sys.stderr)

    v1 = orders_workflow.fingerprint(
        {"orders_file": "orders_2026_11.csv", "region": "EU", "min_quantity": 1, "api_token": "demo-token-1f6c"}
    )
    print("\n=== Re-materialize v1's partition, as a backfill or the UI's Materialize button would")
    print(f"$ dagster asset materialize -m example_project --select orders_demo --partition {v1}")
    completed = dagster("asset", "materialize", "-m", "example_project", "--select", "orders_demo", "--partition", v1)
    output = completed.stdout + completed.stderr
    print(f"exit code {completed.returncode} (expected 0: a skip is not a failure)")
    skipped = [line for line in output.splitlines() if "is not an arrival" in line]
    print("  " + (skipped[0].split(" - orders_demo - ")[-1] if skipped else "(no skip message found)"))
    if completed.returncode != 0 or not skipped:
        failures += 1
        print(output[-3000:], file=sys.stderr)

    with DagsterInstance.get() as instance:
        partitions = instance.get_dynamic_partitions("orders_demo_fingerprints")
        print("\n=== What the Dagster instance recorded")
        print(f"asset orders_demo, partitions (input fingerprints): {len(partitions)}")
        records = instance.fetch_materializations(AssetKey("orders_demo"), limit=20).records
        for record in reversed(records):
            materialization = record.asset_materialization
            metadata = materialization.metadata
            print(
                f"  partition {materialization.partition[:16]}...  decision={metadata['dotflow/decision'].value:<11}"
                f" executed={metadata['dotflow/steps_executed'].value}"
            )
        state = orders_workflow.state(store=orders_workflow_store())
        print(f"ledger: current fingerprint {state.current_fingerprint}")
        for entry in state.history:
            print(f"  {entry.decision:<11} {entry.fingerprint[:16]}...  outcome={entry.outcome}  runs={entry.runs}")

    print(
        "\nLook at it in the UI:\n"
        f"  DAGSTER_HOME={DEMO_HOME} .venv/bin/dagster dev -w workspace.yaml\n"
        "  then open http://127.0.0.1:3000, asset 'orders_demo' (group dotflow_demo): one partition per input\n"
        "  fingerprint (v3's is failed: it was refused), each event with dotflow/* metadata: the decision,\n"
        "  the steps, the redacted payload and diff, dotflow/current_fingerprint and the dotflow/history table."
    )
    if failures:
        print(f"\nDEMO FAILED: {failures} step(s) did not exit as expected", file=sys.stderr)
        return 1
    return 0


def orders_workflow_store():
    from example_project.definitions import defs

    return defs.resources["dotflow"].get_store()


if __name__ == "__main__":
    sys.exit(main())
