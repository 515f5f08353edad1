"""Run the test workflow once, in its own process, and print what happened as JSON."""

import argparse
import json
import sys

from dotflow_dagster import InputChangedError, LocalStore, RunInProgressError
from tests.support.flow import make_workflow


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--payload", required=True, help="JSON")
    parser.add_argument("--policy", default="reset")
    args = parser.parse_args()
    workflow = make_workflow(args.policy)
    try:
        report = workflow.run(json.loads(args.payload), store=LocalStore(args.store))
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
