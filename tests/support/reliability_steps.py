"""Three instrumented steps for the reliability scenarios, and the journal they leave behind.

Every execution of a step appends JSON lines to ``$DOTFLOW_RELIABILITY_DIR/journal.jsonl``,
outside the store: ``effect`` as the step starts its work (the side effect whose repetitions
the scenarios count), ``end`` just before it returns. Each line names the cell (the payload's
``cell``, its workflow_id), the step, the run worker's pid, the time, the payload value the
step saw and the value its predecessor returned, so a test can tell which input every
execution worked on and whether a run overlapped another.

A payload's ``kill`` asks for the run worker to be killed with SIGKILL at one point, on the
first attempt only (a marker file per cell remembers the attempt):

- ``before-1``, ``between-1-2``, ``between-2-3``: as step 1, 2 or 3 starts, before its side
  effect (the step before it has its checkpoint);
- ``in-1``, ``in-2``, ``in-3``: inside that step, after its side effect, before it returns;
- ``after-3``: once step 3's checkpoint is written, before the run records its outcome (done by
  ``reliability_crash_defs``'s store, the only code that sees that moment).

A test holds one run of a cell in one step with ``request_hold``: the first step of that name
to start afterwards claims the request, touches ``<dir>/holding/<cell>`` and waits, before its
side effect, until ``release`` (the storage outage scenario stops the store's endpoint
meanwhile; the race storm queues other deliveries behind the held run).

Without ``$DOTFLOW_RELIABILITY_DIR`` (a clean run in the test process) the steps only compute.

Example:
    >>> from dotflow_dagster import DotflowWorkflow, LocalStore
    >>> import tempfile
    >>> workflow = DotflowWorkflow("doc-example", steps=[extract, transform, load])
    >>> report = workflow.run({"cell": "doc-example", "v": 2}, store=LocalStore(tempfile.mkdtemp()))
    >>> report.result
    {'source': 2, 'total': 12, 'loaded': 'doc-example v=2 total=12'}
"""

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

from dotflow import action

__all__ = [
    "JOURNAL_NAME",
    "KILL_POINTS",
    "Execution",
    "extract",
    "holding",
    "kill_once",
    "load",
    "read_journal",
    "release",
    "request_hold",
    "transform",
]

JOURNAL_NAME = "journal.jsonl"
# Where a run worker can be killed, in the order a run passes them.
KILL_POINTS = ("before-1", "in-1", "between-1-2", "in-2", "between-2-3", "in-3", "after-3")
_ENTRY_KILLS = {1: "before-1", 2: "between-1-2", 3: "between-2-3"}


def _directory() -> Path | None:
    named = os.environ.get("DOTFLOW_RELIABILITY_DIR")
    return Path(named) if named else None


def _journal(**entry: Any) -> None:
    directory = _directory()
    if directory is None:
        return
    line = json.dumps({"pid": os.getpid(), "t": time.time(), **entry}, sort_keys=True) + "\n"
    # One short O_APPEND write per line: concurrent run workers never interleave inside a line.
    descriptor = os.open(directory / JOURNAL_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)


def kill_once(*, cell: str, point: str) -> None:
    """SIGKILL this process at ``point`` if ``cell`` has not been killed yet (first attempt only)."""
    directory = _directory()
    if directory is None:
        return
    markers = directory / "killed"
    markers.mkdir(exist_ok=True)
    try:
        os.close(os.open(markers / cell, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return
    _journal(cell=cell, event="kill", point=point)
    os.kill(os.getpid(), signal.SIGKILL)


def request_hold(directory: Path, *, cell: str, step: str) -> None:
    """Ask the next execution of ``step`` in ``cell`` to wait (before its side effect) until ``release``."""
    requests = directory / "hold-requests"
    requests.mkdir(exist_ok=True)
    (requests / f"{cell}.{step}").touch()


def holding(directory: Path, *, cell: str) -> bool:
    """Whether a step of ``cell`` claimed a hold and waits."""
    return (directory / "holding" / cell).exists()


def release(directory: Path, *, cell: str) -> None:
    """Let the held step of ``cell`` go on."""
    (directory / "release").mkdir(exist_ok=True)
    (directory / "release" / cell).touch()


def _hold(cell: str, step: str) -> None:
    directory = _directory()
    if directory is None:
        return
    (directory / "holding").mkdir(exist_ok=True)
    try:
        # The rename is the claim: of two workers starting the step, exactly one holds.
        os.rename(directory / "hold-requests" / f"{cell}.{step}", directory / "holding" / cell)
    except FileNotFoundError:
        return
    released = directory / "release" / cell
    deadline = time.monotonic() + 120
    while not released.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"cell {cell}: {released} did not appear within 120 s")
        time.sleep(0.05)


def _step(position: int, name: str, payload: dict, previous: Any) -> float:
    cell = payload["cell"]
    if payload.get("kill") == _ENTRY_KILLS[position]:
        kill_once(cell=cell, point=payload["kill"])
    _hold(cell, name)
    started = time.time()
    seen = previous.get("source") if isinstance(previous, dict) else None
    _journal(cell=cell, step=name, event="effect", v=payload["v"], seen=seen)
    if payload.get("kill") == f"in-{position}":
        kill_once(cell=cell, point=payload["kill"])
    delay = float(payload.get("delay", 0))
    if delay:
        time.sleep(delay)
    return started


def _end(name: str, payload: dict, previous: Any, started: float) -> None:
    seen = previous.get("source") if isinstance(previous, dict) else None
    _journal(cell=payload["cell"], step=name, event="end", v=payload["v"], seen=seen, started=started)


@action
def extract(initial_context):
    payload = initial_context.storage
    started = _step(1, "extract", payload, None)
    rows = [payload["v"] * index for index in range(1, 4)]
    _end("extract", payload, None, started)
    return {"source": payload["v"], "rows": rows}


@action
def transform(initial_context, previous_context):
    payload, previous = initial_context.storage, previous_context.storage
    started = _step(2, "transform", payload, previous)
    result = {"source": previous["source"], "total": sum(previous["rows"])}
    _end("transform", payload, previous, started)
    return result


@action
def load(initial_context, previous_context):
    payload, previous = initial_context.storage, previous_context.storage
    started = _step(3, "load", payload, previous)
    result = {
        "source": previous["source"],
        "total": previous["total"],
        "loaded": f"{payload['cell']} v={previous['source']} total={previous['total']}",
    }
    _end("load", payload, previous, started)
    return result


class Execution(dict):
    """One journal line (a ``dict``): ``cell``, ``event``, ``step``, ``pid``, ``t``, ``v``, ``seen``."""


def read_journal(directory: Path) -> list[Execution]:
    """Every journal line written under ``directory`` so far, in the order written."""
    path = directory / JOURNAL_NAME
    if not path.exists():
        return []
    return [Execution(json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
