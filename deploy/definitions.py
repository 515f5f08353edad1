"""A production Dagster code location for dotflow workflows: the template to copy.

What differs from the embedded default (``example_project/definitions.py``): the store is in S3
(checkpoints, ledgers, payloads, the sensor's state and the run leases), so the webserver, the
daemon and the run workers may sit on different hosts; payloads arrive in an S3 prefix or an
SQS queue instead of a local directory; and the sensor starts as soon as the code is loaded.

Configuration, all from the environment (nothing secret in code or run config):

=========================  ===================================================================
``DOTFLOW_S3_BUCKET``      the store's bucket (required)
``DOTFLOW_S3_PREFIX``      the store's key prefix, ending in ``/`` (required, e.g. ``dotflow/``)
``AWS_REGION``             the region of the bucket and the queue (required)
``DOTFLOW_SOURCE``         where payloads arrive: ``s3`` (default) or ``sqs``
``DOTFLOW_INBOX_BUCKET``   ``s3``: the bucket payloads land in (default: the store's bucket)
``DOTFLOW_INBOX_PREFIX``   ``s3``: their prefix; objects ``<prefix><workflow_id>.json``
                           (default ``inbox/``)
``DOTFLOW_SQS_QUEUE_URL``  ``sqs``: the queue; messages ``{"workflow_id": ..., "payload": ...}``
``DOTFLOW_SENSOR_INTERVAL_SECONDS``  seconds between sensor ticks (default 30)
``DOTFLOW_SIGNING_KEY``    the store's signing key (recommended; at least 16 bytes, e.g.
                           ``secrets.token_urlsafe(32)``): every stored object is signed and
                           checked before it is unpickled. The same in every container; unset:
                           the store is unsigned
=========================  ===================================================================

Credentials and endpoints come the usual boto3 way (an instance/task role, ``AWS_PROFILE``, or
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``; ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL_SQS``
for a local or S3-compatible server).

To deploy your own workflows, import them instead of ``orders_workflow`` and list them in
``WORKFLOWS``: each gets its asset and submit job, and the one sensor feeds them all.
"""

import os

from dagster import DefaultSensorStatus, Definitions, EnvVar
from dagster_aws.s3 import S3Resource

from dotflow_dagster import (
    DotflowResource,
    S3Source,
    SQSSource,
    dotflow_asset,
    dotflow_submit_job,
    payload_change_sensor,
)
from dotflow_dagster.sources.base import PayloadSource
from example_project.orders import orders_workflow

WORKFLOWS = [orders_workflow]


def _env(name: str, default: str | None = None) -> str:
    value = os.environ.get(name) or default
    if value is None:
        raise RuntimeError(f"deploy/definitions.py: set the environment variable {name} (see the module docstring)")
    return value


# The store. EnvVar: Dagster resolves these when a run (or the sensor) starts, and the UI shows
# them as coming from the environment rather than their values.
dotflow = DotflowResource(
    s3_bucket=EnvVar("DOTFLOW_S3_BUCKET"),
    s3_prefix=EnvVar("DOTFLOW_S3_PREFIX"),
    s3=S3Resource(region_name=EnvVar("AWS_REGION")),
    lease_seconds=60,  # a crashed run blocks its workflow for at most this long
    # Whoever can write to the bucket could otherwise run code in every worker (objects are
    # pickled). An EnvVar: the UI shows the variable's name, never the key.
    signing_key=EnvVar("DOTFLOW_SIGNING_KEY") if os.environ.get("DOTFLOW_SIGNING_KEY") else None,
)


def payload_source() -> PayloadSource:
    """Where payloads arrive, by ``DOTFLOW_SOURCE``.

    The source is built when the code location loads (it is not a resource), so it reads the
    environment directly; its client is made at the first tick.
    """
    kind = _env("DOTFLOW_SOURCE", "s3")
    region = _env("AWS_REGION")
    if kind == "s3":
        bucket = _env("DOTFLOW_INBOX_BUCKET", os.environ.get("DOTFLOW_S3_BUCKET"))
        return S3Source(bucket, _env("DOTFLOW_INBOX_PREFIX", "inbox/"), s3=S3Resource(region_name=region))
    if kind == "sqs":
        return SQSSource(_env("DOTFLOW_SQS_QUEUE_URL"), region_name=region)
    raise RuntimeError(f"deploy/definitions.py: DOTFLOW_SOURCE must be 's3' or 'sqs', not {kind!r}")


payloads = payload_change_sensor(
    WORKFLOWS,
    source=payload_source(),
    name="dotflow_payloads",
    minimum_interval_seconds=int(_env("DOTFLOW_SENSOR_INTERVAL_SECONDS", "30")),
    default_status=DefaultSensorStatus.RUNNING,  # on as soon as the daemon loads this code
)

defs = Definitions(
    assets=[dotflow_asset(workflow, group_name="dotflow") for workflow in WORKFLOWS],
    jobs=[dotflow_submit_job(workflow) for workflow in WORKFLOWS],
    sensors=[payloads],
    resources={"dotflow": dotflow},
)
