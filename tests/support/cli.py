"""Run the test workflow once, in its own process, and print what happened as JSON.

``--store`` is a directory (a ``LocalStore``) or ``s3://bucket/prefix/`` (an ``S3Store`` on the
endpoint boto3 finds in the environment: ``AWS_ENDPOINT_URL_S3``, with its credentials;
``DOTFLOW_TEST_LEASE_SECONDS`` sets its lease).
"""

import argparse
import json
import os
import sys

from dotflow_dagster import InputChangedError, LocalStore, RunInProgressError
from dotflow_dagster.stores import DotflowStore
from tests.support.flow import make_workflow


def open_store(spec: str) -> DotflowStore:
    """The store ``spec`` names: ``s3://bucket/prefix/`` or a directory."""
    if spec.startswith("s3://"):
        import boto3

        from dotflow_dagster.stores import S3Store

        bucket, _, prefix = spec[len("s3://") :].partition("/")
        lease_seconds = float(os.environ.get("DOTFLOW_TEST_LEASE_SECONDS", "60"))
        return S3Store(bucket, prefix, s3=boto3.client("s3"), lease_seconds=lease_seconds)
    return LocalStore(spec)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True, help="a directory, or s3://bucket/prefix/")
    parser.add_argument("--payload", required=True, help="JSON")
    parser.add_argument("--policy", default="reset")
    parser.add_argument("--lock-wait", type=float, default=0.0, help="seconds to wait for the run lock")
    args = parser.parse_args()
    workflow = make_workflow(args.policy)
    try:
        report = workflow.run(json.loads(args.payload), store=open_store(args.store), lock_wait_seconds=args.lock_wait)
    except InputChangedError as error:
        print(json.dumps({"outcome": "input_changed", "message": str(error)}))
        return 3
    except RunInProgressError as error:
        print(json.dumps({"outcome": "in_progress", "message": str(error)}))
        return 4
    print(
        json.dumps(
            {
                "outcome": "ok" if report.ok else "failed",
                "decision": report.decision,
                "fingerprint": report.fingerprint,
                "executed": report.executed,
                "resumed": report.resumed,
                "outputs": report.outputs,
                "failed_step": report.failed_step,
                "error": report.error,
            }
        )
    )
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
