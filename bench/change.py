"""What a changed input costs: a run whose payload changed, against a run of a new payload.

Run from the repository root:

    .venv/bin/python bench/change.py [--repeats N] [--deepdiff-repeats N]

The payload is bench/fingerprint.py's ~2.5 MB batch of order dicts; the change is one quantity
in one order, made on a separately decoded copy (as a payload arriving from a queue would be).
A three-step trivial workflow (as in bench/overhead.py) makes the runner's bookkeeping, not the
steps, what is measured. Figures:

(a) ``DotflowWorkflow.run`` of the payload on a fresh store (decision ``new``);
(b) ``run`` of the changed payload under ``reset``, after the first payload completed,
    with where the time goes: loading the previous payload, describing the change, building a
    DeepDiff (only a hook reading ``InputChange.diff`` asks for one), garbage collection;
(c) a full ``DeepDiff(previous, current)``, which is what a changed input used to cost;
(d) ``describe_changes`` alone, and (e) the DeepDiff it builds on demand for policy hooks.

Medians of N rounds (time.perf_counter); each round runs (a) and (b) in turn, each on a
fresh store. Timings never fail the run; only a wrong decision or description exits non-zero.
"""

import argparse
import copy
import functools
import gc
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import orjson
from deepdiff import DeepDiff
from dotflow import action

# Runnable from a checkout without an install: the package lives one directory up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fingerprint import json_payload  # noqa: E402  (bench/fingerprint.py: the same payload)

from dotflow_dagster import DotflowWorkflow, LocalStore, policy, runner  # noqa: E402
from dotflow_dagster import diff as diff_module  # noqa: E402
from dotflow_dagster.ledger import Ledger  # noqa: E402

EXPECTED_LINE = "root['orders'][1650]['items'][0]['qty']: {before} -> {after}"


@action
def count(initial_context):
    return {"orders": len(initial_context.storage["orders"])}


@action
def double(previous_context):
    return {"doubled": previous_context.storage["orders"] * 2}


@action
def load(previous_context):
    return previous_context.storage["doubled"]


def changed_copy(payload: dict[str, Any]) -> dict[str, Any]:
    """A separately decoded copy (no object shared with ``payload``) with one quantity changed."""
    changed = orjson.loads(orjson.dumps(payload))
    changed["orders"][1650]["items"][0]["qty"] += 1
    return changed


GC_LABEL = "cyclic garbage collection (gc callbacks)"


