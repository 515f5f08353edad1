"""``deploy/``: the production template, end to end on loopback.

The real parts: PostgreSQL (dagster-postgres), moto's S3 server, a ``$DAGSTER_HOME`` whose
``dagster.yaml`` is ``deploy/dagster.yaml`` itself (its ``postgres_url`` read from
``DAGSTER_POSTGRES_URL``), and ``dagster-daemon run -w deploy/workspace.yaml`` as a subprocess.
Payloads are uploaded to the S3 inbox; the daemon's sensor turns them into runs, the run queue
and the pool serialize them, and the ledger and checkpoints land in the S3 store.
"""

import importlib
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import psycopg2
import pytest
import yaml

from tests.conftest import ROOT, subprocess_env
from tests.moto_server import moto_server_fixture  # noqa: F401
from tests.postgres import running_postgres
from tests.story import stop_process_group

DEPLOY = ROOT / "deploy"
WORKFLOW_ID = "orders-demo"

V1 = {
    "orders_file": "orders_2026_11.csv",
    "region": "EU",
    "min_quantity": 1,
    "received_at": "2026-11-26T08:00:00Z",
    "api_token": "demo-token-1f6c",
}
V2 = {**V1, "orders_file": "orders_2026_12.csv", "received_at": "2026-12-01T07:00:00Z"}
V3 = {**V2, "min_quantity": 2}
V4 = {**V2, "min_quantity": 3}


def _base_env(**extra: str) -> dict[str, str]:
    return {
        "DOTFLOW_S3_BUCKET": "store-bucket",
        "DOTFLOW_S3_PREFIX": "dotflow/",
        "AWS_REGION": "us-east-1",
        **extra,
    }


def _load_definitions(monkeypatch: pytest.MonkeyPatch, **env: str):
    for key in (
        "DOTFLOW_SOURCE",
        "DOTFLOW_INBOX_BUCKET",
        "DOTFLOW_INBOX_PREFIX",
        "DOTFLOW_SQS_QUEUE_URL",
        "DOTFLOW_SENSOR_INTERVAL_SECONDS",
    ):
        monkeypatch.delenv(key, raising=False)
    for key, value in _base_env(**env).items():
        monkeypatch.setenv(key, value)
    sys.modules.pop("deploy.definitions", None)
    return importlib.import_module("deploy.definitions")


# ---------------------------------------------------------------------------------------------
# Fast checks: the module loads, the instance config validates, the compose file is coherent.


@pytest.mark.parametrize("source", ["s3", "sqs"])
def test_deploy_definitions_load(monkeypatch, source):
    from dagster import DefaultSensorStatus, Definitions

    from dotflow_dagster import S3Source, SQSSource

    extra = {"DOTFLOW_SOURCE": source, "DOTFLOW_SENSOR_INTERVAL_SECONDS": "3"}
    if source == "sqs":
        extra["DOTFLOW_SQS_QUEUE_URL"] = "https://sqs.us-east-1.amazonaws.com/123456789012/payloads"
    module = _load_definitions(monkeypatch, **extra)
    Definitions.validate_loadable(module.defs)
    sensor = module.payloads
    assert sensor.name == "dotflow_payloads" and [s.name for s in module.defs.sensors] == ["dotflow_payloads"]
    assert sensor.default_status == DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == 3
    assert isinstance(module.payload_source(), S3Source if source == "s3" else SQSSource)
    assert module.defs.resolve_job_def("orders_demo_submit") and module.defs.resolve_job_def("orders_demo_arrivals")
    assert module.defs.resolve_assets_def("orders_demo")
    # The EnvVars resolve through Dagster's resource machinery.
    from dagster import build_resources

    with build_resources({"dotflow": module.dotflow}) as resources:
        resource = resources.dotflow
    assert (resource.s3_bucket, resource.s3_prefix, resource.s3.region_name) == (
        "store-bucket",
        "dotflow/",
        "us-east-1",
    )


def test_deploy_definitions_name_a_missing_setting(monkeypatch):
    with pytest.raises(RuntimeError, match="DOTFLOW_SOURCE must be 's3' or 'sqs'"):
        _load_definitions(monkeypatch, DOTFLOW_SOURCE="kafka")
    with pytest.raises(RuntimeError, match="DOTFLOW_SQS_QUEUE_URL"):
        _load_definitions(monkeypatch, DOTFLOW_SOURCE="sqs")
    sys.modules.pop("deploy.definitions", None)


