"""Benchmark a DirectorySource scan and a payload_change_sensor tick against a bare listing.

Run from the repository root:

    .venv/bin/python bench/sensor.py [--repeats N] [--dir PATH] [--source-only]

Writes 100, 1,000 and 10,000 small ``<workflow_id>.json`` files into fresh directories (under
``--dir``, default the system temporary directory), then times, in the same run:

* the floor: a bare ``os.scandir`` + ``DirEntry.stat()`` of every file;
* ``DirectorySource.scan`` (its items consumed) with every file known, and with 100 of 10,000
  changed;
* unless ``--source-only``: a full ``payload_change_sensor`` tick, ``build_sensor_context`` +
  ``evaluate_tick`` (what the daemon calls) on an ``instance_for_test()``, for a sensor over one
  trivial workflow per file. Its state is seeded as if every file had been handled by earlier
  ticks and every requested run had finished; rows for 100 touched files (read again, same
  payload, no run) and for 100 workflows whose requested runs have not finished (the per-tick
  retention check) follow.

Every ``os.open`` and ``open`` during the timed calls is counted. Timings never fail the run;
only a wrong result (an opened unchanged file, a missing item, a run request) exits non-zero.
"""

import argparse
import builtins
import io
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

# Runnable from a checkout without an install: the package lives one directory up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dotflow_dagster.sources import ArrivedPayload, DirectorySource  # noqa: E402

COUNTS = (100, 1_000, 10_000)
CHANGED = 100
LIMIT = 10 * 2**20
Row = tuple[str, float, float, str]


class OpenCounter:
    """Counts ``os.open`` and ``open`` calls (of paths under ``under``, if given) while active."""

    def __init__(self, under: Path | None = None) -> None:
        self.count = 0
        self._under = None if under is None else os.path.join(str(under), "")
        self._real = (os.open, builtins.open, io.open)

    def _seen(self, path: Any) -> None:
        if self._under is None or (not isinstance(path, int) and os.fspath(path).startswith(self._under)):
            self.count += 1

    def __enter__(self) -> "OpenCounter":
        real_os_open, real_open, _ = self._real

        def counting_os_open(path, *args, **kwargs):
            self._seen(path)
            return real_os_open(path, *args, **kwargs)

        def counting_open(file, *args, **kwargs):
            self._seen(file)
            return real_open(file, *args, **kwargs)

        os.open, builtins.open, io.open = counting_os_open, counting_open, counting_open
        return self

    def __exit__(self, *exc: object) -> None:
        os.open, builtins.open, io.open = self._real


def make_inbox(base: Path, count: int) -> Path:
    inbox = Path(tempfile.mkdtemp(prefix=f"inbox-{count}-", dir=base))
    for index in range(count):
        payload = {"order_id": f"ORD-{index:08d}", "qty": index % 7, "paid": index % 2 == 0}
        (inbox / f"wf-{index:05d}.json").write_bytes(orjson.dumps(payload))
    return inbox


def timings_ms(
    function: Callable[[], object], repeats: int, *, before: Callable[[], object] | None = None
) -> tuple[float, float]:
    """(best, median) of ``repeats`` runs after one warm-up run; ``before`` runs untimed before each."""
    samples = []
    for run in range(repeats + 1):
        if before is not None:
            before()
        start = time.perf_counter()
        function()
        if run:
            samples.append(time.perf_counter() - start)
    return min(samples) * 1000, statistics.median(samples) * 1000


def bare_listing(directory: str) -> Callable[[], int]:
    def run() -> int:
        count = 0
        with os.scandir(directory) as entries:
            for entry in entries:
                entry.stat()
                count += 1
        return count

    return run


def bare_listing_dir_fd(directory: str) -> Callable[[], int]:
    def run() -> int:
        count = 0
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    entry.stat()  # fstatat(fd, name): no walk of the directory's path
                    count += 1
        finally:
            os.close(fd)
        return count

    return run


def source_scan(source: DirectorySource, known: dict[str, str]) -> Callable[[], int]:
    def run() -> int:
        result = source.scan(known=known, max_payload_bytes=LIMIT)
        return sum(1 for _ in result.items)

    return run


def table(rows: list[Row]) -> str:
    width = max(len(name) for name, *_ in rows)
    lines = [
        f"{'case':<{width}}  {'best ms':>8}  {'median ms':>9}  note",
        f"{'-' * width}  {'-' * 8}  {'-' * 9}  ----",
    ]
    lines += [f"{name:<{width}}  {best:>8.2f}  {median:>9.2f}  {note}".rstrip() for name, best, median, note in rows]
    return "\n".join(lines)