class Stopwatch:
    """Accumulates the time spent in a few functions, and in the garbage collector, during a run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._gc_started = 0.0

    @contextmanager
    def watching_gc(self) -> Iterator[None]:
        # Unpickling a 2.5 MB payload allocates ~40k dicts and lists, which trigger collections
        # whose cost grows with everything alive: worth seeing next to the functions.
        gc.callbacks.append(self._on_gc)
        try:
            yield
        finally:
            gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.seconds[GC_LABEL] = self.seconds.get(GC_LABEL, 0.0) + time.perf_counter() - self._gc_started

    @contextmanager
    def watching(self, targets: dict[str, tuple[Any, str]]) -> Iterator[None]:
        originals = {}
        for label, (owner, name) in targets.items():
            original = getattr(owner, name, None)
            if original is None:  # the runner may no longer call it: then it costs nothing
                continue
            originals[label] = (owner, name, original)
            setattr(owner, name, self._timed(label, original))
        try:
            yield
        finally:
            for owner, name, original in originals.values():
                setattr(owner, name, original)

    def _timed(self, label: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - started

        return timed


WATCHED = {
    "previous payload loaded (store read + unpickle)": (Ledger, "get_payload"),
    "describe_changes (as called by the runner)": (runner, "describe_changes"),
    "DeepDiff on pruned payloads": (diff_module, "_pruned_deepdiff"),
}


@dataclass(frozen=True)
class Case:
    """One kind of run: ``prepare`` fills a fresh store (untimed), then ``run`` is timed."""

    prepare: Callable[[LocalStore], object]
    run: Callable[[LocalStore], Any]
    context: Callable[[], AbstractContextManager[None]] = nullcontext


@dataclass
class Measured:
    seconds: list[float] = field(default_factory=list)
    parts: list[dict[str, float]] = field(default_factory=list)
    reports: list[Any] = field(default_factory=list)

    def median_part(self, label: str) -> float:
        return median(parts.get(label, 0.0) for parts in self.parts)


def measure(cases: dict[str, Case], repeats: int) -> dict[str, Measured]:
    """Run every case once per round, in turn, so a busy machine slows them all alike."""
    results = {name: Measured() for name in cases}
    for _ in range(repeats):
        for name, case in cases.items():
            with tempfile.TemporaryDirectory() as directory, case.context():
                store = LocalStore(f"{directory}/store")
                case.prepare(store)
                stopwatch = Stopwatch()
                with stopwatch.watching(WATCHED), stopwatch.watching_gc():
                    started = time.perf_counter()
                    report = case.run(store)
                    elapsed = time.perf_counter() - started
            results[name].seconds.append(elapsed)
            results[name].parts.append(stopwatch.seconds)
            results[name].reports.append(report)
    return results


def median_seconds(function: Callable[[], object], repeats: int) -> float:
    function()  # warm up outside the measurement
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return median(samples)


def table(rows: list[tuple[str, float, str]]) -> str:
    width = max(len(name) for name, _, _ in rows)
    lines = [f"{'case':<{width}}  {'ms':>8}  note"]
    lines += [f"{name:<{width}}  {value * 1000:>8.1f}  {note}".rstrip() for name, value, note in rows]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--deepdiff-repeats", type=int, default=1, help="the full DeepDiff takes seconds")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.WARNING)

    payload = json_payload(2_500_000)
    changed = changed_copy(payload)
    before_qty = payload["orders"][1650]["items"][0]["qty"]
    expected = EXPECTED_LINE.format(before=before_qty, after=before_qty + 1)
    workflow = DotflowWorkflow("bench-change", steps=[count, double, load], on_input_change="reset")
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    size = len(orjson.dumps(payload)) / 1e6
    print(f"payload: {len(payload['orders'])} orders, {size:.2f} MB JSON; change: {expected}")
    print(f"median of {args.repeats} runs each (time.perf_counter), 3 trivial steps, a fresh store per run\n")

    def run_new(store: LocalStore) -> Any:
        return workflow.run(payload, store=store)

    def run_changed(store: LocalStore) -> Any:
        return workflow.run(changed, store=store)

    results = measure(
        {
            "new": Case(prepare=lambda store: None, run=run_new),
            "changed": Case(prepare=run_new, run=run_changed),
        },
        args.repeats,
    )
    new, changed_runs = results["new"], results["changed"]
    decisions = {r.decision for r in new.reports}, {r.decision for r in changed_runs.reports}
    if decisions != ({"new"}, {"reset"}):
        print(f"ERROR: unexpected decisions {decisions}", file=sys.stderr)
        return 1
    if any(tuple(report.changes) != (expected,) for report in changed_runs.reports):
        print(f"ERROR: the run reported {changed_runs.reports[0].changes!r}, expected {expected!r}", file=sys.stderr)
        return 1

    previous = copy.deepcopy(payload)  # not the object the current payload was decoded from
    description = policy.describe_changes(previous, changed)
    if description.lines != (expected,):
        print(f"ERROR: describe_changes gave {description.lines!r}, expected {expected!r}", file=sys.stderr)
        return 1
    full_seconds = median_seconds(lambda: DeepDiff(previous, changed), args.deepdiff_repeats)
    describe_seconds = median_seconds(lambda: policy.describe_changes(previous, changed), args.repeats * 3)
    lazy_seconds = median_seconds(lambda: policy.describe_changes(previous, changed).diff, args.repeats)
    if set(description.diff.affected_paths) != set(DeepDiff(previous, changed).affected_paths):
        print("ERROR: the pruned DeepDiff's paths differ from the full DeepDiff's", file=sys.stderr)
        return 1

    def row(name: str, measured: Measured) -> list[tuple[str, float, str]]:
        ratios = [seconds / base for seconds, base in zip(measured.seconds, new.seconds, strict=True)]
        spread = f"per-round ratios {min(ratios):.2f}-{max(ratios):.2f}x"
        note = "" if measured is new else f"{median(ratios):.2f}x (a), {spread}"
        parts = [(f"      in it: {label}", measured.median_part(label), "") for label in [*WATCHED, GC_LABEL]]
        return [(name, median(measured.seconds), note), *[part for part in parts if part[1]]]

    print(table([
        *row("(a) run, new payload (decision new)", new),
        *row("(b) run, changed payload (decision reset)", changed_runs),
        ("(c) DeepDiff(previous, current): the old cost", full_seconds, f"median of {args.deepdiff_repeats}"),
        ("(d) describe_changes(previous, current)", describe_seconds,
         f"(c)/(d) = {full_seconds / describe_seconds:.0f}x"),
        ("(e) describe_changes(...).diff, on demand", lazy_seconds, f"(c)/(e) = {full_seconds / lazy_seconds:.0f}x"),
    ]))
    print("\nThe 'in it' rows overlap: a collection that runs during a watched function counts in both.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
