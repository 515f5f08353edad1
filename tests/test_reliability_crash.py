"""The crash matrix: a run worker killed with SIGKILL at every step boundary and inside every step.

The real parts: ``dagster-daemon`` (sensor, run queue, run retries, run monitoring) on a
PostgreSQL instance whose ``dagster.yaml`` is ``deploy/dagster.yaml`` plus run monitoring
(``tests/support/reliability_daemon.py``), two code locations with the in-process executor (a
LocalStore and an S3Store on moto's server over HTTP), and payloads dropped into their inboxes.
All 14 cells (7 kill points x 2 stores, one workflow_id each) are launched at once by the
sensors; each run worker kills itself on its first attempt only (``reliability_steps``).

For every cell: the killed run fails (the code server reports its worker killed by signal 9),
the daemon's retry succeeds, every step's side effect happened once, except the step killed
after its side effect, which happened twice, and the materialized output equals a clean run's.
The measured matrix is the one ``docs/reliability.md`` publishes.
"""

import json
import os
import pickle
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dotflow_dagster import LocalStore
from dotflow_dagster.stores import S3Store
from tests.moto_server import CREDENTIALS
from tests.support.reliability_crash_defs import S3_LEASE_SECONDS, STORE_KINDS, cell_id, crash_workflows, inbox_for
from tests.support.reliability_daemon import FINISHED, Deployment, Location, run_group
from tests.support.reliability_fixtures import (  # noqa: F401 - the fixtures moto and postgres_url
    moto_fixture,
    postgres_url_fixture,
)
from tests.support.reliability_steps import KILL_POINTS, read_journal
from tests.support.reliability_tables import RELIABILITY_DOC, markdown_table, published_table, write_measured

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

STEPS = ("extract", "transform", "load")
STORE_NAMES = {"local": "LocalStore", "s3": "S3Store (moto)"}
KILL_POINT_NAMES = {
    "before-1": "before step 1",
    "in-1": "inside step 1",
    "between-1-2": "between steps 1 and 2",
    "in-2": "inside step 2",
    "between-2-3": "between steps 2 and 3",
    "in-3": "inside step 3",
    "after-3": "after step 3, before the outcome is recorded",
}
CELLS = [(store_kind, point) for store_kind in STORE_KINDS for point in KILL_POINTS]


@dataclass
class MeasuredCell:
    store_kind: str
    point: str
    workflow_id: str
    fingerprint: str
    statuses: list[str]
    retry_tags: list[dict[str, str]]
    root_engine_messages: list[str]
    kills: list[dict]
    executions: Counter
    retry_executed: list[str]
    output: Any
    clean_output: Any
    ledger_entries: list
    final_run_id: str
    checkpoints: list[str]
    recovery_seconds: float


@dataclass
class CrashMatrix:
    cells: dict[tuple[str, str], MeasuredCell]
    table: str
    table_file: Path
    wall_seconds: float


def _payload(workflow_id: str, point: str, value: int) -> dict:
    return {"cell": workflow_id, "kill": point, "v": value}


def _drop(inbox: Path, workflow_id: str, payload: dict) -> None:
    inbox.mkdir(parents=True, exist_ok=True)
    temporary = inbox / f".{workflow_id}.json.tmp"
    temporary.write_text(json.dumps(payload))
    os.replace(temporary, inbox / f"{workflow_id}.json")


def _output(home: Path, workflow_id: str, fingerprint: str) -> Any:
    """What the run materialized: the default IO manager's pickle under ``$DAGSTER_HOME/storage``."""
    path = home / "storage" / workflow_id.replace("-", "_") / fingerprint
    return pickle.loads(path.read_bytes()) if path.exists() else None


def _settled(deployment: Deployment, workflow_ids: list[str]) -> bool:
    records = deployment.records()
    by_workflow: dict[str, list] = {}
    for record in records:
        by_workflow.setdefault(record.dagster_run.tags.get("dotflow/workflow_id"), []).append(record)
    for workflow_id in workflow_ids:
        runs = by_workflow.get(workflow_id, [])
        if not runs or any(run.dagster_run.status.value not in FINISHED for run in runs):
            return False
        if not any(run.dagster_run.status.value == "SUCCESS" for run in runs):
            # Not done unless the retries are used up.
            if len(runs) <= 2:
                return False
    return True


