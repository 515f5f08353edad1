"""The orders workflow behind an SQS queue, in AWS Lambda, without Dagster.

Deployment: an SQS event source mapping with ``FunctionResponseTypes=["ReportBatchItemFailures"]``
invokes ``example_project.lambda_handler.handler``. Each record's body is a message in the same
format :class:`dotflow_dagster.sources.SQSSource` reads, so one queue can feed either consumer::

    {"workflow_id": "orders-demo", "payload": {"orders_file": "orders_2026_11.csv", "region": "EU", ...}}

Exactly these two fields; ``workflow_id`` must name a workflow in :data:`WORKFLOWS`. Every record
runs on its own through ``DotflowWorkflow.run``, so SQS's at-least-once delivery is harmless: a
redelivered body is the same fingerprint, ``unchanged``, and executes no completed step again.

The answer is a partial batch response, ``{"batchItemFailures": [{"itemIdentifier": <messageId>}]}``
(the AWS and Powertools convention): SQS deletes every other record of the batch and makes only
the failed ones visible again after the visibility timeout (then, with a redrive policy, moves
them to a dead-letter queue after ``maxReceiveCount`` receives). A record fails alone when its
body is not JSON or not such a message, names an unknown workflow, cannot be fingerprinted, is
refused by ``on_input_change="raise"`` (``InputChangedError``), meets another run of its
workflow (``RunInProgressError``: the redelivery runs it once that run is over), or when a step
fails (the redelivery resumes at that step). For a FIFO queue the records after a failure are
returned unprocessed too, so a message group is never run out of order (as Powertools does).

Each failure is logged at WARNING naming the messageId and the reason, never the payload; the
reasons dotflow_dagster writes (a refusal's diff, say) already apply the workflow's
``redact_paths``.

Configuration (environment): ``DOTFLOW_S3_BUCKET`` (required) and ``DOTFLOW_S3_PREFIX``
(default ``dotflow/``; ``""`` for the whole bucket). The store is built on the first record of a
container and reused by its later invocations; its client is boto3's default, so the function's
role, region and ``AWS_ENDPOINT_URL_S3`` (a local endpoint in tests) apply.
"""

import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

import orjson

from dotflow_dagster import (
    DotflowWorkflow,
    FingerprintError,
    InputChangedError,
    RunInProgressError,
    S3Store,
    StoreError,
)
from dotflow_dagster.sources import decode_json
from example_project.orders import orders_workflow

__all__ = ["WORKFLOWS", "handle_batch", "handle_record", "handler", "store"]

logger = logging.getLogger(__name__)

#: The workflows this function runs, by workflow_id.
WORKFLOWS: dict[str, DotflowWorkflow] = {orders_workflow.workflow_id: orders_workflow}

_FIELDS = frozenset({"workflow_id", "payload"})
_DEFAULT_PREFIX = "dotflow/"

_store: S3Store | None = None
_store_lock = threading.Lock()


class RecordError(Exception):
    """A record that did not run to completion; its message is the reason that gets logged."""


def store() -> S3Store:
    """The container's ``S3Store``, built on first use from ``DOTFLOW_S3_BUCKET``/``DOTFLOW_S3_PREFIX``.

    Built lazily, not at import, so importing the module (the cold start) sends nothing and a
    missing variable fails the invocation with a clear message instead of the init phase.

    Raises:
        RuntimeError: ``DOTFLOW_S3_BUCKET`` is not set.
    """
    global _store
    with _store_lock:
        if _store is None:
            bucket = os.environ.get("DOTFLOW_S3_BUCKET")
            if not bucket:
                raise RuntimeError("set DOTFLOW_S3_BUCKET to the bucket holding dotflow's checkpoints and ledgers")
            # Imported here: boto3 (not just botocore, which the store imports) costs ~0.1 s.
            import boto3

            _store = S3Store(
                bucket,
                os.environ.get("DOTFLOW_S3_PREFIX", _DEFAULT_PREFIX),
                s3=boto3.client("s3"),
                signing_key=os.environ.get("DOTFLOW_SIGNING_KEY") or None,
            )
        return _store


