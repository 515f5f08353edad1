"""What a run's bookkeeping costs: a 20-step no-op workflow on LocalStore against its durable-write floor.

Run from the repository root (also ``make bench``):

    .venv/bin/python bench/bookkeeping.py [--runs N] [--profile-runs N] [--dir PATH]

``DotflowWorkflow.run`` of a fresh payload (all 20 steps executed) on a ``LocalStore``, in three
states of the store: (A) the workflow's first input (decision ``new``; its folders are created);
(B) steady state, a workflow that already ran more inputs than its retention keeps (decision
``reset``; every run also prunes the oldest fingerprint's checkpoints and payload); (C) as (B),
with the ledger's history at its cap of ``MAX_HISTORY`` entries, as after a thousand distinct
inputs (a queue worker's usual state; the ledger is then about 500 KB).

The floor of each case is measured in the same run: the durable writes that case's run makes,
as many and as large, each done the way ``LocalStore`` does it with nothing else around it
(write a temporary file, fsync it, rename it over the target, fsync the directory), into the
same folder layout, replacing the files the run replaces (the ledger), made durable beforehand
as the run's are. The run's writes are counted, not guessed: a counted run (not a timed one)
wraps ``LocalStore``'s write path (``_replace_into``, ``_link_into``, the directory fsyncs, the
deletes, ``os.mkdir``, ``os.rmdir``). A second floor (g) adds the run's other durable operations:
folders created and removed, and keys deleted (files made durable beforehand, as the run's are:
unlinking a file whose blocks are allocated costs several times more than one only in the page
cache), with their directory fsyncs. Bare dotflow (its own ``DotFlow`` with the same 20 steps
and its in-memory storage, nothing durable) is shown for context only.

Each round runs the case and then its floors, so a busy machine slows them alike; the ratio
reported first is the median of the rounds' own ratios, then the ratios of medians and of bests
of N rounds. Then a profiled pass says where the time beyond the floor goes (time
spent in the runner's parts, measured by wrapping them, and cProfile's top entries).

Exits non-zero only if a result is wrong (a run that did not execute all 20 steps, or a count of
durable writes that does not match the run's keys), never because of a timing.
"""

import argparse
import contextlib
import cProfile
import functools
import io
import logging
import os
import platform
import pstats
import shutil
import stat
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

# Runnable from a checkout without an install: the package lives one directory up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dotflow import Config, DotFlow, action  # noqa: E402
from dotflow.providers import LogDefault  # noqa: E402

from dotflow_dagster import DotflowWorkflow, LocalStore, runner  # noqa: E402
from dotflow_dagster.ledger import MAX_HISTORY, HistoryEntry, Ledger, LedgerState  # noqa: E402
from dotflow_dagster.stores import base as store_base  # noqa: E402
from dotflow_dagster.stores import local as local_store  # noqa: E402

__all__ = ["DurableOps", "count_durable_ops", "durable_write", "machine_load", "no_op_steps"]

STEPS = 20
WORKFLOW_ID = "bench-bookkeeping"
WORKFLOW_RETENTION = 5  # the default


def machine_load() -> str:
    """The load averages and, where the kernel reports it, the share of time tasks waited on I/O.

    Benchmarks of fsync-bound code are only comparable on a quiet disk: other work's writes make
    every fsync wait, which the load average alone does not show.
    """
    text = "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg())
    try:
        some = Path("/proc/pressure/io").read_text().split("\n")[0]
        text += f", io pressure {some.split()[1].split('=')[1]}% (avg10)"
    except (OSError, IndexError):
        pass
    return text


def no_op_steps(count: int, *, sleep_seconds: float = 0.0) -> list[Callable[..., Any]]:
    """``count`` distinct dotflow ``@action`` steps that return ``None`` (after ``sleep_seconds``).

    Example:
        >>> [step.func.__name__ for step in no_op_steps(2)]
        ['step_00', 'step_01']
    """
    steps = []
    for index in range(count):

        def step(previous_context: Any) -> None:
            if sleep_seconds:
                time.sleep(sleep_seconds)

        step.__name__ = step.__qualname__ = f"step_{index:02d}"
        steps.append(action(step))
    return steps


