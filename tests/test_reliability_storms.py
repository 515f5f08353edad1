"""Storms of deliveries through the real sensor, run queue and daemon, on S3 and SQS (moto over HTTP).

- **Duplicate storm**: one payload delivered 100 times as identical SQS messages (``SQSSource``)
  and 100 times as rewrites of one inbox file (``DirectorySource``), spread over several sensor
  ticks, gives exactly one run per workflow, and every message is deleted.
- **Race storm**: 50 deliveries alternating between two payloads A and B for one workflow_id,
  in bursts that end on alternate payloads, so the sensor sees the input change at every tick
  while earlier runs still queue or run (one run is held mid-way so that others queue behind
  it). The runs never overlap, no step sees another input's data, every run decides by the
  policy (``new``, then ``reset`` on each change) and the ledger's history names every run.
  The last delivery becomes the input, though it equals the input that was running while
  another waited in the queue.

One PostgreSQL, one moto server and one daemon serve both (``tests/support/reliability_daemon.py``,
``tests/support/reliability_storm_defs.py``).
"""

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest

from dotflow_dagster.stores import S3Store
from tests.moto_server import CREDENTIALS
from tests.support.reliability_daemon import FINISHED, Deployment, Location
from tests.support.reliability_fixtures import (  # noqa: F401 - the fixtures moto and postgres_url
    moto_fixture,
    postgres_url_fixture,
)
from tests.support.reliability_steps import holding, read_journal, release, request_hold
from tests.support.reliability_storm_defs import INBOX_SENSOR, QUEUE_SENSOR, WORKFLOWS
from tests.support.reliability_tables import RELIABILITY_DOC, markdown_table, published_table, write_measured

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

STEPS = ["extract", "transform", "load"]


@dataclass
class Storms:
    deployment: Deployment
    root: Path
    sqs: object
    queue_url: str
    store: S3Store
    rows: dict[str, list]


