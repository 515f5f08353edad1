"""A storage outage in the middle of a run: the S3 endpoint goes away while a step runs.

The real parts: ``dagster-daemon`` (sensor, run queue, run retries, run monitoring) on
PostgreSQL, one workflow on an ``S3Store`` whose endpoint is a TCP proxy in front of moto's
server (``tests/support/reliability_proxy.py``). The proxy going away is what a client sees of
an unreachable endpoint (its connections reset, new ones refused) while the bucket behind it
keeps its state, as S3's does through a network outage.

Step 2 (``transform``) of the run is held until the test has stopped the proxy; it then
finishes its work and the run tries to checkpoint it. The run fails with a ``StoreError``
naming the bucket and the object key. The proxy comes back as soon as the step failure is
recorded; the daemon's retry resumes at ``transform`` (``extract`` is not executed again) and
succeeds, and ``python -m dotflow_dagster verify`` finds every checkpoint and the ledger intact.
"""

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from dagster import AssetKey, DagsterEventType

from dotflow_dagster.stores import S3Store
from tests.conftest import ROOT, subprocess_env
from tests.moto_server import CREDENTIALS
from tests.support.reliability_daemon import FINISHED, Deployment, Location, run_group
from tests.support.reliability_fixtures import (  # noqa: F401 - the fixtures moto and postgres_url
    moto_fixture,
    postgres_url_fixture,
)
from tests.support.reliability_outage_defs import LEASE_SECONDS, WORKFLOW
from tests.support.reliability_proxy import TcpProxy
from tests.support.reliability_steps import holding, read_journal, release, request_hold
from tests.support.reliability_tables import RELIABILITY_DOC, markdown_table, published_table, write_measured

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

STEPS = ("extract", "transform", "load")
PAYLOAD = {"cell": "outage-s3", "v": 5}


@dataclass
class Outage:
    bucket: str
    statuses: list[str]
    root_failure: str
    root_stderr: str
    retries: int
    executions: Counter
    retry_executed: list[str]
    metadata: dict
    history: list
    checkpoints: list[str]
    verify_status: int
    verify_output: str
    down_seconds: float
    table: str


def _named_object(message: str, *, bucket: str, after: str = "") -> str | None:
    """The object key a ``StoreError`` of the S3 store in ``bucket`` names in ``message`` (after ``after``), if any."""
    found = re.search(
        re.escape(after) + rf"S3Store s3://{re.escape(bucket)}/dotflow/: cannot [^\n]*\(bucket '{re.escape(bucket)}', "
        r"object '(dotflow/workflows/outage-s3/[^']+)'\): EndpointConnectionError",
        message,
    )
    return found.group(1) if found else None


def _step_failed(deployment: Deployment) -> str | None:
    for record in deployment.records(**{"dotflow/workflow_id": WORKFLOW.workflow_id}):
        run_id = record.dagster_run.run_id
        if deployment.instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
            return run_id
        if record.dagster_run.status.value in FINISHED:
            return run_id
    return None


def _recovered(deployment: Deployment) -> list | None:
    records = deployment.records(**{"dotflow/workflow_id": WORKFLOW.workflow_id})
    if not records or any(r.dagster_run.status.value not in FINISHED for r in records):
        return None
    if any(r.dagster_run.status.value == "SUCCESS" for r in records) or len(records) > 2:
        return records
    return None