def source_rows(
    inboxes: dict[int, Path], floors: dict[int, tuple[float, float]], repeats: int, failures: list[str]
) -> list[Row]:
    rows: list[Row] = []
    for count, inbox in inboxes.items():
        source = DirectorySource(inbox)
        everything = list(source.scan(known={}, max_payload_bytes=LIMIT).items)
        if len(everything) != count or not all(isinstance(item, ArrivedPayload) for item in everything):
            failures.append(f"first scan of {count} files did not yield {count} payloads")
        known = {item.location: item.version for item in everything}
        with OpenCounter() as opens:
            best, median = timings_ms(source_scan(source, known), repeats)
            items = source_scan(source, known)()
        if opens.count or items:
            failures.append(f"scan of {count} unchanged files: {opens.count} opens, {items} items")
        rows.append((f"(f) floor: os.scandir + DirEntry.stat, {count:,} files", *floors[count], ""))
        note = f"{median / floors[count][1]:.2f}x the floor (median), {opens.count} opens"
        rows.append((f"(s) DirectorySource.scan, {count:,} unchanged", best, median, note))

    count = COUNTS[-1]
    inbox = inboxes[count]
    source = DirectorySource(inbox)
    known = {item.location: item.version for item in source.scan(known={}, max_payload_bytes=LIMIT).items}
    for location in sorted(known)[:: count // CHANGED]:
        known[location] = "0:0"  # as if the file changed since the last tick
    with OpenCounter() as opens:
        best, median = timings_ms(source_scan(source, known), repeats)
        items = source_scan(source, known)()
    scans = repeats + 2  # warm-up + timed runs + the checking run
    if items != CHANGED or opens.count != CHANGED * scans:
        failures.append(f"{CHANGED} changed of {count}: {items} items, {opens.count} opens over {scans} scans")
    note = f"{median / floors[count][1]:.2f}x the floor (median), {opens.count // scans} opens per scan"
    rows.append((f"(c) DirectorySource.scan, {CHANGED} changed of {count:,}", best, median, note))
    fd_best, fd_median = timings_ms(bare_listing_dir_fd(str(inbox)), repeats)
    note = f"{fd_median / floors[count][1]:.2f}x the floor; not used (see README)"
    rows.append((f"(d) os.scandir(dir fd) + fstatat, {count:,} files", fd_best, fd_median, note))
    return rows


def sensor_rows(
    base: Path,
    inboxes: dict[int, Path],
    floors: dict[int, tuple[float, float]],
    repeats: int,
    pending_repeats: int,
    failures: list[str],
) -> list[Row]:
    from dagster import Definitions, build_sensor_context, instance_for_test
    from dotflow import action

    from dotflow_dagster import DotflowResource, DotflowWorkflow
    from dotflow_dagster.assets import dotflow_asset
    from dotflow_dagster.sensor import payload_change_sensor
    from dotflow_dagster.sensor_state import RequestedRun, SensorState

    logging.getLogger("dagster").setLevel(logging.WARNING)

    @action
    def step(initial_context):
        return initial_context.storage

    rows: list[Row] = []
    with instance_for_test() as instance:
        for count, inbox in inboxes.items():
            started = time.perf_counter()
            workflows = [DotflowWorkflow(f"wf-{index:05d}", steps=[step]) for index in range(count)]
            source = DirectorySource(inbox)
            sensor_def = payload_change_sensor(workflows, source=source, name=f"bench_{count}")
            resource = DotflowResource(base_dir=str(base / f"store-{count}"))
            definitions = Definitions(
                assets=[dotflow_asset(workflow) for workflow in workflows],
                sensors=[sensor_def],
                resources={"dotflow": resource},
            )
            repository = definitions.get_repository_def()
            setup_s = time.perf_counter() - started

            # The state earlier ticks would have left: every file handled, its payload requested,
            # every run finished (nothing pending). The sensor keeps it in the store.
            items = list(source.scan(known={}, max_payload_bytes=LIMIT).items)
            by_id = {workflow.workflow_id: workflow for workflow in workflows}
            settled = SensorState(
                versions={item.location: item.version for item in items},
                requested={
                    item.workflow_id: RequestedRun(
                        fingerprint=by_id[item.workflow_id].fingerprint(item.payload), decisions=0, issued=1
                    )
                    for item in items
                },
            )
            store = resource.get_store()
            state_key = f"sensors/{sensor_def.name}/state.json"

            def seed(state: Any, store: Any = store, state_key: str = state_key) -> None:
                store.write_bytes(state_key, state.to_bytes())

            def tick(sensor_def: Any = sensor_def, resource: Any = resource, repository: Any = repository) -> Any:
                with build_sensor_context(
                    instance=instance, resources={"dotflow": resource}, cursor=None, repository_def=repository
                ) as context:
                    return sensor_def.evaluate_tick(context)

            def check(label: str, result: Any, count: int = count) -> None:
                if result.run_requests or not (result.cursor or "").startswith(f"{count} locations"):
                    failures.append(f"{label}: {len(result.run_requests)} run requests, cursor {result.cursor!r}")

            seed(settled)
            with OpenCounter(under=inbox) as opens:
                best, median = timings_ms(tick, repeats)
                result = tick()
            check(f"tick over {count} unchanged files", result)
            if opens.count:
                failures.append(f"tick over {count} unchanged files opened {opens.count} payload files")
            note = (
                f"{median / floors[count][1]:.2f}x the floor (median), {opens.count} payload opens; "
                f"setup {setup_s:.1f} s"
            )
            rows.append((f"(t) sensor tick, {count:,} unchanged", best, median, note))
            if count != COUNTS[-1]:
                continue

            touched = [item.location for item in items[:: count // CHANGED]]
            stamp = [time.time_ns()]

            def touch(touched: list[str] = touched, stamp: list[int] = stamp) -> None:
                stamp[0] += 1_000_000_000
                for location in touched:
                    os.utime(location, ns=(stamp[0], stamp[0]))

            with OpenCounter(under=inbox) as opens:
                best, median = timings_ms(tick, repeats, before=touch)
            check(f"tick with {CHANGED} touched of {count}", tick())
            runs = repeats + 1
            note = (
                f"{median / floors[count][1]:.2f}x the floor (median), {opens.count // runs} payload opens per tick; "
                "read, fingerprinted, already requested: no run"
            )
            rows.append((f"(u) sensor tick, {CHANGED} touched of {count:,}", best, median, note))

            pending = SensorState(
                versions=settled.versions,
                requested=settled.requested,
                pending={item.workflow_id for item in items[:: count // CHANGED]},
            )
            seed(pending)
            best, median = timings_ms(tick, pending_repeats)
            check(f"tick with {CHANGED} pending of {count}", tick())
            note = f"{(median - rows[-2][2]) / CHANGED:.1f} ms per pending workflow (median over (t)), {pending_repeats} runs"
            rows.append((f"(p) sensor tick, {count:,} unchanged, {CHANGED} pending", best, median, note))

            changed_round = [0]

            def change(
                touched: list[str] = touched, stamp: list[int] = stamp, changed_round: list[int] = changed_round
            ) -> None:
                changed_round[0] += 1
                stamp[0] += 1_000_000_000
                for location in touched:
                    Path(location).write_bytes(orjson.dumps({"changed": changed_round[0]}))
                    os.utime(location, ns=(stamp[0], stamp[0]))

            # Called directly (as the tests do), on a definition outside any repository: resolving
            # run requests against the repository's partitions needs the daemon's own context.
            unbound = payload_change_sensor(workflows, source=source, name=sensor_def.name)

            def tick_requesting(sensor_def: Any = unbound, resource: Any = resource) -> Any:
                with build_sensor_context(instance=instance, resources={"dotflow": resource}) as context:
                    return sensor_def(context)

            seed(settled)
            best, median = timings_ms(tick_requesting, repeats, before=change)
            requested = len(tick_requesting().run_requests) if change() is None else 0
            if requested != CHANGED:
                failures.append(f"tick with {CHANGED} changed of {count} requested {requested} runs")
            note = (
                f"{median / floors[count][1]:.2f}x the floor (median); {CHANGED} payloads stored, "
                f"{CHANGED} runs requested per tick, their workflows then pending"
            )
            rows.append((f"(v) sensor tick, {CHANGED} changed of {count:,}", best, median, note))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--pending-repeats", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="where to create the inboxes")
    parser.add_argument("--source-only", action="store_true", help="skip the sensor tick rows")
    args = parser.parse_args()
    repeats = args.repeats
    base = Path(tempfile.mkdtemp(prefix="dotflow-bench-sensor-", dir=args.dir))
    failures: list[str] = []
    try:
        print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, {base}")
        print(f"best and median of {repeats} runs each after one warm-up (time.perf_counter); page cache warm\n")
        inboxes = {count: make_inbox(base, count) for count in COUNTS}
        floors = {count: timings_ms(bare_listing(str(inbox)), repeats) for count, inbox in inboxes.items()}
        print(table(source_rows(inboxes, floors, repeats, failures)))
        if not args.source_only:
            print("\nsensor tick: build_sensor_context + evaluate_tick, one workflow per file, instance_for_test()")
            print(table(sensor_rows(base, inboxes, floors, repeats, args.pending_repeats, failures)))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for failure in failures:
        print(f"ERROR: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
