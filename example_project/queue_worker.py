"""The same workflow without Dagster: what a Lambda, Celery or ECS queue consumer does.

Each argument is a message body (a JSON file); every message is handled on its own, so one bad
message never stops the others::

    python -m example_project.queue_worker example_project/payloads/messages/*.json

The store defaults to ``.demo/queue_store`` (override with ``DOTFLOW_STORE``).
"""

import json
import os
import sys
from pathlib import Path

from dotflow_dagster import FingerprintError, InputChangedError, LocalStore, RunInProgressError
from example_project.orders import orders_workflow

DEFAULT_STORE = Path(__file__).resolve().parent.parent / ".demo" / "queue_store"


def handle(message: Path, *, store: LocalStore) -> bool:
    """Run one message; print what happened; return whether it succeeded."""
    try:
        payload = json.loads(message.read_text())
        report = orders_workflow.run(payload, store=store)
    except (OSError, json.JSONDecodeError, FingerprintError, KeyError) as error:
        print(f"{message}: rejected: {type(error).__name__}: {error}")
        return False
    except (InputChangedError, RunInProgressError) as error:
        print(f"{message}: not run: {error}")
        return False
    status = "ok" if report.ok else f"failed at {report.failed_step}: {report.error}"
    print(
        f"{message}: {report.decision} fingerprint {report.fingerprint[:12]}... "
        f"executed={report.executed} resumed={report.resumed} rows={report.result} {status}"
    )
    return report.ok


def main(arguments: list[str]) -> int:
    store = LocalStore(
        os.environ.get("DOTFLOW_STORE", DEFAULT_STORE), signing_key=os.environ.get("DOTFLOW_SIGNING_KEY") or None
    )
    results = [handle(Path(argument), store=store) for argument in arguments]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
