"""A three-step workflow with declared reads whose executions are observable from another process.

``extract`` reads ``root['source']``, ``enrich`` reads ``root['rate']``, ``load`` reads
``root['table']``; ``root['note']`` is read by nobody. Every execution appends
``<step> <what it computed from>`` to ``DOTFLOW_TEST_LOG``; ``DOTFLOW_TEST_FAIL=<step>`` makes
that step raise. Run as a module it runs the workflow once under ``incremental`` and prints the
report as JSON (``--store DIR --payload JSON``).
"""

import argparse
import json
import os
import sys

from dotflow import action

from dotflow_dagster import DotflowWorkflow, LocalStore

READS = {
    "extract": ["root['source']"],
    "enrich": ["root['rate']"],
    "load": ["root['table']"],
}


def _record(line: str, step: str) -> None:
    log = os.environ.get("DOTFLOW_TEST_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write(line + "\n")
    if os.environ.get("DOTFLOW_TEST_FAIL") == step:
        raise RuntimeError(f"{step} failed on purpose")


@action
def extract(initial_context):
    source = initial_context.storage["source"]
    _record(f"extract {source}", "extract")
    return [len(source), len(source) * 2]


@action
def enrich(initial_context, previous_context):
    rate = initial_context.storage["rate"]
    _record(f"enrich {previous_context.storage} x {rate}", "enrich")
    # Rounded: a small change of rate can give an equal result, which cuts the re-runs off.
    return [round(value * rate) for value in previous_context.storage]


@action
def load(initial_context, previous_context):
    table = initial_context.storage["table"]
    _record(f"load {previous_context.storage} -> {table}", "load")
    return {"table": table, "rows": previous_context.storage}


def make_workflow(policy: str = "incremental", **options) -> DotflowWorkflow:
    return DotflowWorkflow(
        "incremental-acme",
        steps=[extract, enrich, load],
        on_input_change=policy,
        reads=options.pop("reads", READS),
        **options,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--payload", required=True, help="JSON")
    args = parser.parse_args()
    report = make_workflow().run(json.loads(args.payload), store=LocalStore(args.store))
    steps = [{"name": s.name, "status": s.status, "reason": s.reason} for s in report.steps]
    print(json.dumps({"decision": report.decision, "ok": report.ok, "result": report.result, "steps": steps}))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
