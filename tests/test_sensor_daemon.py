"""The sensor end to end: the real dagster-daemon on a dagster-postgres instance, fed through an inbox."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from dotflow_dagster import LocalStore
from tests.conftest import ROOT, subprocess_env
from tests.postgres import fresh_postgres_home, running_postgres
from tests.story import stop_process_group
from tests.support.flow import make_workflow

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

WORKFLOW = make_workflow()  # for fingerprints and the ledger only: the daemon's code decides
FINISHED = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with running_postgres() as url:
        yield url


class Deployment:
    def __init__(self, root: Path, postgres_url: str) -> None:
        self.home = root / "dagster_home"
        self.inbox = root / "inbox"
        self.policy = root / "policy"
        self.log = root / "side-effects.log"
        fresh_postgres_home(self.home, postgres_url)
        self.inbox.mkdir()
        self.policy.write_text("reset")
        self.env = subprocess_env(
            DAGSTER_HOME=str(self.home),
            DOTFLOW_TEST_INBOX=str(self.inbox),
            DOTFLOW_TEST_POLICY_FILE=str(self.policy),
            DOTFLOW_TEST_LOG=str(self.log),
        )

    @property
    def store(self) -> LocalStore:
        return LocalStore(self.home / "dotflow_store")

    def drop(self, payload: dict) -> str:
        temporary = self.inbox / ".orders-acme.json.tmp"
        temporary.write_text(json.dumps(payload))
        os.replace(temporary, self.inbox / "orders-acme.json")
        return WORKFLOW.fingerprint(payload)

    def runs(self) -> list:
        with DagsterInstance.from_config(str(self.home)) as instance:
            return instance.get_runs(RunsFilter(tags={"dotflow/workflow_id": "orders-acme"}), ascending=True)

    def wait_for_run(self, fingerprint: str, *, after: int, timeout: float = 180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.runs()[after:]
            matching = [run for run in runs if run.tags.get("dotflow/fingerprint") == fingerprint]
            if matching and matching[-1].status in FINISHED:
                return matching[-1]
            time.sleep(1)
        raise AssertionError(f"no finished run for {fingerprint} after {timeout}s: {[r.status for r in self.runs()]}")

    def side_effects(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


def test_the_daemon_runs_arrivals_by_policy_through_the_sensor(tmp_path, postgres_url):
    deployment = Deployment(tmp_path, postgres_url)
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-m", "tests.support.sensor_defs"],
        cwd=ROOT, env=deployment.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, so its code server stops with it
    )
    try:
        # 1. v1 arrives: a run, which succeeds.
        v1 = deployment.drop({"v": 1})
        first = deployment.wait_for_run(v1, after=0)
        assert first.status == DagsterRunStatus.SUCCESS, daemon.stderr
        assert first.tags["dotflow/arrival"] == "sensor" and first.tags["dotflow/expected_decision"] == "new"

        # 2. the file is touched, not changed: no new run, however many ticks pass.
        (deployment.inbox / "orders-acme.json").touch()
        time.sleep(8)
        assert len(deployment.runs()) == 1

        # 3. v2: a reset run and a new partition.
        v2 = deployment.drop({"v": 2})
        second = deployment.wait_for_run(v2, after=1)
        assert second.status == DagsterRunStatus.SUCCESS
        assert WORKFLOW.state(store=deployment.store).history[-1].decision == "reset"
        with DagsterInstance.from_config(str(deployment.home)) as instance:
            assert instance.get_dynamic_partitions("orders_acme_fingerprints") == [v1, v2]

        # 4. under raise, v3: a run that fails with the diff and executes nothing; v2 is intact.
        deployment.policy.write_text("raise")
        effects_before = deployment.side_effects()
        v3 = deployment.drop({"v": 3})
        third = deployment.wait_for_run(v3, after=2)
        assert third.status == DagsterRunStatus.FAILURE
        assert deployment.side_effects() == effects_before
        ledger = WORKFLOW.ledger(store=deployment.store)
        assert len(deployment.store.list_keys(ledger.checkpoint_prefix(v2))) == 3
        assert WORKFLOW.state(store=deployment.store).current_fingerprint == v2

        # v2 again is the current input: nothing to run.
        deployment.drop({"v": 2})
        time.sleep(8)
        assert len(deployment.runs()) == 3

        # 5. back to v1 under reset: a fresh run that executes every step again.
        deployment.policy.write_text("reset")
        back = deployment.drop({"v": 1})
        fourth = deployment.wait_for_run(back, after=3)
        assert fourth.status == DagsterRunStatus.SUCCESS and fourth.run_id != first.run_id
        assert deployment.side_effects().count("load v=1") == 2
        assert WORKFLOW.state(store=deployment.store).current_fingerprint == v1
    finally:
        stop_process_group(daemon)
