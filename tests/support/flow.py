"""A three-step workflow whose side effects are observable from another process.

Every execution appends ``<step> <fingerprint-of-input-value>`` to the file named by
``DOTFLOW_TEST_LOG``; ``DOTFLOW_TEST_FAIL=<step>`` makes that step raise;
``DOTFLOW_TEST_HANG=<step>`` makes it touch ``DOTFLOW_TEST_HANG_MARKER`` and sleep.
"""

import os
import time
from pathlib import Path

from dotflow import action

from dotflow_dagster import DotflowWorkflow


def _record(step: str, payload: dict) -> None:
    log = os.environ.get("DOTFLOW_TEST_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write(f"{step} v={payload.get('v')}\n")
    if os.environ.get("DOTFLOW_TEST_HANG") == step:
        Path(os.environ["DOTFLOW_TEST_HANG_MARKER"]).write_text("started")
        time.sleep(120)
    if os.environ.get("DOTFLOW_TEST_FAIL") == step:
        raise RuntimeError(f"{step} failed on purpose")
    delay = float(os.environ.get("DOTFLOW_TEST_STEP_DELAY", "0"))
    if delay:
        time.sleep(delay)


@action
def extract(initial_context):
    payload = initial_context.storage
    _record("extract", payload)
    return {"rows": [payload["v"] * index for index in range(1, 4)]}


@action(retry=1)
def transform(initial_context, previous_context):
    _record("transform", initial_context.storage)
    return {"total": sum(previous_context.storage["rows"])}


@action
def load(initial_context, previous_context):
    _record("load", initial_context.storage)
    # Returns None on purpose: dotflow 1.0.1 would re-run such a step on every resume.
    return None


def make_workflow(policy: str = "reset", **options) -> DotflowWorkflow:
    return DotflowWorkflow("orders-acme", steps=[extract, transform, load], on_input_change=policy, **options)
