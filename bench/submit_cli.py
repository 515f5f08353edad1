"""What submitting a payload costs through ``dagster job execute``, against Dagster's own no-op job.

Run from the repository root (also ``make bench``):

    .venv/bin/python bench/submit_cli.py [--rounds N] [--import-repeats N] [--no-in-process]

Each round runs, in turn and each in a fresh ``DAGSTER_HOME`` (SQLite storage, telemetry off),
the same ``dagster`` executable of this venv:

(a) ``dagster job execute -f bench/submit_cli.py -j noop``: a one-op job whose op does nothing;
(b) ``dagster job execute -f bench/submit_cli.py -j bench_submit_submit -c run.yaml``: the
    package's ``dotflow_submit_job`` for a one-step no-op workflow, the payload in run config.
    Its op fingerprints and stores the payload, registers the partition, and materializes the
    partition in an asset run of its own (``materialize()``, on the same instance).

With ``--in-process`` (the default; ``--no-in-process`` skips it) both jobs run again with
``Definitions(executor=in_process_executor)``, which a deployment can set: the op then runs in
the CLI's process instead of a child process that imports everything again.

The file is also the code location: ``dagster`` loads it with ``DOTFLOW_BENCH_CLI_DEFS`` set to
the job it needs, so the no-op job's processes never import dotflow or dotflow_dagster.

Reported: the wall time of each CLI process (best and median of N rounds, ratio of medians);
the phases of the median round read from the instance's event log (CLI start to run start,
the step worker's start, the op, the nested asset run, the run's end, the process's exit); and
the import times of dagster, dotflow and dotflow_dagster, each in a fresh interpreter (best of
N). Exits non-zero only if a run is wrong (a failed CLI run, a submit without a successful
asset run whose decision is ``new``), never because of a timing.
"""

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dagster import Definitions

MODE_VARIABLE = "DOTFLOW_BENCH_CLI_DEFS"
WORKFLOW_ID = "bench-submit"


def definitions(mode: str) -> "Definitions":
    """The code location ``dagster job execute`` loads: only the job ``mode`` names, nothing else imported.

    Example:
        >>> definitions("noop").resolve_job_def("noop").name
        'noop'
    """
    from dagster import Definitions, in_process_executor, job, op

    executor = in_process_executor if mode.endswith("-in-process") else None
    if mode.startswith("noop"):

        @op
        def nothing() -> None:
            return None

        @job
        def noop() -> None:
            nothing()

        return Definitions(jobs=[noop], executor=executor)

    from dotflow import action

    from dotflow_dagster import DotflowResource, DotflowWorkflow, dotflow_asset, dotflow_submit_job

    @action
    def step(initial_context: object) -> None:
        return None

    workflow = DotflowWorkflow(WORKFLOW_ID, steps=[step])
    return Definitions(
        assets=[dotflow_asset(workflow)],
        jobs=[dotflow_submit_job(workflow)],
        # Relative: the store lands in each round's fresh DAGSTER_HOME.
        resources={"dotflow": DotflowResource(base_dir="dotflow")},
        executor=executor,
    )


if os.environ.get(MODE_VARIABLE) and __name__ != "__main__":
    defs = definitions(os.environ[MODE_VARIABLE])


# -- the benchmark (only when run as a script) --------------------------------------------------------------