@pytest.fixture(scope="module")
def outage(tmp_path_factory, postgres_url, moto) -> Iterator[Outage]:
    root = tmp_path_factory.mktemp("outage")
    (root / "inbox").mkdir()
    bucket = moto.new_bucket()
    proxy = TcpProxy(upstream=("127.0.0.1", moto.port))
    proxy.start()
    deployment = Deployment(
        root=root,
        postgres_url=postgres_url,
        locations=[Location(module="tests.support.reliability_outage_defs", attribute="defs", name="outage")],
        env={
            **CREDENTIALS,
            "AWS_ENDPOINT_URL_S3": proxy.endpoint,
            "AWS_REGION": CREDENTIALS["AWS_DEFAULT_REGION"],
            "DOTFLOW_RELIABILITY_DIR": str(root),
            "DOTFLOW_RELIABILITY_BUCKET": bucket,
        },
    )
    request_hold(root, cell="outage-s3", step="transform")
    (root / "inbox" / ".outage-s3.json.tmp").write_text(json.dumps(PAYLOAD))
    os.replace(root / "inbox" / ".outage-s3.json.tmp", root / "inbox" / "outage-s3.json")
    try:
        with deployment.running() as d:
            d.wait_until(lambda: holding(root, cell="outage-s3"), what="the run reached transform", timeout=120)
            proxy.stop()
            stopped = time.monotonic()
            release(root, cell="outage-s3")
            failed_run = d.wait_until(lambda: _step_failed(d), what="the run failed", timeout=120, poll=0.2)
            proxy.start()
            down = time.monotonic() - stopped
            records = d.wait_until(lambda: _recovered(d), what="the retries finished", timeout=120)
            group = run_group(records, failed_run)
            root_failure = d.failure_message(failed_run)
            latest = d.instance.fetch_materializations(AssetKey("outage_s3"), limit=1).records
            metadata = {key: value.value for key, value in latest[0].asset_materialization.metadata.items()} if latest else {}
    finally:
        proxy.stop()

    verify = subprocess.run(
        [sys.executable, "-m", "dotflow_dagster", "verify", "--store", f"s3://{bucket}/dotflow/",
         "--workflow-id", WORKFLOW.workflow_id],
        cwd=ROOT,
        env=subprocess_env(**CREDENTIALS, AWS_ENDPOINT_URL=moto.endpoint),
        capture_output=True,
        text=True,
        timeout=120,
    )
    store = S3Store(bucket, "dotflow/", s3=moto.client(), lease_seconds=LEASE_SECONDS)
    fingerprint = WORKFLOW.fingerprint(PAYLOAD)
    journal = [line for line in read_journal(root) if line["cell"] == "outage-s3" and line["event"] == "effect"]
    first_pid = journal[0]["pid"] if journal else None
    measured = Outage(
        bucket=bucket,
        statuses=[r.dagster_run.status.value for r in group],
        root_failure=root_failure,
        root_stderr="".join(
            path.read_text() for path in (deployment.home / "storage" / failed_run / "compute_logs").glob("*.err")
        ),
        retries=len(group) - 1,
        executions=Counter(line["step"] for line in journal),
        retry_executed=[line["step"] for line in journal if line["pid"] != first_pid],
        metadata=metadata,
        history=[entry for entry in WORKFLOW.state(store=store).history if entry.fingerprint == fingerprint],
        checkpoints=store.list_keys(WORKFLOW.ledger(store=store).checkpoint_prefix(fingerprint)),
        verify_status=verify.returncode,
        verify_output=verify.stdout + verify.stderr,
        down_seconds=down,
        table="",
    )
    named = _named_object(root_failure, bucket=bucket)
    measured.table = markdown_table(
        ["S3 endpoint gone during step 2 of 3 (transform)", "measured"],
        [
            ["the run that lost the endpoint", f"{measured.statuses[0].lower()}: the store's error names the bucket "
             f"and the object `{named}`" if named else f"{measured.statuses[0].lower()}, naming no bucket and key"],
            ["the daemon's retry, once the endpoint is back", measured.statuses[-1].lower()],
            ["steps the retry resumed from checkpoints", ", ".join(metadata.get("dotflow/steps_resumed", [])) or "none"],
            ["steps the retry executed", ", ".join(metadata.get("dotflow/steps_executed", [])) or "none"],
            ["executions per step", ", ".join(f"{step} x{measured.executions[step]}" for step in STEPS)],
            ["`python -m dotflow_dagster verify` exit status", measured.verify_status],
        ],
    )
    path = write_measured(root, name="storage-outage", table=measured.table)
    print(
        f"\nendpoint down {down:.1f} s; runs {measured.statuses} ({measured.retries} retries); "
        f"verify exit {verify.returncode}\n"
        f"measured storage outage (in {path}):\n{measured.table}\nthe failed run said:\n{root_failure[:1500]}"
    )
    yield measured


def test_the_run_fails_with_a_store_error_naming_the_bucket_and_key(outage):
    assert outage.statuses[0] == "FAILURE"
    # "S3Store s3://<bucket>/dotflow/: cannot read key ... (bucket '<bucket>', object '<key>'): EndpointConnectionError"
    assert _named_object(outage.root_failure, bucket=outage.bucket), outage.root_failure
    # The worker's own log says which step lost its checkpoint, and why.
    failed_step = "step transform failed: step returned a dict that could not be stored: StoreError: "
    assert _named_object(outage.root_stderr, bucket=outage.bucket, after=failed_step), outage.root_stderr[-3000:]


def test_the_retry_resumes_at_the_failed_step(outage):
    assert outage.statuses[-1] == "SUCCESS", outage.statuses
    assert outage.metadata["dotflow/steps_resumed"] == ["extract"]
    assert outage.metadata["dotflow/steps_executed"] == ["transform", "load"]
    # extract ran once; transform did its work in the failed run and again in the retry.
    assert dict(outage.executions) == {"extract": 1, "transform": 2, "load": 1}
    assert outage.retry_executed == ["transform", "load"]


def test_no_checkpoint_or_ledger_is_corrupt_afterwards(outage):
    assert outage.verify_status == 0, outage.verify_output
    assert len(outage.checkpoints) == 3
    [entry] = outage.history
    assert (entry.decision, entry.outcome, entry.runs) == ("new", "succeeded", len(outage.statuses))


def test_the_published_outage_table_is_the_measured_one(outage):
    published = published_table(RELIABILITY_DOC.read_text(), name="storage-outage") if RELIABILITY_DOC.exists() else None
    assert published == outage.table, f"{RELIABILITY_DOC} must publish the measured outage table; measured:\n{outage.table}"


def test_verify_reports_a_damaged_checkpoint_of_that_store(outage, moto):
    """The exit status 0 above means something: the same command on a damaged copy exits 1."""
    client = moto.client()
    prefix = "dotflow/workflows/outage-s3/checkpoints/"
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=outage.bucket, Prefix=prefix)["Contents"]]
    damaged = moto.new_bucket()
    for item in client.list_objects_v2(Bucket=outage.bucket, Prefix="dotflow/")["Contents"]:
        client.copy_object(Bucket=damaged, Key=item["Key"], CopySource={"Bucket": outage.bucket, "Key": item["Key"]})
    body = client.get_object(Bucket=damaged, Key=keys[0])["Body"].read()
    client.put_object(Bucket=damaged, Key=keys[0], Body=body[: len(body) // 2])
    verify = subprocess.run(
        [sys.executable, "-m", "dotflow_dagster", "verify", "--store", f"s3://{damaged}/dotflow/",
         "--workflow-id", WORKFLOW.workflow_id],
        cwd=ROOT,
        env=subprocess_env(**CREDENTIALS, AWS_ENDPOINT_URL=moto.endpoint),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 1, verify.stdout + verify.stderr
    assert keys[0].removeprefix("dotflow/") in verify.stdout