def payload(index: int) -> dict[str, Any]:
    return {"batch": index, "source": f"s3://bucket/uploads/{index}.zip", "rows": 50}


# -- counting durable operations ----------------------------------------------------------------


@dataclass
class DurableOps:
    """The durable operations one run made on a ``LocalStore``, by relative path.

    Attributes:
        writes: ``(key path, bytes)`` of every durable write (temporary file, fsync, rename or
            link, directory fsync), in order.
        mkdirs: folders created (each followed by an fsync of its parent).
        deletes: key files unlinked.
        rmdirs: folders removed (emptied by deletes).
        other_dir_fsyncs: directory fsyncs that belong to no write and no mkdir (after deletes).
        file_fsyncs: fsyncs of files (one per temporary file written).
        replaced: key path -> size of the file the run's first write to it replaced (a key that
            existed before the run, such as the ledger).
        lost_links: create-if-absent writes whose target existed (temporary written, not linked).
        reads: files opened for reading by the store (whole values and TTL headers).
    """

    writes: list[tuple[str, int]] = field(default_factory=list)
    replaced: dict[str, int] = field(default_factory=dict)
    mkdirs: list[str] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    rmdirs: list[str] = field(default_factory=list)
    other_dir_fsyncs: list[str] = field(default_factory=list)
    file_fsyncs: int = 0
    lost_links: int = 0
    reads: Counter[str] = field(default_factory=Counter)

    def writes_by_kind(self) -> Counter[str]:
        kinds: Counter[str] = Counter()
        for path, _ in self.writes:
            kind = next((name for name in ("checkpoints", "payloads", "decided") if f"/{name}/" in path), None)
            kinds[kind or Path(path).name] += 1
        return kinds

    def summary(self) -> str:
        kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(self.writes_by_kind().items()))
        dir_fsyncs = len(self.writes) + len(self.mkdirs) + len(self.other_dir_fsyncs)
        return (
            f"{len(self.writes)} durable writes ({kinds}; {len(self.replaced)} replacing a file that existed "
            f"before the run); fsyncs: {self.file_fsyncs} files + {dir_fsyncs} "
            f"directories; {len(self.mkdirs)} folders created, {len(self.deletes)} keys deleted, "
            f"{len(self.rmdirs)} folders removed; "
            f"{sum(self.reads.values())} files read ({self.reads['header']} TTL headers)"
        )


