"""What ``incremental`` saves: a change only the last step reads, against ``reset``.

Run from the repository root:

    .venv/bin/python bench/incremental.py [--repeats N]

A five-step workflow with declared reads: ``extract`` sleeps 200 ms (the expensive part, e.g. a
download) and reads ``root['source']``; three cheap steps each read one option; ``publish``
reads ``root['destination']``. Each round, on a fresh LocalStore, runs a first payload, then
the same payload with only ``destination`` changed, once under ``reset`` and once under
``incremental``, and times that second run (``time.perf_counter``). Medians of N rounds.

Timings never fail the run; only a wrong decision or a wrong set of executed steps exits non-zero.
"""

import argparse
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from dotflow import action

# Runnable from a checkout without an install: the package lives one directory up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dotflow_dagster import DotflowWorkflow, LocalStore  # noqa: E402

EXTRACT_SECONDS = 0.2


@action
def extract(initial_context):
    time.sleep(EXTRACT_SECONDS)
    return [initial_context.storage["source"]] * 100


@action
def clean(initial_context, previous_context):
    return [row.strip(initial_context.storage["strip"]) for row in previous_context.storage]


@action
def enrich(initial_context, previous_context):
    return [f"{row}{initial_context.storage['suffix']}" for row in previous_context.storage]


@action
def aggregate(initial_context, previous_context):
    return {"rows": len(previous_context.storage), "unit": initial_context.storage["unit"]}


@action
def publish(initial_context, previous_context):
    return {**previous_context.storage, "to": initial_context.storage["destination"]}


READS = {
    "extract": ["root['source']"],
    "clean": ["root['strip']"],
    "enrich": ["root['suffix']"],
    "aggregate": ["root['unit']"],
    "publish": ["root['destination']"],
}
FIRST = {"source": " row ", "strip": " ", "suffix": "!", "unit": "rows", "destination": "warehouse-a"}
CHANGED = {**FIRST, "destination": "warehouse-b"}


def changed_run_seconds(policy: str) -> float:
    """Seconds of the run whose destination changed, after a first run, on a fresh store."""
    workflow = DotflowWorkflow("bench-incremental", steps=[extract, clean, enrich, aggregate, publish],
                               on_input_change=policy, reads=READS)
    with tempfile.TemporaryDirectory() as directory:
        store = LocalStore(directory)
        assert workflow.run(FIRST, store=store).ok
        started = time.perf_counter()
        report = workflow.run(CHANGED, store=store)
        elapsed = time.perf_counter() - started
    expected = ["publish"] if policy == "incremental" else list(READS)
    if report.decision != policy or report.executed != expected:
        raise SystemExit(f"{policy}: decision {report.decision}, executed {report.executed}; expected {expected}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    logging.getLogger("dotflow_dagster").setLevel(logging.WARNING)

    timings: dict[str, list[float]] = {"reset": [], "incremental": []}
    for _ in range(args.repeats):
        for policy in timings:
            timings[policy].append(changed_run_seconds(policy))
    reset, incremental = median(timings["reset"]), median(timings["incremental"])

    print(f"python {platform.python_version()}, {platform.machine()}, median of {args.repeats} rounds")
    print("5 steps; extract sleeps 200 ms; the change touches root['destination'], which only publish reads\n")
    print(f"{'policy':<13} {'changed run ms':>15}  executed")
    print(f"{'-' * 13} {'-' * 15}  --------")
    print(f"{'reset':<13} {reset * 1000:>15.1f}  all 5 steps")
    print(f"{'incremental':<13} {incremental * 1000:>15.1f}  publish (4 steps reused from the previous input)")
    print(f"\nincremental / reset = {incremental / reset:.3f} ({reset / incremental:.1f}x faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
