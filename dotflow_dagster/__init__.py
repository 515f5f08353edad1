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

from dotflow_dagster.assets import dotflow_asset
from dotflow_dagster.errors import (
    FingerprintMismatchError,
    InputChangedError,
    RunInProgressError,
    StepFailedError,
    StoreError,
    UnknownFingerprintError,
)
from dotflow_dagster.fingerprint import FingerprintError, fingerprint
from dotflow_dagster.jobs import dotflow_submit_job
from dotflow_dagster.ledger import HistoryEntry, LedgerState
from dotflow_dagster.policy import InputChange
from dotflow_dagster.report import RunReport, StepReport
from dotflow_dagster.resource import DotflowResource
from dotflow_dagster.stores import DotflowStore, LocalStore
from dotflow_dagster.workflow import DotflowWorkflow

__all__ = [
    "DotflowResource",
    "DotflowStore",
    "DotflowWorkflow",
    "FingerprintError",
    "FingerprintMismatchError",
    "HistoryEntry",
    "InputChange",
    "InputChangedError",
    "LedgerState",
    "LocalStore",
    "RunInProgressError",
    "RunReport",
    "StepFailedError",
    "StepReport",
    "StoreError",
    "UnknownFingerprintError",
    "dotflow_asset",
    "dotflow_submit_job",
    "fingerprint",
]