def _message(body: Any) -> tuple[DotflowWorkflow, Any]:
    """Parse a record body into (workflow, payload); raise ``RecordError`` saying what is wrong.

    The reasons never quote the body: it is the payload, and may hold secrets.
    """
    if not isinstance(body, str):
        raise RecordError("the record has no body")
    try:
        # As SQSSource decodes (integers beyond 64 bits kept exact): the same message means the
        # same payload in both consumers.
        message = decode_json(body.encode("utf-8", "surrogatepass"))
    except orjson.JSONDecodeError as error:
        raise RecordError(f"the body is not JSON: {error}") from None
    except ValueError as error:  # valid JSON, but an integer Python cannot hold
        raise RecordError(f"the body cannot be read: {error}") from None
    if not isinstance(message, dict):
        raise RecordError('the body is not an object {"workflow_id": ..., "payload": ...}')
    if set(message) != _FIELDS:
        missing = sorted(_FIELDS - set(message))
        extra = sorted(set(message) - _FIELDS)
        detail = "; ".join(
            filter(None, [f"missing {missing}" if missing else "", f"unexpected fields {extra}" if extra else ""])
        )
        raise RecordError(f'the body must hold exactly "workflow_id" and "payload": {detail}')
    workflow_id = message["workflow_id"]
    workflow = WORKFLOWS.get(workflow_id) if isinstance(workflow_id, str) else None
    if workflow is None:
        shown = workflow_id if isinstance(workflow_id, str) and len(workflow_id) <= 128 else type(workflow_id).__name__
        raise RecordError(f"unknown workflow_id {shown!r}; this function runs {sorted(WORKFLOWS)}")
    return workflow, message["payload"]


def handle_record(record: Mapping[str, Any], *, store: S3Store) -> str:
    """Run one SQS record; return a one-line summary of what ran.

    Raises:
        RecordError: the record failed; its message is the reason (no payload in it).
    """
    workflow, payload = _message(record.get("body"))
    try:
        report = workflow.run(payload, store=store, run_id=record.get("messageId"))
    except InputChangedError as error:  # ValidationConflictError included; the diff is redacted
        raise RecordError(f"refused by on_input_change: {error}") from None
    except RunInProgressError as error:
        raise RecordError(str(error)) from None
    except FingerprintError as error:  # names the path and type, never the value
        raise RecordError(f"the payload cannot be fingerprinted: {error}") from None
    except StoreError as error:  # S3 unreachable, access denied, a lost lease
        raise RecordError(f"store failure: {error}") from None
    except ValueError as error:  # a fingerprint_fn that refused the payload, naming its value only
        raise RecordError(f"the payload was refused: {error}") from None
    summary = (
        f"workflow {workflow.workflow_id} {report.decision} fingerprint {report.fingerprint[:12]} "
        f"executed={report.executed} resumed={report.resumed}"
    )
    if not report.ok:
        raise RecordError(
            f"{summary}: failed at step {report.failed_step!r}: {report.error}; the redelivery resumes there"
        )
    return summary


def handle_batch(event: Mapping[str, Any], *, store: S3Store) -> dict[str, list[dict[str, str]]]:
    """Run every record of an SQS event; return the partial batch response naming the failed ones."""
    records = list(event.get("Records") or ())
    failures: list[dict[str, str]] = []
    for index, record in enumerate(records):
        message_id = str(record.get("messageId", f"record {index}"))
        try:
            summary = handle_record(record, store=store)
        except RecordError as error:
            reason = str(error)
        except Exception as error:  # an unexpected error fails its record, not the whole batch
            logger.exception("message %s: unexpected %s", message_id, type(error).__name__)
            reason = f"unexpected {type(error).__name__}"
        else:
            logger.info("message %s: %s", message_id, summary)
            continue
        logger.warning("message %s failed: %s", message_id, reason)
        failures.append({"itemIdentifier": message_id})
        if (record.get("attributes") or {}).get("MessageGroupId"):
            # FIFO: a later message of the group must not run before this one; hand them all back.
            for later in records[index + 1 :]:
                later_id = str(later.get("messageId"))
                logger.warning("message %s not processed: an earlier FIFO message of the batch failed", later_id)
                failures.append({"itemIdentifier": later_id})
            break
    return {"batchItemFailures": failures}


def handler(event: Mapping[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """The Lambda entry point: ``example_project.lambda_handler.handler``."""
    return handle_batch(event, store=store())
