"""What idempotency costs per run: dotflow_dagster's runner against bare dotflow, same run.

Three trivial steps, so the figures are pure bookkeeping: fingerprint, ledger CAS, run lock,
checkpoint writes (each fsynced). Baseline: a bare ``DotFlow`` with dotflow's own ``StorageFile``.

    .venv/bin/python bench/overhead.py
"""

import logging
import tempfile
import time
from statistics import median

from dotflow import Config, DotFlow, action
from dotflow.providers import LogDefault, StorageFile

from dotflow_dagster import DotflowWorkflow, LocalStore

RUNS = 60


@action
def parse(initial_context):
    return {"rows": initial_context.storage["rows"]}


@action
def transform(previous_context):
    # A dict, not a list: dotflow 1.0.1's StorageFile silently drops list results.
    return {"doubled": [row * 2 for row in previous_context.storage["rows"]]}


@action
def load(previous_context):
    return len(previous_context.storage["doubled"])


def payload(index: int) -> dict:
    return {"rows": list(range(50)), "batch": index, "source": f"s3://bucket/uploads/{index}.zip"}


def timed(function, runs: int = RUNS) -> float:
    samples = []
    for index in range(runs):
        started = time.perf_counter()
        function(index)
        samples.append(time.perf_counter() - started)
    return median(samples) * 1000


def main() -> None:
    logging.getLogger().setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as directory:
        # Same log level as our runner gives dotflow, so console logging is not what is compared.
        config = Config(storage=StorageFile(path=f"{directory}/dotflow"), log=LogDefault(level="WARNING"))

        def bare_dotflow(index: int) -> None:
            flow = DotFlow(config=config, workflow_id="5a3c1e7e-93a8-4b53-9bd0-6d7c1f0b9c21")
            flow.task.add(step=[parse, transform, load], initial_context=payload(index))
            flow.start()

        store = LocalStore(f"{directory}/ours")
        workflow = DotflowWorkflow("bench", steps=[parse, transform, load])

        def ours_new_input(index: int) -> None:
            assert workflow.run(payload(index), store=store).ok

        def ours_same_input(index: int) -> None:
            assert workflow.run(payload(0), store=store).executed == []

        baseline = timed(bare_dotflow)
        new_input = timed(ours_new_input)
        workflow.run(payload(0), store=store)  # make payload 0 current and complete
        same_input = timed(ours_same_input)

    print(f"median of {RUNS} runs, 3 trivial steps")
    print(f"{'case':<48}{'ms/run':>10}{'vs bare dotflow':>18}")
    for name, value in (
        ("bare dotflow, StorageFile (baseline)", baseline),
        ("dotflow_dagster, new input (3 steps executed)", new_input),
        ("dotflow_dagster, same input (3 steps resumed)", same_input),
    ):
        print(f"{name:<48}{value:>10.2f}{value / baseline:>17.2f}x")


if __name__ == "__main__":
    main()
