"""What the S3 path costs: S3Store against LocalStore per run, S3 requests per run, an S3Source tick.

Run from the repository root (starts its own local moto S3 server; needs ``moto[server]``):

    .venv/bin/python bench/s3.py [--runs N] [--objects N] [--repeats N]

In one run, against that server over HTTP on the loopback interface:

(a) the median per-run time of ``DotflowWorkflow.run`` on a 3-step trivial workflow with an
    ``S3Store`` and with a ``LocalStore``, for a new input (3 steps executed) and for the same
    input again (3 steps resumed), and their ratios;
(b) the S3 requests each of those runs sends, by operation (counted with a botocore
    ``provide-client-params.s3.*`` hook, so retries would not count twice): what S3 bills per
    request, and what its latency (tens of ms per request on AWS, well under one here) multiplies;
(c) an ``S3Source`` scan of ``--objects`` unchanged ``<workflow_id>.json`` objects, its items
    consumed, against a bare paginated ``list_objects_v2`` of the same prefix (the floor), and
    the requests of each.

A local endpoint is not S3: the times show the client-side cost and the request counts, not
AWS's latency. The script exits non-zero only on a wrong result (a step executed on a resumed
run, an unchanged object read, keys missing from a listing), never because of a timing.
"""

import argparse
import concurrent.futures
import logging
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Runnable from a checkout without an install: the package (and tests.moto_server) live one directory up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


from dotflow_dagster import DotflowWorkflow, LocalStore, S3Store  # noqa: E402
from dotflow_dagster.sources import ArrivedPayload, S3Source  # noqa: E402
from tests.moto_server import MotoServer  # noqa: E402

# The same three trivial steps and payloads as bench/overhead.py, so the figures compare.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import load, parse, payload, transform  # noqa: E402

LIMIT = 10 * 2**20


class RequestCounter:
    """Counts the S3 API calls a boto3 client makes, by operation and conditions, while ``active``.

    ``provide-client-params`` fires once per API call with its parameters (``Range``,
    ``IfMatch``...), before retries: one count is one request as the store asked for it.
    """

    def __init__(self, client: Any) -> None:
        self.counts: Counter[str] = Counter()
        self.active = False
        client.meta.events.register("provide-client-params.s3.*", self._seen)

    def _seen(self, params: dict, model: Any, **_: Any) -> None:
        if not self.active:
            return
        name = model.name
        extras = [
            label
            for key, label in (("Range", "Range"), ("IfMatch", "If-Match"), ("IfNoneMatch", "If-None-Match"))
            if key in params
        ]
        self.counts[f"{name} ({', '.join(extras)})" if extras else name] += 1

    def measure(self, function: Callable[[], Any]) -> tuple[Any, Counter[str]]:
        self.counts = Counter()
        self.active = True
        try:
            result = function()
        finally:
            self.active = False
        return result, self.counts


def median_ms(function: Callable[[int], None], runs: int) -> float:
    samples = []
    for index in range(runs):
        started = time.perf_counter()
        function(index)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def check(condition: bool, message: str, errors: list[str]) -> None:
    if not condition:
        errors.append(message)


def runs_section(
    server: MotoServer, runs: int, errors: list[str]
) -> tuple[list[tuple[str, float, str]], dict[str, Counter[str]]]:
    """(a) and (b): per-run times and requests, S3Store against LocalStore."""
    client = server.client()
    counter = RequestCounter(client)
    workflow = DotflowWorkflow("bench-s3", steps=[parse, transform, load])
    rows: list[tuple[str, float, str]] = []
    requests: dict[str, Counter[str]] = {}
    with tempfile.TemporaryDirectory() as directory:
        stores: dict[str, Any] = {
            "LocalStore": LocalStore(f"{directory}/local"),
            "S3Store": S3Store(server.new_bucket(), "dotflow/", s3=client),
        }
        times: dict[tuple[str, str], float] = {}
        for name, store in stores.items():

            def new_input(index: int, store: Any = store, name: str = name) -> None:
                report = workflow.run(payload(1_000_000 + index), store=store)
                check(
                    report.ok and report.executed == ["parse", "transform", "load"],
                    f"{name}: new input not run",
                    errors,
                )

            def same_input(index: int, store: Any = store, name: str = name) -> None:
                report = workflow.run(payload(0), store=store)
                check(report.ok and report.executed == [], f"{name}: resumed run executed {report.executed}", errors)

            new_input(-1)  # warm-up: connection pool, first bucket writes
            times[name, "new"] = median_ms(new_input, runs)
            workflow.run(payload(0), store=store)  # make payload 0 current and complete
            times[name, "same"] = median_ms(same_input, runs)
            if name == "S3Store":
                # Counted on separate runs, so the hook costs nothing in the timed ones.
                _, requests["new"] = counter.measure(lambda store=store: new_input(10**7, store))
                workflow.run(payload(0), store=store)  # current and complete again (a reset)
                _, requests["same"] = counter.measure(lambda store=store: same_input(0, store))
        for case, label in (("new", "new input (3 steps executed)"), ("same", "same input (3 steps resumed)")):
            local, s3 = times["LocalStore", case], times["S3Store", case]
            rows.append((f"LocalStore, {label}", local, ""))
            rows.append(
                (f"S3Store, {label}", s3, f"{s3 / local:.2f}x LocalStore; {sum(requests[case].values())} S3 requests")
            )
    return rows, requests