@contextlib.contextmanager
def count_durable_ops(store: LocalStore) -> Iterator[DurableOps]:
    """Record what ``store`` does durably inside the block, by wrapping its write path."""
    ops = DurableOps()
    root = store.root
    writing: list[Path] = []

    def relative(path: Any) -> str:
        return Path(path).resolve().relative_to(root).as_posix()

    def write_wrapper(original: Callable[..., Any], *, linked: bool) -> Callable[..., Any]:
        @functools.wraps(original)
        def wrapped(self: LocalStore, target: Path, raw: bytes) -> Any:
            path = relative(target)
            if not any(written == path for written, _ in ops.writes) and target.is_file():
                ops.replaced[path] = target.stat().st_size
            writing.append(target.parent)
            try:
                result = original(self, target, raw)
            finally:
                writing.pop()
            if linked and result is False:
                ops.lost_links += 1
            else:
                ops.writes.append((path, len(raw)))
            return result

        return wrapped

    original_fsync_directory = local_store._fsync_directory
    mkdir_fsyncs_due = [0]

    def fsync_directory(directory: Path) -> None:
        original_fsync_directory(directory)
        if writing and Path(directory) == writing[-1]:
            return  # the write's own directory fsync
        if mkdir_fsyncs_due[0]:
            mkdir_fsyncs_due[0] -= 1
            return  # the parent of a folder just created
        ops.other_dir_fsyncs.append(relative(directory))

    original_mkdir = os.mkdir

    def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        original_mkdir(path, *args, **kwargs)
        if Path(path).resolve().is_relative_to(root):
            ops.mkdirs.append(relative(path))
            mkdir_fsyncs_due[0] += 1

    original_rmdir = os.rmdir

    def rmdir(path: Any, *args: Any, **kwargs: Any) -> None:
        original_rmdir(path, *args, **kwargs)
        if Path(path).resolve().is_relative_to(root):
            ops.rmdirs.append(relative(path))

    original_fsync = os.fsync

    def fsync(fd: Any) -> None:
        original_fsync(fd)
        if writing and not stat.S_ISDIR(os.fstat(fd).st_mode):
            ops.file_fsyncs += 1

    original_delete = LocalStore._delete

    def delete(self: LocalStore, key: str, path: Path, *, sync: bool) -> bool:
        removed_before = path.exists()
        result = original_delete(self, key, path, sync=sync)
        if removed_before and not path.exists():
            ops.deletes.append(relative(path))
        return result

    original_read_raw = LocalStore._read_raw
    original_is_live = LocalStore._is_live

    def read_raw(self: LocalStore, key: str) -> bytes | None:
        ops.reads["value"] += 1
        return original_read_raw(self, key)

    def is_live(self: LocalStore, key: str, path: Path, action: str) -> bool | None:
        ops.reads["header"] += 1
        return original_is_live(self, key, path, action)

    patches = [
        (LocalStore, "_replace_into", write_wrapper(LocalStore._replace_into, linked=False)),
        (LocalStore, "_link_into", write_wrapper(LocalStore._link_into, linked=True)),
        (LocalStore, "_delete", delete),
        (LocalStore, "_read_raw", read_raw),
        (LocalStore, "_is_live", is_live),
        (local_store, "_fsync_directory", fsync_directory),
        (os, "mkdir", mkdir),
        (os, "rmdir", rmdir),
        (os, "fsync", fsync),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, replacement in patches:
        setattr(owner, name, replacement)
    try:
        yield ops
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


# -- the floor ----------------------------------------------------------------------------------


def durable_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` as LocalStore does, with nothing around it: the floor's unit.

    Example:
        >>> import tempfile
        >>> target = Path(tempfile.mkdtemp()) / "value"
        >>> durable_write(target, b"42")
        >>> target.read_bytes()
        b'42'
    """
    temporary = path.parent / f"#tmp-{path.name}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temporary, path)
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Floor:
    """Replays a run's durable operations into fresh folders: ``writes`` only, or ``full``."""

    def __init__(self, ops: DurableOps, *, base: Path) -> None:
        self.ops = ops
        self.base = base
        self.data = {size: b"x" * size for _, size in ops.writes}
        self.rounds = 0

    def prepare(self, *, full: bool) -> Path:
        """A fresh root holding what existed before the run (untimed)."""
        self.rounds += 1
        root = self.base / f"floor-{self.rounds}"
        created_by_run = {Path(path) for path in self.ops.mkdirs} if full else set()
        needed = {Path(path).parent for path, _ in self.ops.writes} | {Path(path).parent for path in self.ops.deletes}
        needed |= {Path(path) for path in self.ops.other_dir_fsyncs}
        for directory in sorted(needed - created_by_run):
            (root / directory).mkdir(parents=True, exist_ok=True)
        root.parent.mkdir(parents=True, exist_ok=True)
        for folder in created_by_run:
            if folder != Path(".") and folder.parent not in created_by_run:
                (root / folder.parent).mkdir(parents=True, exist_ok=True)
        # Durable like the run's own files: replacing or unlinking a file whose blocks are
        # allocated costs more than one still only in the page cache.
        for path, size in self.ops.replaced.items():
            durable_write(root / path, b"x" * size)
        if full:
            for path in self.ops.deletes:
                durable_write(root / path, b"x" * 200)
        return root

    def writes_only(self, root: Path) -> None:
        for path, size in self.ops.writes:
            durable_write(root / path, self.data[size])

    def everything(self, root: Path) -> None:
        for folder in self.ops.mkdirs:
            os.mkdir(root / folder)
            fsync_directory((root / folder).parent)
        self.writes_only(root)
        for path in self.ops.deletes:
            os.unlink(root / path)
        for directory in self.ops.other_dir_fsyncs:
            fsync_directory(root / directory)
        for folder in self.ops.rmdirs:
            os.rmdir(root / folder)


# -- timing -------------------------------------------------------------------------------------


@dataclass
class Samples:
    values: list[float] = field(default_factory=list)

    def add(self, seconds: float) -> None:
        self.values.append(seconds * 1000)

    @property
    def best(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)


def timed(function: Callable[[], Any]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


@dataclass
class Case:
    """One state of the store a fresh payload arrives in (see the module's docstring)."""

    name: str
    label: str
    state: str  # "empty", "steady" or "full" (the ledger's history at MAX_HISTORY)
    expected: str  # the decision a fresh payload gets
    run: Samples = field(default_factory=Samples)
    floor: Samples = field(default_factory=Samples)
    full_floor: Samples = field(default_factory=Samples)
    ops: DurableOps | None = None
    parts: Counter[str] = field(default_factory=Counter)
    parts_runs: int = 0


def check(condition: bool, message: str, errors: list[str]) -> None:
    if not condition:
        errors.append(message)


def full_history(state: LedgerState) -> LedgerState:
    """``state`` with ``MAX_HISTORY`` earlier decisions before its own, as after that many inputs."""
    earlier = tuple(
        HistoryEntry(
            fingerprint=f"{index:064x}",
            decision="reset",
            first_seen="2026-01-01T00:00:00.000+00:00",
            outcome="succeeded",
            run_id=f"{index:032x}",
            previous_fingerprint=f"{index - 1:064x}",
            updated_at="2026-01-01T00:00:01.000+00:00",
            summary=f"root['batch']: {index - 1} -> {index}; root['source']: 's3://bucket/uploads/...' (+0 more)",
        )
        for index in range(MAX_HISTORY)
    )
    return replace(state, history=earlier + state.history, decision_count=state.decision_count + MAX_HISTORY)


class Bench:
    def __init__(self, directory: Path, errors: list[str]) -> None:
        self.directory = directory
        self.errors = errors
        self.workflow = DotflowWorkflow(WORKFLOW_ID, steps=no_op_steps(STEPS), retention=WORKFLOW_RETENTION)
        self.next_payload = 0
        self.stores = 0

    def fresh_payload(self) -> dict[str, Any]:
        self.next_payload += 1
        return payload(self.next_payload)

    def new_store(self, state: str) -> LocalStore:
        """A store without this workflow (``empty``), or where it ran ``retention + 1`` inputs already
        (``steady``), and then ``MAX_HISTORY`` more as far as its ledger's history goes (``full``)."""
        self.stores += 1
        store = LocalStore(self.directory / f"store-{self.stores}")
        if state in ("steady", "full"):
            for _ in range(self.workflow.retention + 1):
                self.workflow.run(self.fresh_payload(), store=store)
        if state == "full":
            self.workflow.ledger(store=store).update(full_history)
        return store

    def run_fresh(self, store: LocalStore, expected: str) -> Any:
        report = self.workflow.run(self.fresh_payload(), store=store)
        check(
            report.ok and report.decision == expected and len(report.executed) == STEPS,
            f"{expected} run: decision {report.decision}, executed {len(report.executed)} of {STEPS}",
            self.errors,
        )
        return report

    def counted(self, case: Case) -> DurableOps:
        store = self.new_store(case.state)
        with count_durable_ops(store) as ops:
            report = self.run_fresh(store, case.expected)
        # Every key the run must write, counted from the report: one payload, one decided marker,
        # a checkpoint per executed step, and two ledger writes (the decision, the outcome).
        kinds = ops.writes_by_kind()
        check(
            kinds == Counter(checkpoints=len(report.executed), payloads=1, decided=1, **{"ledger.json": 2}),
            f"durable writes of a {case.expected} run: {dict(kinds)}",
            self.errors,
        )
        return ops

    def measure(self, case: Case, *, runs: int, profile_runs: int) -> None:
        case.ops = self.counted(case)
        floor = Floor(case.ops, base=self.directory / f"floors-{case.state}")
        shared_store = None if case.state == "empty" else self.new_store(case.state)
        self.run_fresh(self.new_store("empty"), "new")  # warm-up: imports, caches
        for _ in range(runs):
            store = shared_store or self.new_store(case.state)
            case.run.add(timed(lambda store=store: self.run_fresh(store, case.expected)))
            root = floor.prepare(full=False)
            case.floor.add(timed(lambda root=root: floor.writes_only(root)))
            root = floor.prepare(full=True)
            case.full_floor.add(timed(lambda root=root: floor.everything(root)))
        stores = [shared_store or self.new_store(case.state) for _ in range(profile_runs)]
        with part_timers() as spent:
            for store in stores:
                spent["whole run (with the wrappers)"] += timed(
                    lambda store=store: self.run_fresh(store, case.expected)
                )
        case.parts, case.parts_runs = spent, profile_runs


def bare_dotflow_samples(runs: int) -> Samples:
    """dotflow's own ``DotFlow``, the same 20 steps, its default in-memory storage."""
    config = Config(log=LogDefault(level="WARNING"))
    steps = no_op_steps(STEPS)
    samples = Samples()
    for index in range(runs + 1):

        def run(index: int = index) -> None:
            flow = DotFlow(config=config)
            flow.task.add(step=steps, initial_context=payload(index))
            flow.start()

        seconds = timed(run)
        if index:  # the first is a warm-up
            samples.add(seconds)
    return samples


# -- where the time goes ------------------------------------------------------------------------

PARTS: list[tuple[str, Any, str]] = [
    ("fingerprint the payload", DotflowWorkflow, "fingerprint"),
    ("store the payload (Ledger.put_payload, twice)", Ledger, "put_payload"),
    ("run lock (LocalStore.run_lock enter + exit)", LocalStore, "run_lock"),
    ("decide (plan_decision)", runner, "plan_decision"),
    ("  of which the previous payload + describe_changes", runner, "_input_change"),
    ("  of which Ledger.record_decision (CAS + decided marker)", Ledger, "record_decision"),
    ("steps (_run_steps: restore, execute, checkpoint)", runner, "_run_steps"),
    ("  of which dotflow's TaskEngine (all steps)", runner, "_execute_step"),
    ("  of which checkpoint writes (store.post)", store_base.DotflowStore, "post"),
    ("record the outcome (Ledger.record_outcome)", Ledger, "record_outcome"),
    ("retention (apply_retention)", runner, "apply_retention"),
]


@contextlib.contextmanager
def part_timers() -> Iterator[Counter[str]]:
    """Add up the time spent in each of ``PARTS`` (a part missing in this version is skipped)."""
    spent: Counter[str] = Counter()
    saved = []
    for label, owner, name in PARTS:
        original = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
        if original is None:
            continue
        if name == "run_lock":

            @contextlib.contextmanager
            def wrapped_lock(*args: Any, _original: Any = original, _label: str = label, **kwargs: Any) -> Any:
                started = time.perf_counter()
                with _original(*args, **kwargs):
                    spent[_label] += time.perf_counter() - started
                    yield
                    started = time.perf_counter()
                spent[_label] += time.perf_counter() - started

            replacement: Any = wrapped_lock
        else:

            @functools.wraps(original)
            def replacement(*args: Any, _original: Any = original, _label: str = label, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    spent[_label] += time.perf_counter() - started

        saved.append((owner, name, original))
        setattr(owner, name, replacement)
    try:
        yield spent
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def profile_lines(bench: Bench, case: Case, runs: int) -> list[str]:
    """cProfile's top entries over ``runs`` runs of ``case`` (not the timed ones)."""
    stores = [bench.new_store(case.state) for _ in range(1 if case.state != "empty" else runs)]
    profiler = cProfile.Profile()
    profiler.enable()
    for index in range(runs):
        bench.run_fresh(stores[index % len(stores)], case.expected)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime").print_stats(16)
    body = out.getvalue()
    table = body[body.index("ncalls") :] if "ncalls" in body else body
    lines = [f"cProfile of {runs} runs of {case.name}, top 16 by tottime (seconds, all runs together):"]
    return lines + ["   " + line for line in table.rstrip().splitlines()]


# -- report -------------------------------------------------------------------------------------


def print_table(rows: list[tuple[str, Samples | None, str]]) -> None:
    print(f"{'case':<58}{'best ms':>9}{'median ms':>11}  note")
    print(f"{'-' * 58}{'-' * 9:>9}{'-' * 9:>11}  ----")
    for name, samples, note in rows:
        if samples is None:
            print(f"{name:<58}{'':>9}{'':>11}  {note}")
        else:
            print(f"{name:<58}{samples.best:>9.2f}{samples.median:>11.2f}  {note}")


def paired_ratio(run: Samples, floor: Samples) -> float:
    """The median of the rounds' own ratios: each run against the floor measured right after it.

    Steadier than a ratio of medians when other work on the machine comes and goes.
    """
    return statistics.median(mine / theirs for mine, theirs in zip(run.values, floor.values, strict=True))


def ratio_note(run: Samples, floor: Samples, what: str) -> str:
    return (
        f"{paired_ratio(run, floor):.2f}x {what} (per round), "
        f"{run.median / floor.median:.2f}x (medians), {run.best / floor.best:.2f}x (bests)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="timed runs per case (default 40)")
    parser.add_argument("--profile-runs", type=int, default=20, help="runs timed by part and profiled (default 20)")
    parser.add_argument("--dir", help="where the stores go (default: a temporary directory)")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.WARNING)
    errors: list[str] = []
    load = machine_load()
    directory = Path(tempfile.mkdtemp(prefix="dotflow-bench-", dir=args.dir))
    cases = [
        Case("(A)", "first input on an empty store", "empty", "new"),
        Case("(B)", f"steady state: {WORKFLOW_RETENTION + 1} inputs before, one pruned per run", "steady", "reset"),
        Case("(C)", f"as (B), the ledger's history full ({MAX_HISTORY} entries)", "full", "reset"),
    ]
    try:
        bench = Bench(directory, errors)
        for case in cases:
            bench.measure(case, runs=args.runs, profile_runs=args.profile_runs)
        bare = bare_dotflow_samples(args.runs)
        profile = profile_lines(bench, cases[-1], args.profile_runs)
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"before: {load}; stores in {directory.parent}"
    )
    print(f"{STEPS} no-op steps; best and median of {args.runs} runs each (time.perf_counter), interleaved\n")
    for case in cases:
        assert case.ops is not None
        print(f"{case.name} {case.label}: a fresh payload, decision {case.expected}")
        print(f"    the run's durable operations: {case.ops.summary()}")
        print_table(
            [
                ("DotflowWorkflow.run, fresh payload", case.run, ratio_note(case.run, case.floor, "(f)")),
                (
                    f"(f) floor: the run's {len(case.ops.writes)} durable writes",
                    case.floor,
                    f"same sizes ({sum(size for _, size in case.ops.writes):,} bytes); target: run <= 1.5x (f)",
                ),
                (
                    "(g) floor: (f) + the run's mkdirs, deletes, rmdirs",
                    case.full_floor,
                    ratio_note(case.run, case.full_floor, "(g)"),
                ),
            ]
        )
        print()
    print("context only: bare dotflow (DotFlow, the same 20 steps, in-memory storage, nothing durable)")
    print_table([("bare dotflow DotFlow.start", bare, "")])
    print()
    print(f"where the time goes: mean ms per run over {args.profile_runs} runs, parts timed by wrapping them")
    labels = ["whole run (with the wrappers)"] + [label for label, _, _ in PARTS]
    print(f"{'part':<60}" + "".join(f"{case.name:>9}" for case in cases))
    for label in labels:
        if any(label in case.parts for case in cases):
            cells = "".join(f"{case.parts[label] / case.parts_runs * 1000:>9.2f}" for case in cases)
            print(f"{label:<60}{cells}")
    print()
    for line in profile:
        print(line)
    if errors:
        print("\nWRONG RESULTS:", *sorted(set(errors)), sep="\n  ")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