def main() -> int:
    import argparse
    import json
    import platform
    import shutil
    import statistics
    import subprocess
    import tempfile
    import time
    from dataclasses import dataclass, field
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    sys.path.insert(0, str(root))
    dagster_cli = str(Path(sys.executable).parent / "dagster")

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="CLI runs of each job (default 5)")
    parser.add_argument("--import-repeats", type=int, default=5, help="fresh interpreters per import figure")
    parser.add_argument("--in-process", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bookkeeping import machine_load

    load = machine_load()
    errors: list[str] = []

    import dagster
    from dagster import DagsterInstance, DagsterRunStatus

    submit_defs = definitions("submit")
    submit_name = next(job.name for job in submit_defs.resolve_all_job_defs() if job.name.endswith("_submit"))
    (asset_key,) = submit_defs.resolve_all_asset_keys()

    def environment(home: Path, mode: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("DOTFLOW_", "DAGSTER_"))}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
        env.update(DAGSTER_HOME=str(home), **{MODE_VARIABLE: mode})
        return env

    @dataclass
    class CliRun:
        mode: str
        seconds: float
        started_at: float
        ended_at: float
        phases: dict[str, float] = field(default_factory=dict)

    def phases_of(home: Path, started_at: float, ended_at: float, nested: bool) -> dict[str, float]:
        """Milliseconds per phase, from the instance's event log (wall-clock timestamps)."""
        with DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_runs()
            outer = next(run for run in runs if not run.tags.get("dotflow/submit_run_id"))
            times: dict[str, float] = {}
            for entry in instance.all_logs(outer.run_id):
                if entry.dagster_event is not None:
                    times.setdefault(entry.dagster_event.event_type_value, entry.timestamp)
            inner_seconds = 0.0
            if nested:
                inner = next(run for run in runs if run.tags.get("dotflow/submit_run_id") == outer.run_id)
                record = instance.get_run_record_by_id(inner.run_id)
                inner_seconds = record.end_time - record.create_timestamp.timestamp()
        marks = [
            ("CLI start -> run start (imports, instance, code load)", started_at, times["PIPELINE_START"]),
            ("run start -> step worker starting", times["PIPELINE_START"], times.get("STEP_WORKER_STARTING")),
            (
                "step worker starting -> started (child process, its imports)",
                times.get("STEP_WORKER_STARTING"),
                times.get("STEP_WORKER_STARTED"),
            ),
            (
                "step worker started -> step start (resources)",
                times.get("STEP_WORKER_STARTED") or times["PIPELINE_START"],
                times["STEP_START"],
            ),
            ("step start -> step success (the op)", times["STEP_START"], times["STEP_SUCCESS"]),
            ("step success -> run success", times["STEP_SUCCESS"], times["PIPELINE_SUCCESS"]),
            ("run success -> process exit", times["PIPELINE_SUCCESS"], ended_at),
        ]
        phases = {label: (end - start) * 1000 for label, start, end in marks if start is not None and end is not None}
        if nested:
            phases["  of which the nested asset run (created -> ended)"] = inner_seconds * 1000
        return phases

    def check_submit(home: Path) -> None:
        with DagsterInstance.from_config(str(home)) as instance:
            runs = instance.get_runs()
            outer = [run for run in runs if run.job_name == submit_name]
            inner = [run for run in runs if run.tags.get("dotflow/submit_run_id")]
            if not (len(outer) == 1 and outer[0].status == DagsterRunStatus.SUCCESS):
                errors.append(f"submit run in {home}: {[(run.job_name, run.status) for run in outer]}")
            if not (len(inner) == 1 and inner[0].status == DagsterRunStatus.SUCCESS):
                errors.append(f"nested asset run in {home}: {[(run.job_name, run.status) for run in inner]}")
                return
            records = instance.fetch_materializations(asset_key, limit=5).records
            decisions = [record.asset_materialization.metadata["dotflow/decision"].value for record in records]
            if decisions != ["new"]:
                errors.append(f"submit in {home}: materializations with decisions {decisions}, expected ['new']")

    def cli_run(mode: str, base: Path, index: int) -> CliRun:
        home = base / f"{mode}-{index}"
        home.mkdir(parents=True)
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        command = [dagster_cli, "job", "execute", "-f", str(Path(__file__).resolve())]
        if mode.startswith("noop"):
            command += ["-j", "noop"]
        else:
            config = home / "run.yaml"
            payload = json.dumps({"batch": index, "source": f"s3://bucket/uploads/{index}.zip"})
            config.write_text(f"ops:\n  {submit_name}:\n    config:\n      payload: {payload}\n")
            command += ["-j", submit_name, "-c", str(config)]
        started_at = time.time()
        started = time.perf_counter()
        completed = subprocess.run(
            command, cwd=root, env=environment(home, mode), capture_output=True, text=True, timeout=600
        )
        seconds = time.perf_counter() - started
        ended_at = time.time()
        run = CliRun(mode, seconds, started_at, ended_at)
        if completed.returncode != 0:
            errors.append(f"{mode} round {index}: exit {completed.returncode}\n{completed.stderr[-3000:]}")
            return run
        if not mode.startswith("noop"):
            check_submit(home)
        run.phases = phases_of(home, started_at, ended_at, nested=not mode.startswith("noop"))
        return run

    modes = ["noop", "submit"] + (["noop-in-process", "submit-in-process"] if args.in_process else [])
    results: dict[str, list[CliRun]] = {mode: [] for mode in modes}
    base = Path(tempfile.mkdtemp(prefix="dotflow-bench-cli-"))
    try:
        for index in range(args.rounds):
            for mode in modes:  # in turn, so a busy machine slows every job alike
                results[mode].append(cli_run(mode, base, index))
        imports = import_times(root, args.import_repeats, environment(base / "imports", "none"))
    finally:
        shutil.rmtree(base, ignore_errors=True)

    print(
        f"python {platform.python_version()}, dagster {dagster.__version__}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, before: {load}"
    )
    print(f"dagster job execute, a fresh DAGSTER_HOME (SQLite) per run; {args.rounds} rounds, jobs in turn\n")
    print(f"{'case':<58}{'best s':>8}{'median s':>10}  note")
    print(f"{'-' * 58}{'-' * 6:>8}{'-' * 8:>10}  ----")
    medians = {mode: statistics.median(run.seconds for run in runs) for mode, runs in results.items()}
    bests = {mode: min(run.seconds for run in runs) for mode, runs in results.items()}
    labels = {
        "noop": "(a) no-op job (one op doing nothing)",
        "submit": f"(b) {submit_name} (dotflow_submit_job, 1 no-op step)",
        "noop-in-process": "(c) no-op job, in_process_executor",
        "submit-in-process": f"(d) {submit_name}, in_process_executor",
    }
    notes = {
        "submit": f"{medians['submit'] / medians['noop']:.2f}x (a) (median); target: at most 1.2x",
        "noop-in-process": "",
        "submit-in-process": "",
    }
    if args.in_process:
        notes["submit-in-process"] = (
            f"{medians['submit-in-process'] / medians['noop']:.2f}x (a), "
            f"{medians['submit-in-process'] / medians['noop-in-process']:.2f}x (c) (medians)"
        )
    for mode in modes:
        print(f"{labels[mode]:<58}{bests[mode]:>8.2f}{medians[mode]:>10.2f}  {notes.get(mode, '')}")

    print("\nwhere the time goes, the median round of each (ms, from the run's event log):")
    median_runs = {mode: sorted(runs, key=lambda run: run.seconds)[len(runs) // 2] for mode, runs in results.items()}
    labels_seen: list[str] = []
    for run in median_runs.values():
        labels_seen += [label for label in run.phases if label not in labels_seen]
    header = "".join(f"{mode:>19}" for mode in modes)
    print(f"{'phase':<64}{header}")
    for label in labels_seen:
        cells = "".join(
            f"{median_runs[mode].phases[label]:>19.0f}" if label in median_runs[mode].phases else f"{'-':>19}"
            for mode in modes
        )
        print(f"{label:<64}{cells}")
    totals = "".join(f"{median_runs[mode].seconds * 1000:>19.0f}" for mode in modes)
    print(f"{'whole CLI process':<64}{totals}")

    print(f"\nimport times, each in a fresh interpreter, best of {args.import_repeats} (ms):")
    for label, value in imports:
        print(f"   {label:<70}{value:>8.0f}")
    if errors:
        print("\nWRONG RESULTS:", *errors, sep="\n  ")
        return 1
    return 0


IMPORT_PROBE = """
import json, time
marks = [time.perf_counter()]
import dagster
marks.append(time.perf_counter())
import dotflow
marks.append(time.perf_counter())
import dotflow_dagster
marks.append(time.perf_counter())
import dagster_aws.s3
marks.append(time.perf_counter())
import dotflow_dagster.jobs, dotflow_dagster.assets, dotflow_dagster.resource
marks.append(time.perf_counter())
import runpy, os
os.environ["{variable}"] = "submit"
runpy.run_path({path!r}, run_name="bench_defs")
marks.append(time.perf_counter())
print(json.dumps([after - before for before, after in zip(marks, marks[1:])]))
"""

IMPORT_LABELS = [
    "import dagster",
    "+ import dotflow",
    "+ import dotflow_dagster (the core: runner, stores, sources)",
    "+ import dagster_aws.s3 (dotflow_dagster.resource imports it)",
    "+ the rest of dotflow_dagster.jobs, .assets, .resource",
    "+ build the submit job's Definitions (this file, mode submit)",
]


def import_times(root, repeats: int, env: dict[str, str]) -> list[tuple[str, float]]:
    """Best-of-``repeats`` import times, each step on top of the ones before, in fresh interpreters."""
    import json
    import subprocess

    probe = IMPORT_PROBE.format(variable=MODE_VARIABLE, path=str(os.path.abspath(__file__)))
    samples = []
    for _ in range(repeats):
        completed = subprocess.run(
            [sys.executable, "-c", probe], cwd=root, env=env, capture_output=True, text=True, check=True, timeout=300
        )
        samples.append(json.loads(completed.stdout.strip().splitlines()[-1]))
    return [(label, min(sample[index] for sample in samples) * 1000) for index, label in enumerate(IMPORT_LABELS)]


if __name__ == "__main__":
    sys.exit(main())