def source_section(
    server: MotoServer, objects: int, repeats: int, errors: list[str]
) -> tuple[list[tuple[str, float, str]], dict[str, Counter[str]]]:
    """(c): an S3Source scan of unchanged objects against a bare paginated listing."""
    client = server.client(max_pool_connections=16)
    bucket = server.new_bucket()
    prefix = "inbox/"
    keys = [f"{prefix}wf-{index:05d}.json" for index in range(objects)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=bucket, Key=key, Body=b'{"v": 1}'), keys))

    source = S3Source(bucket, prefix, s3=client)
    first = source.scan(known={}, max_payload_bytes=LIMIT)
    arrived = [item for item in first.items if isinstance(item, ArrivedPayload)]
    check(len(arrived) == objects, f"first scan read {len(arrived)} of {objects} objects", errors)
    known = {item.location: item.version for item in arrived}

    def floor(_: int) -> list[str]:
        listed = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
            listed.extend(entry["Key"] for entry in page.get("Contents", ()))
        return listed

    def tick(_: int) -> tuple[frozenset | None, list]:
        scan = source.scan(known=known, max_payload_bytes=LIMIT)
        return scan.present, list(scan.items)

    floor_ms = median_ms(floor, repeats)
    tick_ms = median_ms(tick, repeats)
    counter = RequestCounter(client)
    listed, floor_requests = counter.measure(lambda: floor(0))
    (present, items), tick_requests = counter.measure(lambda: tick(0))
    check(sorted(listed) == keys, "the floor listing missed keys", errors)
    check(present is not None and len(present) == objects, "the scan did not list every object", errors)
    check(items == [], f"an unchanged scan yielded {len(items)} items", errors)
    check(
        sum(n for operation, n in tick_requests.items() if operation.startswith("GetObject")) == 0,
        "an unchanged object was downloaded",
        errors,
    )
    count = f"{objects:,}"
    rows = [
        (f"floor: list_objects_v2 pages, {count} keys", floor_ms, f"{sum(floor_requests.values())} requests"),
        (
            f"S3Source.scan, {count} unchanged",
            tick_ms,
            f"{tick_ms / floor_ms:.2f}x the floor; {sum(tick_requests.values())} requests, 0 downloads",
        ),
    ]
    return rows, {"floor": floor_requests, "S3Source tick": tick_requests}


def print_table(title: str, rows: list[tuple[str, float, str]]) -> None:
    print(title)
    print(f"{'case':<52}{'median ms':>10}  note")
    print(f"{'-' * 50:<52}{'-' * 10:>10}  ----")
    for name, value, note in rows:
        print(f"{name:<52}{value:>10.2f}  {note}")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="runs per store and case (median)")
    parser.add_argument("--objects", type=int, default=1000, help="objects in the S3Source inbox")
    parser.add_argument("--repeats", type=int, default=20, help="scans and listings (median)")
    arguments = parser.parse_args()
    logging.getLogger().setLevel(logging.WARNING)
    errors: list[str] = []
    server = MotoServer()
    try:
        import moto

        print(
            f"python {platform.python_version()}, moto {moto.__version__} server on {server.endpoint} (local, not S3)"
        )
        print(f"3 trivial steps; median of {arguments.runs} runs each; time.perf_counter\n")
        rows, requests = runs_section(server, arguments.runs, errors)
        print_table("(a) per run: S3Store against LocalStore", rows)
        print("(b) S3 requests per run, by operation")
        for case, counts in requests.items():
            print(f"  {case} input: {sum(counts.values())} requests")
            for operation, number in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
                print(f"    {number:>3}  {operation}")
        print()
        rows, requests = source_section(server, arguments.objects, arguments.repeats, errors)
        print_table(f"(c) S3Source tick over unchanged objects, median of {arguments.repeats}", rows)
        for case, counts in requests.items():
            print(f"  {case}: " + ", ".join(f"{number} {operation}" for operation, number in sorted(counts.items())))
    finally:
        server.stop()
    for error in errors:
        print(f"WRONG RESULT: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