@pytest.fixture(scope="module")
def crash_matrix(tmp_path_factory, postgres_url, moto) -> CrashMatrix:
    assert "DOTFLOW_RELIABILITY_DIR" not in os.environ  # the clean runs below must not kill this process
    started = time.monotonic()
    root = tmp_path_factory.mktemp("crash")
    bucket = moto.new_bucket()
    deployment = Deployment(
        root=root,
        postgres_url=postgres_url,
        locations=[
            Location(module="tests.support.reliability_crash_defs", attribute=f"{kind}_defs", name=f"crash-{kind}")
            for kind in STORE_KINDS
        ],
        env={
            **moto.env(),
            "AWS_REGION": CREDENTIALS["AWS_DEFAULT_REGION"],
            "DOTFLOW_RELIABILITY_DIR": str(root),
            "DOTFLOW_RELIABILITY_BUCKET": bucket,
        },
    )
    workflows = {workflow.workflow_id: workflow for kind in STORE_KINDS for workflow in crash_workflows(kind)}
    payloads = {}
    for value, (kind, point) in enumerate(CELLS, start=2):
        workflow_id = cell_id(kind, point)
        payloads[workflow_id] = _payload(workflow_id, point, value)
        _drop(inbox_for(root, kind), workflow_id, payloads[workflow_id])

    with deployment.running() as d:
        d.wait_until(lambda: _settled(d, list(payloads)), what="every cell's runs finished", timeout=240, poll=1)
        records = d.records()
        engine = {}
        for record in records:
            if "dagster/root_run_id" not in record.dagster_run.tags:
                engine[record.dagster_run.run_id] = d.engine_messages(record.dagster_run.run_id)
    journal = read_journal(root)
    stores = {
        "local": LocalStore(root / "store"),
        "s3": S3Store(bucket, "dotflow/", s3=moto.client(), lease_seconds=S3_LEASE_SECONDS),
    }

    cells = {}
    for kind, point in CELLS:
        workflow_id = cell_id(kind, point)
        workflow = workflows[workflow_id]
        payload = payloads[workflow_id]
        fingerprint = workflow.fingerprint(payload)
        mine = [r for r in records if r.dagster_run.tags.get("dotflow/workflow_id") == workflow_id]
        roots = [r for r in mine if "dagster/root_run_id" not in r.dagster_run.tags]
        assert len(roots) == 1, (workflow_id, [r.dagster_run.tags for r in mine])
        group = run_group(mine, roots[0].dagster_run.run_id)
        assert len(group) == len(mine), (workflow_id, "a run outside the retry group")
        lines = [line for line in journal if line["cell"] == workflow_id]
        kills = [line for line in lines if line["event"] == "kill"]
        killed_pids = {line["pid"] for line in kills}
        effects = [line for line in lines if line["event"] == "effect"]
        store = stores[kind]
        ledger = workflow.ledger(store=store)
        clean = workflow.run(payload, store=LocalStore(root / "clean" / workflow_id))
        assert clean.ok, clean.error
        cells[(kind, point)] = MeasuredCell(
            store_kind=kind,
            point=point,
            workflow_id=workflow_id,
            fingerprint=fingerprint,
            statuses=[r.dagster_run.status.value for r in group],
            retry_tags=[dict(r.dagster_run.tags) for r in group[1:]],
            root_engine_messages=engine.get(group[0].dagster_run.run_id, []),
            kills=kills,
            executions=Counter(line["step"] for line in effects),
            retry_executed=[line["step"] for line in effects if line["pid"] not in killed_pids],
            output=_output(deployment.home, workflow_id, fingerprint),
            clean_output=clean.result,
            ledger_entries=[e for e in workflow.state(store=store).history if e.fingerprint == fingerprint],
            final_run_id=group[-1].dagster_run.run_id,
            checkpoints=store.list_keys(ledger.checkpoint_prefix(fingerprint)),
            recovery_seconds=(group[-1].end_time or 0) - (group[0].start_time or 0),
        )

    rows = []
    for (kind, point), cell in cells.items():
        outcome = cell.statuses[-1].lower()
        if cell.output is not None and cell.output == cell.clean_output:
            outcome += ", output = clean run's"
        rows.append(
            [
                KILL_POINT_NAMES[point],
                STORE_NAMES[kind],
                len(cell.statuses) - 1,
                *(cell.executions[step] for step in STEPS),
                ", ".join(cell.retry_executed) or "nothing",
                outcome,
            ]
        )
    table = markdown_table(
        ["kill -9 of the run worker", "store", "retries", *(f"{step} ran" for step in STEPS), "the retry ran", "outcome"],
        rows,
    )
    table_file = write_measured(root, name="crash-matrix", table=table)
    wall = time.monotonic() - started
    print(f"\nmeasured crash matrix ({wall:.0f} s, in {table_file}):\n{table}")
    for (kind, point), cell in cells.items():
        print(f"  {kind:5} {point:12} killed run start -> retry success: {cell.recovery_seconds:.1f} s")
    return CrashMatrix(cells=cells, table=table, table_file=table_file, wall_seconds=wall)


