"""The production-style instance: Dagster on a real PostgreSQL, runs serialized by the asset's pool."""

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus, RunsFilter

from tests.conftest import ROOT
from tests.postgres import fresh_postgres_home, running_postgres
from tests.story import DAGSTER, PAYLOADS, dagster_env, dagster_job_execute


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with running_postgres() as url:
        yield url


@pytest.fixture
def postgres_home(tmp_path, postgres_url) -> Path:
    return fresh_postgres_home(tmp_path / "dagster_home", postgres_url)


def test_cli_runs_record_fingerprint_partitions_and_metadata_in_postgres(postgres_home, postgres_url):
    runs = [dagster_job_execute(postgres_home, PAYLOADS / name) for name in ("orders_v1.yaml", "orders_v2.yaml")]
    assert [run.returncode for run in runs] == [0, 0], runs[-1].output[-3000:]
    with DagsterInstance.from_config(str(postgres_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        partitions = instance.get_dynamic_partitions("orders_demo_fingerprints")
        records = instance.fetch_materializations(AssetKey("orders_demo"), limit=10, ascending=True).records
    assert len(partitions) == 2
    assert [r.asset_materialization.partition for r in records] == partitions
    assert [r.asset_materialization.metadata["dotflow/decision"].value for r in records] == ["new", "reset"]
    with psycopg2.connect(postgres_url) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'orders_demo_fingerprints'")
        assert sorted(row[0] for row in cursor.fetchall()) == sorted(partitions)


def test_the_pool_serializes_two_cli_runs_of_one_workflow_instead_of_failing_the_second(
    postgres_home, tmp_path
):
    log = tmp_path / "side-effects.log"
    env = dagster_env(postgres_home) | {"DOTFLOW_TEST_LOG": str(log), "DOTFLOW_TEST_STEP_DELAY": "1.5"}
    configs = []
    for value in (1, 2):
        config = tmp_path / f"v{value}.yaml"
        config.write_text(f"ops:\n  orders_acme_submit:\n    config:\n      payload: {{v: {value}}}\n")
        configs.append(config)
    processes = []
    for config in configs:
        processes.append(
            subprocess.Popen(
                [DAGSTER, "job", "execute", "-m", "tests.support.defs", "-j", "orders_acme_submit", "-c", str(config)],
                cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            )
        )
        time.sleep(0.5)
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs[1][-3000:]
    assert not any("already running" in output for output in outputs)
    assert any("blocked by limit for pool dotflow/orders-acme" in output for output in outputs), outputs[1][-3000:]
    # One run's three steps, then the other's: never interleaved.
    values = [line.split()[1] for line in log.read_text().splitlines()]
    assert len(values) == 6 and values[:3] == [values[0]] * 3 and values[3:] == [values[3]] * 3
    assert values[0] != values[3]
    with DagsterInstance.from_config(str(postgres_home)) as instance:
        runs = instance.get_runs(RunsFilter(job_name="orders_acme_submit"))
    assert {run.status for run in runs} == {DagsterRunStatus.SUCCESS} and len(runs) == 2
