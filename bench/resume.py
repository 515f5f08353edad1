"""What a resumed rerun costs: a finished 20-step workflow run again with the same payload, against a cold run.

Run from the repository root (also ``make bench``):

    .venv/bin/python bench/resume.py [--cold-runs N] [--resumed-runs N] [--step-ms MS]

The workflow has 20 steps that each sleep ``--step-ms`` (100 ms) and return ``None``, so a cold
run (a fresh payload on a ``LocalStore``, all 20 steps executed) takes a little over 2 s. The
resumed rerun is ``DotflowWorkflow.run`` of the same payload again once it has finished:
decision ``unchanged``, all 20 steps restored from their checkpoints, nothing executed. The
target is a resumed rerun under 5% of a cold run.

Best and median of N runs each (time.perf_counter). The resumed run's store operations are
counted on a separate run (bench/bookkeeping.py wraps ``LocalStore``'s write path), and a
profile of resumed runs shows where their time goes. Exits non-zero only if a result is wrong
(a cold run that did not execute every step, a rerun that executed one), never on a timing.
"""

import argparse
import cProfile
import io
import logging
import os
import platform
import pstats
import shutil
import sys
import tempfile
from pathlib import Path

# Runnable from a checkout without an install: the package lives one directory up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bookkeeping import Samples, count_durable_ops, machine_load, no_op_steps, payload, timed  # noqa: E402

from dotflow_dagster import DotflowWorkflow, LocalStore  # noqa: E402

STEPS = 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cold-runs", type=int, default=3, help="cold runs (default 3, about 2 s each)")
    parser.add_argument("--resumed-runs", type=int, default=30, help="resumed reruns (default 30)")
    parser.add_argument("--step-ms", type=float, default=100.0, help="what each step sleeps (default 100 ms)")
    parser.add_argument("--dir", help="where the store goes (default: a temporary directory)")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.WARNING)
    errors: list[str] = []
    load = machine_load()
    workflow = DotflowWorkflow("bench-resume", steps=no_op_steps(STEPS, sleep_seconds=args.step_ms / 1000))
    directory = Path(tempfile.mkdtemp(prefix="dotflow-bench-", dir=args.dir))
    cold, resumed = Samples(), Samples()
    try:
        store = LocalStore(directory / "store")
        for index in range(args.cold_runs):
            # Cold and resumed alternate, each rerun right after the run it resumes.
            report = None

            def cold_run(index: int = index) -> None:
                nonlocal report
                report = workflow.run(payload(index), store=store)

            cold.add(timed(cold_run))
            if not (report.ok and len(report.executed) == STEPS):
                errors.append(f"cold run {index}: decision {report.decision}, executed {len(report.executed)}")
            for _ in range(max(1, args.resumed_runs // args.cold_runs)):

                def rerun(index: int = index) -> None:
                    nonlocal report
                    report = workflow.run(payload(index), store=store)

                resumed.add(timed(rerun))
                if not (report.ok and report.decision == "unchanged" and report.executed == []):
                    errors.append(f"rerun {index}: decision {report.decision}, executed {report.executed}")
                if len(report.resumed) != STEPS:
                    errors.append(f"rerun {index}: resumed {len(report.resumed)} of {STEPS} steps")
        final = args.cold_runs - 1
        with count_durable_ops(store) as ops:
            workflow.run(payload(final), store=store)
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(10):
            workflow.run(payload(final), store=store)
        profiler.disable()
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"before: {load}; store in {directory.parent}"
    )
    print(f"{STEPS} steps sleeping {args.step_ms:g} ms each; best and median (time.perf_counter)\n")
    print(f"{'case':<52}{'runs':>6}{'best ms':>10}{'median ms':>11}  note")
    print(f"{'-' * 52}{'-' * 4:>6}{'-' * 8:>10}{'-' * 9:>11}  ----")
    print(
        f"{'cold run: fresh payload, 20 steps executed':<52}{len(cold.values):>6}{cold.best:>10.1f}{cold.median:>11.1f}"
    )
    note = (
        f"{resumed.median / cold.median:.2%} of a cold run (median), "
        f"{resumed.best / cold.best:.2%} (best); target: under 5%"
    )
    print(
        f"{'resumed rerun: same payload, 20 steps restored':<52}{len(resumed.values):>6}"
        f"{resumed.best:>10.2f}{resumed.median:>11.2f}  {note}"
    )
    print(f"\n   a resumed rerun's store operations: {ops.summary()}")
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(10)
    body = out.getvalue()
    print("\n   cProfile of 10 resumed reruns, top 10 by tottime (times in s, for all runs):")
    print("\n".join("   " + line for line in body[body.index("ncalls") :].rstrip().splitlines()))
    if errors:
        print("\nWRONG RESULTS:", *sorted(set(errors)), sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
