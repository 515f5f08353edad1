"""Resume across processes: the promise dotflow 1.0.1's resume=True cannot keep."""

import os
import signal
import subprocess
import sys
import time

from dotflow_dagster import LocalStore
from tests.conftest import ROOT, subprocess_env
from tests.support.flow import make_workflow


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
    tmp_path, run_in_process, side_effects
):
    payload = {"v": 2}
    marker = tmp_path / "hang-started"
    worker = subprocess.Popen(
        [sys.executable, "-m", "tests.support.cli", "--store", str(tmp_path / "store"), "--payload", '{"v": 2}'],
        cwd=ROOT,
        env=subprocess_env(
            DOTFLOW_TEST_LOG=str(tmp_path / "side-effects.log"),
            DOTFLOW_TEST_HANG="transform",
            DOTFLOW_TEST_HANG_MARKER=str(marker),
        ),
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
    finally:
        if worker.poll() is None:
            worker.kill()

    code, resumed = run_in_process(payload)
    assert code == 0
    assert resumed["decision"] == "unchanged"
    assert resumed["resumed"] == ["extract"]
    assert resumed["executed"] == ["transform", "load"]
    assert side_effects() == {"extract v=2": 1, "transform v=2": 2, "load v=2": 1}


def test_concurrent_processes_with_two_payloads_under_raise_run_exactly_one_fingerprint(tmp_path, side_effects):
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
                [sys.executable, "-c", script, "--store", str(tmp_path / "store"),
                 "--payload", f'{{"v": {value}}}', "--policy", "raise"],
                cwd=ROOT,
                env=subprocess_env(DOTFLOW_TEST_LOG=str(tmp_path / "side-effects.log"), DOTFLOW_TEST_STEP_DELAY="0.5"),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=120)
        assert stdout.strip(), stderr
        results.append((worker.returncode, __import__("json").loads(stdout.strip().splitlines()[-1])))

    outcomes = [result["outcome"] for _, result in results]
    winners = [result for _, result in results if result["outcome"] == "ok" and result["executed"]]
    assert len(winners) == 1, outcomes
    assert set(outcomes) <= {"ok", "in_progress", "input_changed"}
    assert outcomes.count("ok") + outcomes.count("in_progress") + outcomes.count("input_changed") == 6

    executed_values = {line.split()[1] for line in side_effects()}
    assert len(executed_values) == 1, side_effects()
    assert sum(side_effects().values()) == 3  # one run of three steps, nothing else

    workflow = make_workflow("raise")
    store = LocalStore(tmp_path / "store")
    state = workflow.state(store=store)
    winner = winners[0]["fingerprint"]
    assert state.current_fingerprint == winner
    assert {entry.fingerprint for entry in state.history if entry.decision != "raise"} == {winner}
    checkpoint_folders = {key.split("/")[3] for key in store.list_keys("workflows/orders-acme/checkpoints/")}
    assert checkpoint_folders == {winner}