@pytest.fixture(scope="module")
def storms(tmp_path_factory, postgres_url, moto) -> Iterator[Storms]:
    root = tmp_path_factory.mktemp("storms")
    (root / "inbox").mkdir()
    bucket = moto.new_bucket()
    sqs = boto3.client(
        "sqs",
        endpoint_url=moto.endpoint,
        region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    queue_url = sqs.create_queue(QueueName="storm-payloads")["QueueUrl"]
    deployment = Deployment(
        root=root,
        postgres_url=postgres_url,
        locations=[Location(module="tests.support.reliability_storm_defs", attribute="defs", name="storms")],
        env={
            **moto.env(),
            "AWS_ENDPOINT_URL_SQS": moto.endpoint,
            "AWS_REGION": CREDENTIALS["AWS_DEFAULT_REGION"],
            "DOTFLOW_RELIABILITY_DIR": str(root),
            "DOTFLOW_RELIABILITY_BUCKET": bucket,
            "DOTFLOW_RELIABILITY_QUEUE_URL": queue_url,
        },
    )
    store = S3Store(bucket, "dotflow/", s3=moto.client())
    with deployment.running() as running:
        # Both sensors ticking before the storms start: the first tick then sees the first delivery.
        running.tick_after(QUEUE_SENSOR, 0, timeout=120)
        running.tick_after(INBOX_SENSOR, 0, timeout=120)
        storms = Storms(deployment=running, root=root, sqs=sqs, queue_url=queue_url, store=store, rows={})
        yield storms
    for name, table in zip(("duplicate-storm", "race-storm"), _storm_tables(storms.rows), strict=True):
        print(f"\nmeasured {name} (in {write_measured(root, name=name, table=table)}):\n{table}")


def _deliver(inbox: Path, workflow_id: str, payload: dict, *, reorder: bool = False) -> None:
    temporary = inbox / f".{workflow_id}.json.tmp"
    items = list(payload.items())
    temporary.write_text(json.dumps(dict(reversed(items) if reorder else items)))
    os.replace(temporary, inbox / f"{workflow_id}.json")


def _all_finished(storms: Storms, workflow_id: str) -> list | None:
    records = storms.deployment.records(**{"dotflow/workflow_id": workflow_id})
    return records if records and all(r.dagster_run.status.value in FINISHED for r in records) else None


def _ticks_between(storms: Storms, sensor: str, start: float, end: float) -> list:
    return [tick for tick in storms.deployment.ticks(sensor) if start <= tick.timestamp <= end]


def test_a_duplicate_storm_gives_exactly_one_run(storms):
    d, inbox = storms.deployment, storms.root / "inbox"
    queued = {"cell": "storm-dup-sqs", "v": 7}
    dropped = {"cell": "storm-dup-inbox", "v": 8}
    body = json.dumps({"workflow_id": "storm-dup-sqs", "payload": queued})
    started = time.time()
    # 100 identical messages and 100 identical rewrites, in five bursts: each burst starts once
    # a tick of the queue's sensor began after the burst before, so every tick sees duplicates,
    # before and after the one run has decided.
    for burst in range(5):
        for _ in range(2):
            response = storms.sqs.send_message_batch(
                QueueUrl=storms.queue_url, Entries=[{"Id": str(n), "MessageBody": body} for n in range(10)]
            )
            assert len(response.get("Successful", [])) == 10, response
        for n in range(20):
            _deliver(inbox, "storm-dup-inbox", dropped, reorder=(burst + n) % 2 == 1)
            time.sleep(0.01)
        d.tick_after(QUEUE_SENSOR, time.time())

    def queue_drained() -> bool:
        attributes = storms.sqs.get_queue_attributes(QueueUrl=storms.queue_url, AttributeNames=["All"])["Attributes"]
        return attributes["ApproximateNumberOfMessages"] == "0" and attributes["ApproximateNumberOfMessagesNotVisible"] == "0"

    d.wait_until(queue_drained, what="the queue was not drained (a duplicate left undeleted)", timeout=90)
    # Ticks that started after every delivery was handled: anything they request is requested by now.
    settled = time.time()
    d.tick_after(QUEUE_SENSOR, settled)
    d.tick_after(INBOX_SENSOR, settled)
    for workflow_id in ("storm-dup-sqs", "storm-dup-inbox"):
        d.wait_until(lambda w=workflow_id: _all_finished(storms, w), what=f"{workflow_id}'s run finished", timeout=90)

    journal = read_journal(storms.root)
    for workflow_id, sensor, payload in (
        ("storm-dup-sqs", QUEUE_SENSOR, queued),
        ("storm-dup-inbox", INBOX_SENSOR, dropped),
    ):
        runs = d.records(**{"dotflow/workflow_id": workflow_id})
        assert [r.dagster_run.status.value for r in runs] == ["SUCCESS"], (workflow_id, runs)
        [run] = runs
        workflow = WORKFLOWS[workflow_id]
        assert run.dagster_run.tags["dotflow/fingerprint"] == workflow.fingerprint(payload)
        effects = [line["step"] for line in journal if line["cell"] == workflow_id and line["event"] == "effect"]
        assert effects == STEPS  # each step once
        [entry] = workflow.state(store=storms.store).history
        assert (entry.decision, entry.outcome, entry.runs, entry.run_id) == ("new", "succeeded", 1, run.dagster_run.run_id)
        ticks = _ticks_between(storms, sensor, started, settled)
        assert len(ticks) >= 4, f"the storm of {workflow_id} spanned {len(ticks)} tick(s): it must span several"
        left = storms.sqs.get_queue_attributes(QueueUrl=storms.queue_url, AttributeNames=["All"])["Attributes"]
        storms.rows[workflow_id] = [
            "SQS messages (SQSSource)" if sensor == QUEUE_SENSOR else "rewrites of one inbox file (DirectorySource)",
            100,
            len(runs),
            ", ".join(f"{step} x{effects.count(step)}" for step in STEPS),
            int(left["ApproximateNumberOfMessages"]) + int(left["ApproximateNumberOfMessagesNotVisible"])
            if sensor == QUEUE_SENSOR
            else "n/a",
        ]
        print(f"{workflow_id}: 100 deliveries over {len(ticks)} ticks of {sensor} -> {len(runs)} run")


@dataclass
class RaceStorm:
    deliveries: list[str]
    runs: list  # run records, in start order
    run_names: list[str]  # "A" or "B" per run
    journal: dict[int, list]  # run worker pid -> its journal lines
    windows: list[tuple[float, float, int]]  # (first, last journal time, pid), in time order
    state: object  # the ledger's state afterwards
    queued_behind_held: list[str]  # runs queued while the held run held the workflow
    seconds: float


PAYLOADS = {"A": {"cell": "storm-race", "v": 1}, "B": {"cell": "storm-race", "v": 2}}
# 50 alternating deliveries in six bursts of odd length, so bursts end on A, B, A, B, A, B.
BURSTS = (9, 9, 9, 9, 9, 5)


@pytest.fixture(scope="module")
def race(storms) -> RaceStorm:
    """Deliver the race storm once; the tests below read what happened.

    Bursts 1-3 arrive one sensor tick apart, as fast as the sensor can see them, while earlier
    runs queue or run. Then, once those runs are done, the run of burst 4's payload (B) is held
    in its last step after it decided: burst 5 (A) queues behind it, and burst 6 brings B, the
    held run's own input, back while A waits. The last delivery is B.
    """
    d, inbox = storms.deployment, storms.root / "inbox"
    workflow = WORKFLOWS["storm-race"]
    names = {workflow.fingerprint(payload): name for name, payload in PAYLOADS.items()}
    deliveries = ["A", "B"] * 25
    bursts, start = [], 0
    for length in BURSTS:
        bursts.append(deliveries[start : start + length])
        start += length
    began = time.time()
    queued_behind_held: list[str] = []
    for number, burst in enumerate(bursts, start=1):
        if number == 4:
            d.wait_until(lambda: _all_finished(storms, "storm-race"), what="bursts 1-3's runs finished", timeout=120)
            request_hold(storms.root, cell="storm-race", step="load")
        for name in burst:
            _deliver(inbox, "storm-race", PAYLOADS[name])
            time.sleep(0.02)
        d.tick_after(INBOX_SENSOR, time.time())
        if number == 4:
            d.wait_until(lambda: holding(storms.root, cell="storm-race"), what="burst 4's run held", timeout=120)
    queued_behind_held = [
        names[r.dagster_run.tags["dotflow/fingerprint"]]
        for r in d.records(**{"dotflow/workflow_id": "storm-race"})
        if r.dagster_run.status.value == "QUEUED"
    ]
    release(storms.root, cell="storm-race")
    records = d.wait_until(lambda: _all_finished(storms, "storm-race"), what="the race storm's runs finished", timeout=120)
    d.tick_after(INBOX_SENSOR, time.time())  # nothing more comes of it
    records = d.wait_until(lambda: _all_finished(storms, "storm-race"), what="the race storm's runs finished", timeout=120)
    runs = sorted(records, key=lambda r: r.start_time)
    journal: dict[int, list] = {}
    for line in read_journal(storms.root):
        if line["cell"] == "storm-race":
            journal.setdefault(line["pid"], []).append(line)
    windows = sorted((min(x["t"] for x in lines), max(x["t"] for x in lines), pid) for pid, lines in journal.items())
    race = RaceStorm(
        deliveries=deliveries,
        runs=runs,
        run_names=[names[r.dagster_run.tags["dotflow/fingerprint"]] for r in runs],
        journal=journal,
        windows=windows,
        state=workflow.state(store=storms.store),
        queued_behind_held=queued_behind_held,
        seconds=time.time() - began,
    )
    print(
        f"race storm: 50 deliveries in {len(BURSTS)} bursts -> {len(runs)} runs ({''.join(race.run_names)}) "
        f"in {race.seconds:.0f} s; queued behind the held run: {queued_behind_held}"
    )
    return race


def test_a_race_storm_is_serialized_and_decided_by_policy(storms, race):
    runs = race.runs
    statuses = [r.dagster_run.status.value for r in runs]
    assert statuses == ["SUCCESS"] * len(runs), statuses
    assert race.queued_behind_held, "no run queued behind the held one: the storm raced nothing"

    # Serialized: each run ended before the next one started (Dagster's own record of them).
    overlaps = sum(1 for earlier, later in zip(runs, runs[1:], strict=False) if earlier.end_time > later.start_time)
    assert overlaps == 0, [(r.start_time, r.end_time) for r in runs]

    # Each run's steps, seen from inside: one process per run, in the run's own time window,
    # working on the run's own payload, each step fed by its own predecessor's result.
    for (_, end, pid), (start, _, next_pid) in zip(race.windows, race.windows[1:], strict=False):
        assert end <= start, f"run worker {pid}'s steps overlap run worker {next_pid}'s"
    assert len(race.windows) == len(runs), (len(race.windows), len(runs))
    cross_reads = resumed = 0
    for run, name, (start, end, pid) in zip(runs, race.run_names, race.windows, strict=True):
        assert run.start_time <= start and end <= run.end_time, (run.dagster_run.run_id, pid)
        lines, own = race.journal[pid], PAYLOADS[name]["v"]
        executed = [x["step"] for x in lines if x["event"] == "effect"]
        resumed += len(STEPS) - len(executed)
        assert executed == STEPS  # reset: nothing resumed, not even from this input's earlier run
        cross_reads += sum(1 for x in lines if x["v"] != own or (x["step"] != "extract" and x["seen"] != own))
    assert cross_reads == 0

    # Decisions follow the policy, and the ledger's history names every run.
    by_run = {entry.run_id: entry for entry in race.state.history}
    missing = [r.dagster_run.run_id for r in runs if r.dagster_run.run_id not in by_run]
    assert not missing, missing
    names = race.run_names
    expected = ["new"] + ["reset" if names[i] != names[i - 1] else "unchanged" for i in range(1, len(runs))]
    decided = [by_run[r.dagster_run.run_id].decision for r in runs]
    assert decided == expected, (names, decided)
    for previous, run in zip([None, *runs], runs, strict=False):
        entry = by_run[run.dagster_run.run_id]
        assert entry.fingerprint == run.dagster_run.tags["dotflow/fingerprint"] and entry.outcome == "succeeded"
        assert entry.previous_fingerprint == (previous.dagster_run.tags["dotflow/fingerprint"] if previous else None)
    assert [r.dagster_run.tags.get("dotflow/expected_decision") for r in runs[1:]] == ["reset"] * (len(runs) - 1)
    assert race.state.current_fingerprint == runs[-1].dagster_run.tags["dotflow/fingerprint"]
    assert "RunInProgressError" not in storms.deployment.log.read_text()

    storms.rows["storm-race"] = [
        ["runs that failed", statuses.count("FAILURE")],
        ["pairs of runs overlapping in time", overlaps],
        ["step executions that saw another input's payload or predecessor result", cross_reads],
        ["steps resumed from a checkpoint instead of executed", resumed],
        ["runs missing from the ledger's history", len(missing)],
        ["decisions", "new, then reset at every change" if "unchanged" not in decided else ", ".join(decided)],
    ]


def test_the_last_delivery_of_a_race_storm_becomes_the_input(race):
    # B (burst 4) is running and current, A (burst 5) is queued behind it, and B arrives again
    # (burst 6, the last delivery): B must run after A, or the workflow ends on A.
    assert race.deliveries[-1] == "B"
    assert race.run_names[-1] == "B", f"runs in order: {race.run_names}; the inbox holds B"


def _storm_tables(rows: dict[str, list]) -> tuple[str, str]:
    duplicates = markdown_table(
        ["one payload delivered as", "deliveries", "runs", "steps executed", "messages left in the queue"],
        [rows[key] for key in ("storm-dup-sqs", "storm-dup-inbox") if key in rows],
    )
    race = markdown_table(["50 alternating deliveries of A and B", "measured"], rows.get("storm-race", []))
    return duplicates, race


@pytest.mark.parametrize("name", ["duplicate-storm", "race-storm"])
def test_the_published_storm_tables_are_the_measured_ones(storms, name):
    if not {"storm-dup-sqs", "storm-dup-inbox", "storm-race"} <= storms.rows.keys():
        pytest.fail("a storm scenario above failed: nothing complete to compare")
    table = dict(zip(("duplicate-storm", "race-storm"), _storm_tables(storms.rows), strict=True))[name]
    published = published_table(RELIABILITY_DOC.read_text(), name=name) if RELIABILITY_DOC.exists() else None
    assert published == table, f"{RELIABILITY_DOC} must publish the measured {name} table; measured:\n{table}"