def test_deploy_dagster_yaml_validates(tmp_path, monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", "postgresql+psycopg2://u@127.0.0.1:1/db")
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["storage"]["postgres"]["postgres_url"] == {"env": "DAGSTER_POSTGRES_URL"}
    assert config["concurrency"]["pools"]["default_limit"] == 1
    assert config["concurrency"]["runs"]["tag_concurrency_limits"] == [
        {"key": "dotflow/workflow_id", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    ]
    assert config["run_retries"] == {"enabled": True, "max_retries": 2}
    # A killed run worker's pool slot is freed only by run monitoring; without it the retry queues forever.
    assert config["run_monitoring"] == {"enabled": True, "free_slots_after_run_end_seconds": 10}
    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"


def test_deploy_compose_file_is_coherent():
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    entry = workspace["load_from"][0]["python_module"]
    assert entry["module_name"] == "deploy.definitions"
    assert (DEPLOY / entry["working_directory"]).resolve() == ROOT

    compose = yaml.safe_load((DEPLOY / "docker-compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "code", "webserver", "daemon", "aws"} <= services.keys()
    for name, service in services.items():
        build = service.get("build")
        if build:
            context = (DEPLOY / build["context"]).resolve()
            assert (context / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            host = volume.split(":")[0]
            if host.startswith("."):
                assert (DEPLOY / host).exists(), (name, host)
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)
    assert "dagster" in " ".join(services["code"]["command"]) and "code-server" in services["code"]["command"]
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


# ---------------------------------------------------------------------------------------------
# End to end.


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with running_postgres() as url:
        yield url.replace("postgresql://", "postgresql+psycopg2://")


FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


class Deployment:
    """A $DAGSTER_HOME holding deploy/dagster.yaml as shipped, buckets in moto, and the daemon's env."""

    def __init__(self, root: Path, postgres_url: str, moto_server, monkeypatch, **env: str) -> None:
        from dotflow_dagster.stores import S3Store

        with psycopg2.connect(postgres_url.replace("+psycopg2", "")) as connection, connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")  # a fresh instance per test
        self.home = root / "dagster_home"
        self.home.mkdir()
        shutil.copy(DEPLOY / "dagster.yaml", self.home / "dagster.yaml")  # the shipped file, unchanged
        monkeypatch.setenv("DAGSTER_POSTGRES_URL", postgres_url)
        self.warehouse = root / "warehouse.sqlite"
        self.store_bucket = moto_server.new_bucket()
        self.store = S3Store(self.store_bucket, "dotflow/", s3=moto_server.resource())
        self.env = subprocess_env(
            **moto_server.env(),
            DAGSTER_HOME=str(self.home),
            DAGSTER_POSTGRES_URL=postgres_url,
            DOTFLOW_S3_BUCKET=self.store_bucket,
            DOTFLOW_S3_PREFIX="dotflow/",
            DOTFLOW_SENSOR_INTERVAL_SECONDS="2",
            AWS_REGION="us-east-1",
            ORDERS_DEMO_WAREHOUSE=str(self.warehouse),
            **env,
        )
        self.log = root / "daemon.log"
        self.daemon: subprocess.Popen | None = None

    @contextmanager
    def running(self) -> Iterator["Deployment"]:
        """``dagster-daemon run -w deploy/workspace.yaml``, as the compose file's daemon runs it."""
        from dagster import DagsterInstance

        with self.log.open("w") as log_file:
            self.daemon = subprocess.Popen(
                [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(DEPLOY / "workspace.yaml")],
                cwd=ROOT,
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so its code servers stop with it
            )
        try:
            with DagsterInstance.from_config(str(self.home)) as self.instance:
                yield self
        finally:
            stop_process_group(self.daemon)

    def log_tail(self) -> str:
        return self.log.read_text()[-4000:]

    def records(self) -> list:
        from dagster import RunsFilter

        return self.instance.get_run_records(RunsFilter(tags={"dotflow/workflow_id": WORKFLOW_ID}), ascending=True)

    def wait(self, condition, what: str, timeout: float = 120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = condition(self.records())
            if found:
                return found
            if self.daemon.poll() is not None:
                raise AssertionError(f"dagster-daemon exited with {self.daemon.returncode}: {self.log_tail()}")
            time.sleep(0.5)
        runs = [(r.dagster_run.tags.get("dotflow/fingerprint"), r.dagster_run.status) for r in self.records()]
        raise AssertionError(f"{what} within {timeout}s; runs: {runs}\ndaemon log tail: {self.log_tail()}")

    def requested(self, fingerprint: str):
        return self.wait(
            lambda found: next(
                (r for r in found if r.dagster_run.tags.get("dotflow/fingerprint") == fingerprint), None
            ),
            f"no run requested for {fingerprint}",
        )

    def finished(self, fingerprint: str):
        def condition(found):
            matching = [r for r in found if r.dagster_run.tags.get("dotflow/fingerprint") == fingerprint]
            return matching[-1] if matching and matching[-1].dagster_run.status.value in FINISHED else None

        return self.wait(condition, f"no finished run for {fingerprint}")


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_deploy_end_to_end_on_s3_and_postgres(tmp_path, postgres_url, moto_server, monkeypatch):
    from dagster import DagsterRunStatus, RunsFilter

    from example_project.orders import orders_workflow

    inbox_bucket = moto_server.new_bucket()
    deployment = Deployment(
        tmp_path,
        postgres_url,
        moto_server,
        monkeypatch,
        DOTFLOW_SOURCE="s3",
        DOTFLOW_INBOX_BUCKET=inbox_bucket,
        DOTFLOW_INBOX_PREFIX="inbox/",
    )
    client, store, warehouse = moto_server.client(), deployment.store, deployment.warehouse
    store_bucket = deployment.store_bucket

    def upload(payload: dict) -> str:
        client.put_object(Bucket=inbox_bucket, Key=f"inbox/{WORKFLOW_ID}.json", Body=orjson.dumps(payload))
        return orders_workflow.fingerprint(payload)

    with deployment.running() as d:
        # 1. v1 lands in the inbox: the sensor (on by default) requests a run, which succeeds.
        v1 = upload(V1)
        first = d.finished(v1)
        assert first.dagster_run.status == DagsterRunStatus.SUCCESS, d.log_tail()
        assert first.dagster_run.tags["dotflow/arrival"] == "sensor"
        assert first.dagster_run.job_name == "orders_demo_arrivals"

        # The ledger, payloads and checkpoints are in the S3 store, not on a local disk.
        ledger = orders_workflow.ledger(store=store)
        assert orders_workflow.state(store=store).current_fingerprint == v1
        assert len(store.list_keys(ledger.checkpoint_prefix(v1))) == 3
        keys = [o["Key"] for o in client.list_objects_v2(Bucket=store_bucket, Prefix="dotflow/").get("Contents", [])]
        assert any(key.startswith("dotflow/sensors/dotflow_payloads/") for key in keys), keys

        # 2. v2: a reset run.
        v2 = upload(V2)
        second = d.finished(v2)
        assert second.dagster_run.status == DagsterRunStatus.SUCCESS
        assert second.dagster_run.tags["dotflow/expected_decision"] == "reset"
        history = orders_workflow.state(store=store).history
        assert [entry.decision for entry in history][-1] == "reset" and history[-1].fingerprint == v2

        # 3. v3, then v4 while v3's run is unfinished: two runs of one workflow_id at once.
        # The example's steps take milliseconds, so v3's run is held open: the test holds the
        # warehouse's SQLite write lock, and v3's load step waits for it (sqlite3's 5 s busy
        # timeout), until v4's run has been requested.
        blocker = sqlite3.connect(warehouse, isolation_level=None, timeout=0)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            v3 = upload(V3)
            d.requested(v3)
            v4 = upload(V4)
            d.requested(v4)
            assert d.records()[2].dagster_run.status not in (
                DagsterRunStatus.SUCCESS,
                DagsterRunStatus.FAILURE,
                DagsterRunStatus.CANCELED,
            )
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        third = d.finished(v3)
        fourth = d.finished(v4)
        all_runs = d.records()
        assert [r.dagster_run.status for r in all_runs] == [DagsterRunStatus.SUCCESS] * 4, d.log_tail()
        # Serialized: v4's run was requested while v3's was unfinished, yet they never overlapped.
        assert fourth.create_timestamp.timestamp() < third.end_time, (fourth.create_timestamp, third.end_time)
        assert third.end_time <= fourth.start_time, (third.start_time, third.end_time, fourth.start_time)
        assert "RunInProgressError" not in d.log.read_text()
        state = orders_workflow.state(store=store)
        assert state.current_fingerprint == v4
        assert [entry.fingerprint for entry in state.history][-2:] == [v3, v4]
        assert not d.instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.FAILURE]))


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_deploy_end_to_end_on_sqs(tmp_path, postgres_url, moto_server, monkeypatch):
    """DOTFLOW_SOURCE=sqs: a message becomes a run; it is deleted once its payload is stored."""
    import boto3
    from dagster import DagsterRunStatus

    from example_project.orders import orders_workflow

    sqs = boto3.client("sqs", endpoint_url=moto_server.endpoint, **_credentials())
    queue_url = sqs.create_queue(QueueName=f"dotflow-{tmp_path.name[-20:]}")["QueueUrl"]
    deployment = Deployment(
        tmp_path,
        postgres_url,
        moto_server,
        monkeypatch,
        DOTFLOW_SOURCE="sqs",
        DOTFLOW_SQS_QUEUE_URL=queue_url,
        AWS_ENDPOINT_URL_SQS=moto_server.endpoint,
    )
    with deployment.running() as d:
        sqs.send_message(
            QueueUrl=queue_url, MessageBody=orjson.dumps({"workflow_id": WORKFLOW_ID, "payload": V1}).decode()
        )
        v1 = orders_workflow.fingerprint(V1)
        first = d.finished(v1)
        assert first.dagster_run.status == DagsterRunStatus.SUCCESS, d.log_tail()
        assert orders_workflow.state(store=deployment.store).current_fingerprint == v1
        attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
        assert attributes["ApproximateNumberOfMessages"] == "0"
        assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def _credentials() -> dict[str, str]:
    from tests.moto_server import CREDENTIALS

    return {
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    }
