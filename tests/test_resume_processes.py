"""Resume across processes: the promise dotflow 1.0.1's resume=True cannot keep.

Every scenario runs against LocalStore and against S3Store (a fresh bucket of a local moto
server over HTTP, which the worker processes reach through ``AWS_ENDPOINT_URL_S3``).
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from dotflow_dagster import LocalStore, RunInProgressError
from dotflow_dagster.stores import DotflowStore, S3Store
from tests.conftest import ROOT, subprocess_env
from tests.moto_server import (  # noqa: F401 - moto_server_fixture provides the fixture moto_server
    moto_server_fixture,
    new_s3_store,
    store_env,
    store_spec,
    unavailable_reason,
)
from tests.support.flow import make_workflow

# Short leases, so a killed worker's S3 lease expires within the test.
LEASE_SECONDS = 2.0


@pytest.fixture(params=["LocalStore", "S3Store"])
def process_store(request, tmp_path) -> DotflowStore:
    """The store the worker processes share: a directory, or a fresh bucket on the moto server."""
    if request.param == "LocalStore":
        return LocalStore(tmp_path / "store")
    request.getfixturevalue("moto_server")  # fails, never skips, where moto[server] is missing
    return new_s3_store(lease_seconds=LEASE_SECONDS)


@pytest.fixture
def run_in_process(tmp_path, process_store):
    """Run the test workflow in a fresh Python process on ``process_store`` (conftest's, for any store)."""

    def run(payload: dict, *, policy: str = "reset", lock_wait: float = 0.0, **env: str) -> tuple[int, dict]:
        completed = subprocess.run(
            [sys.executable, "-m", "tests.support.cli", "--store", store_spec(process_store),
             "--payload", json.dumps(payload), "--policy", policy, "--lock-wait", str(lock_wait)],
            cwd=ROOT,
            env=subprocess_env(**store_env(
                process_store,
                DOTFLOW_TEST_LOG=str(tmp_path / "side-effects.log"),
                DOTFLOW_TEST_LEASE_SECONDS=str(LEASE_SECONDS),
                **env,
            )),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert completed.stdout.strip(), completed.stderr
        return completed.returncode, json.loads(completed.stdout.strip().splitlines()[-1])

    return run


def test_failed_run_resumes_in_new_processes_and_matches_a_clean_run(tmp_path, run_in_process, side_effects):
    payload = {"v": 5, "customer": "acme"}

    code, first = run_in_process(payload, DOTFLOW_TEST_FAIL="transform")
    assert code == 1
    assert first["decision"] == "new"
    assert first["executed"] == ["extract"]
    assert first["failed_step"] == "transform"
    assert "transform failed on purpose" in first["error"]

    code, second = run_in_process(payload)
    assert code == 0
    assert second["decision"] == "unchanged"
    assert second["resumed"] == ["extract"]
    assert second["executed"] == ["transform", "load"]

    code, third = run_in_process(payload)
    assert code == 0
    assert third["executed"] == []
    assert third["resumed"] == ["extract", "transform", "load"]

    clean = make_workflow().run(payload, store=LocalStore(tmp_path / "clean-store"))
    assert clean.outputs == third["outputs"] == second["outputs"]
    assert third["outputs"]["transform"] == {"total": 30}
    # extract once; transform once failed + once succeeded; load once (it returns None and is
    # still restored); then the clean single run adds one of each.
    assert side_effects() == {"extract v=5": 2, "transform v=5": 3, "load v=5": 2}


def test_kill_9_during_a_step_releases_the_lock_and_the_next_run_resumes_at_that_step(
    tmp_path, run_in_process, side_effects, process_store
):
    """LocalStore's flock dies with its holder; an S3 lease outlives it until it expires, no longer."""
    payload = {"v": 2}
    marker = tmp_path / "hang-started"
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.support.cli", "--store", store_spec(process_store), "--payload", '{"v": 2}'],
        cwd=ROOT,
        env=subprocess_env(**store_env(
            process_store,
            DOTFLOW_TEST_LOG=str(tmp_path / "side-effects.log"),
            DOTFLOW_TEST_HANG="transform",
            DOTFLOW_TEST_HANG_MARKER=str(marker),
            DOTFLOW_TEST_LEASE_SECONDS=str(LEASE_SECONDS),
        )),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert worker.poll() is None, "worker exited before reaching the hanging step"
            assert time.monotonic() < deadline, "worker never reached the hanging step"
            time.sleep(0.05)

        # While it runs, the same workflow_id is refused.
        code, refused = run_in_process(payload)
        assert code == 4 and refused["outcome"] == "in_progress"
        assert "orders-acme" in refused["message"]

        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        killed_at = time.monotonic()
    finally:
        if worker.poll() is None:
            worker.kill()

    lock_wait = 0.0
    if isinstance(process_store, S3Store):
        # The dead worker's lease is still there: refused until it expires, taken over after.
        with pytest.raises(RunInProgressError, match=f"pid {worker.pid} on "):
            with process_store.run_lock("orders-acme"):
                pass
        assert time.monotonic() - killed_at < LEASE_SECONDS / 2
        lock_wait = 20.0
    code, resumed = run_in_process(payload, lock_wait=lock_wait)
    assert code == 0
    assert resumed["decision"] == "unchanged"
    assert resumed["resumed"] == ["extract"]
    assert resumed["executed"] == ["transform", "load"]
    assert side_effects() == {"extract v=2": 1, "transform v=2": 2, "load v=2": 1}


def test_concurrent_processes_with_two_payloads_under_raise_run_exactly_one_fingerprint(
    tmp_path, side_effects, process_store
):
    start_at = time.time() + 3.0
    script = (
        "import json, sys, time\n"
        f"time.sleep(max(0.0, {start_at!r} - time.time()))\n"
        "from tests.support.cli import main\n"
        "sys.exit(main())\n"
    )
    workers = []
    for index in range(6):
        value = 1 if index % 2 == 0 else 2
        workers.append(
            subprocess.Popen(
                [sys.executable, "-c", script, "--store", store_spec(process_store),
                 "--payload", f'{{"v": {value}}}', "--policy", "raise"],
                cwd=ROOT,
                env=subprocess_env(**store_env(
                    process_store,
                    DOTFLOW_TEST_LOG=str(tmp_path / "side-effects.log"),
                    DOTFLOW_TEST_STEP_DELAY="0.5",
                )),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=120)
        assert stdout.strip(), stderr
        results.append((worker.returncode, json.loads(stdout.strip().splitlines()[-1])))

    outcomes = [result["outcome"] for _, result in results]
    winners = [result for _, result in results if result["outcome"] == "ok" and result["executed"]]
    assert len(winners) == 1, outcomes
    assert set(outcomes) <= {"ok", "in_progress", "input_changed"}
    assert outcomes.count("ok") + outcomes.count("in_progress") + outcomes.count("input_changed") == 6

    executed_values = {line.split()[1] for line in side_effects()}
    assert len(executed_values) == 1, side_effects()
    assert sum(side_effects().values()) == 3  # one run of three steps, nothing else

    workflow = make_workflow("raise")
    store = process_store
    state = workflow.state(store=store)
    winner = winners[0]["fingerprint"]
    assert state.current_fingerprint == winner
    assert {entry.fingerprint for entry in state.history if entry.decision != "raise"} == {winner}
    checkpoint_folders = {key.split("/")[3] for key in store.list_keys("workflows/orders-acme/checkpoints/")}
    assert checkpoint_folders == {winner}
