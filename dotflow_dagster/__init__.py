"""dotflow_dagster: run dotflow workflows with idempotency done right, on their own or in Dagster.

The same input resumes where it stopped, in any process; a different input never silently
reuses stale checkpoints; nobody hand-writes hashing and cleanup again.

Example:
    >>> import tempfile
    >>> from dotflow import action
    >>> from dotflow_dagster import DotflowWorkflow, LocalStore
    >>> @action
    ... def parse(initial_context):
    ...     return initial_context.storage["rows"]
    >>> wf = DotflowWorkflow("rows-demo", steps=[parse])
    >>> wf.run({"rows": 3}, store=LocalStore(tempfile.mkdtemp())).decision
    'new'
"""

import importlib
from typing import TYPE_CHECKING, Any

from dotflow_dagster.errors import (
    FingerprintMismatchError,
    InputChangedError,
    RunInProgressError,
    StepFailedError,
    StoreError,
    UnknownFingerprintError,
    ValidationConflictError,
)
from dotflow_dagster.fingerprint import FingerprintError, fingerprint
from dotflow_dagster.ledger import HistoryEntry, LedgerState
from dotflow_dagster.policy import InputChange
from dotflow_dagster.reads import PayloadView, UndeclaredReadError
from dotflow_dagster.report import RunReport, StepReport
from dotflow_dagster.runner import RunTrigger
from dotflow_dagster.sources import (
    ArrivedPayload,
    BadPayload,
    DirectorySource,
    PayloadSource,
    S3Source,
    Scan,
    SQSSource,
)
from dotflow_dagster.stores import DotflowStore, LeaseLostError, LocalStore, S3Store, UntrustedObjectError
from dotflow_dagster.workflow import DotflowWorkflow

if TYPE_CHECKING:
    from dotflow_dagster.assets import dotflow_asset
    from dotflow_dagster.jobs import dotflow_submit_job
    from dotflow_dagster.resource import DotflowResource
    from dotflow_dagster.sensor import payload_change_sensor

# The core runs without Dagster (a Lambda or Celery handler); importing dagster costs about half
# a second, so the Dagster-facing names load on first use.
_DAGSTER_NAMES = {
    "dotflow_asset": "dotflow_dagster.assets",
    "dotflow_submit_job": "dotflow_dagster.jobs",
    "DotflowResource": "dotflow_dagster.resource",
    "payload_change_sensor": "dotflow_dagster.sensor",
}


def __getattr__(name: str) -> Any:
    if name in _DAGSTER_NAMES:
        value = getattr(importlib.import_module(_DAGSTER_NAMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dotflow_dagster' has no attribute {name!r}")


__all__ = [
    "ArrivedPayload",
    "BadPayload",
    "DirectorySource",
    "DotflowResource",
    "DotflowStore",
    "DotflowWorkflow",
    "FingerprintError",
    "FingerprintMismatchError",
    "HistoryEntry",
    "InputChange",
    "InputChangedError",
    "LedgerState",
    "LeaseLostError",
    "LocalStore",
    "PayloadSource",
    "PayloadView",
    "RunInProgressError",
    "RunReport",
    "RunTrigger",
    "S3Source",
    "S3Store",
    "SQSSource",
    "Scan",
    "StepFailedError",
    "StepReport",
    "StoreError",
    "UndeclaredReadError",
    "UntrustedObjectError",
    "UnknownFingerprintError",
    "ValidationConflictError",
    "dotflow_asset",
    "dotflow_submit_job",
    "fingerprint",
    "payload_change_sensor",
]