def _expected_executions(point: str) -> dict[str, int]:
    interrupted = {"in-1": "extract", "in-2": "transform", "in-3": "load"}.get(point)
    return {step: 2 if step == interrupted else 1 for step in STEPS}


def _expected_retry_steps(point: str) -> list[str]:
    """The steps a retry must execute: from the first step without a checkpoint on."""
    first_missing = {
        "before-1": 0, "in-1": 0, "between-1-2": 1, "in-2": 1, "between-2-3": 2, "in-3": 2, "after-3": 3,
    }[point]
    return list(STEPS[first_missing:])


@pytest.mark.parametrize(("store_kind", "point"), CELLS, ids=[f"{kind}-{point}" for kind, point in CELLS])
def test_a_killed_run_worker_is_retried_and_the_retry_resumes(crash_matrix, store_kind, point):
    cell = crash_matrix.cells[(store_kind, point)]
    # Killed exactly where the cell says, once, and the worker's death was noticed as such.
    assert [(line["point"]) for line in cell.kills] == [point], cell.kills
    assert any("terminated by signal 9 (SIGKILL)" in message for message in cell.root_engine_messages), (
        cell.root_engine_messages
    )
    # The killed run failed; the daemon's first retry succeeded.
    assert cell.statuses == ["FAILURE", "SUCCESS"], cell.statuses
    [retry] = cell.retry_tags
    assert retry["dagster/retry_number"] == "1"
    assert retry["dagster/max_retries"] == "2"  # the sensor's run_tags, carried over to the retry
    assert retry["dotflow/fingerprint"] == cell.fingerprint
    # Each side effect once per completed execution; the step killed after its side effect twice.
    assert dict(cell.executions) == _expected_executions(point)
    assert cell.retry_executed == _expected_retry_steps(point)
    # The result is a clean run's, and the store and the ledger say it completed.
    assert cell.output == cell.clean_output, (cell.output, cell.clean_output)
    assert len(cell.checkpoints) == 3
    [entry] = cell.ledger_entries
    assert (entry.decision, entry.outcome) == ("new", "succeeded")
    assert entry.run_id == cell.final_run_id and entry.runs == 2  # the killed run and its retry


def test_the_published_crash_matrix_is_the_measured_one(crash_matrix):
    published = published_table(RELIABILITY_DOC.read_text(), name="crash-matrix") if RELIABILITY_DOC.exists() else None
    assert published == crash_matrix.table, (
        f"{RELIABILITY_DOC} must publish the measured crash matrix between <!-- measured: crash-matrix --> "
        f"markers; measured (also in {crash_matrix.table_file}):\n{crash_matrix.table}"
    )
