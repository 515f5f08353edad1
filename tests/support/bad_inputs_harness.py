"""What every bad-input row needs: a store snapshot, a queue-worker loop, a sensor, a Dagster run.

Each row of the bad-input table (``tests/support/bad_inputs_table.py``) feeds one hostile input to a real part (the
core as a queue worker runs it, the payload-change sensor on a real inbox, S3 bucket or SQS
queue, a Dagster run) next to a good input, and shows three things: the error names what was
wrong and where, the worker or tick goes on with the good input, and nothing already stored is
lost. The helpers here make those three checks the same everywhere.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> from dotflow_dagster import LocalStore
    >>> from tests.support.flow import make_workflow
    >>> root = Path(tempfile.mkdtemp())
    >>> store = LocalStore(root)
    >>> before = snapshot(root)
    >>> [outcome.decision for outcome in work_queue(make_workflow(), [{"v": 1}, {"v": None}], store=store)]
    ['new', 'reset']
    >>> assert_nothing_lost(before, snapshot(root))
"""

import ctypes
import hashlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from dagster import AssetsDefinition, DagsterInstance, ExecuteInProcessResult, materialize

from dotflow_dagster import DotflowResource, DotflowWorkflow, PayloadSource, Scan, dotflow_asset, payload_change_sensor
from dotflow_dagster.stores import DotflowStore, LocalStore
from dotflow_dagster.stores.signing import SIGNATURE_MAGIC
from tests.test_sensor import Harness, drop

__all__ = [
    "AGED_NS",
    "Env",
    "Outcome",
    "RacingSource",
    "age",
    "assert_nothing_lost",
    "captured_log",
    "drop",
    "file_permissions_enforced",
    "run_failure_text",
    "snapshot",
    "work_queue",
]

# An mtime far in the past: a file that does not parse is bad at once, not "still being written".
AGED_NS = 1_000_000_000 * 1_600_000_000


def age(path: Path) -> Path:
    """Give ``path`` an old mtime, so DirectorySource judges it at once (see its ``settle_seconds``)."""
    os.utime(path, ns=(AGED_NS, AGED_NS))
    return path


# -- what is stored ------------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, bytes]:
    """Every key file under a LocalStore's root, by relative path (the store's own ``#`` files left out)."""
    if not root.exists():
        return {}
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "#" not in path.relative_to(root).as_posix()
    }


_DECISION = ("fingerprint", "decision", "first_seen", "previous_fingerprint")


def _ledger(data: bytes) -> dict[str, Any]:
    if data.startswith(SIGNATURE_MAGIC):  # a signed store: magic, HMAC-SHA256, then the document
        data = data[len(SIGNATURE_MAGIC) + hashlib.sha256().digest_size :]
    return orjson.loads(data)


def assert_nothing_lost(before: Mapping[str, bytes], after: Mapping[str, bytes], *, decided: bool = False) -> None:
    """Everything stored before is still there afterwards.

    Payloads, checkpoints and ``decided`` markers must be byte-identical. A ledger may only have
    grown: the same current fingerprint and every earlier decision (fingerprint, decision, when,
    previous fingerprint) unchanged; a later run may update an entry's outcome, run count and
    latest run id, a sensor may mark the workflow as fed by it, new entries may be appended. The sensor's own
    ``sensors/<name>/state.json`` is bookkeeping that each tick rewrites, so it is not compared.
    """
    for key, data in before.items():
        if key.startswith("sensors/"):
            continue
        assert key in after, f"{key} was lost"
        if key.endswith("/ledger.json"):
            old, new = _ledger(data), _ledger(after[key])
            if not decided:
                assert new["current_fingerprint"] == old["current_fingerprint"], f"{key}: the current input moved"
            # A later run may update an entry's outcome and run count; the decision itself must stay.
            decisions = [{name: entry.get(name) for name in _DECISION} for entry in new["history"]]
            assert decisions[: len(old["history"])] == [
                {name: entry.get(name) for name in _DECISION} for entry in old["history"]
            ], f"{key}: a decision was lost or rewritten"
        else:
            assert after[key] == data, f"{key} changed"


@contextmanager
def captured_log(name: str = "dotflow_dagster") -> Iterator[list[str]]:
    """Collect what the library logs at WARNING and above (the run's stderr, in Dagster its compute log)."""
    records: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = _Collect(level=logging.WARNING)
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


# -- a queue worker ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a worker did with one message: a decision, or the error it logged instead."""

    decision: str | None = None
    executed: tuple[str, ...] = ()
    resumed: tuple[str, ...] = ()
    failed_step: str | None = None
    step_error: str | None = None
    error: BaseException | None = None
    changes: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return f"{type(self.error).__name__}: {self.error}" if self.error is not None else ""


def work_queue(
    workflow: DotflowWorkflow,
    payloads: Sequence[Any],
    *,
    store: DotflowStore,
    after_each: Callable[[int], None] | None = None,
) -> list[Outcome]:
    """Handle each payload on its own, as a queue consumer does: a failure is logged, the next one runs.

    ``after_each(index)`` is called after each message (to snapshot the store between them).
    """
    outcomes = []
    for index, payload in enumerate(payloads):
        try:
            report = workflow.run(payload, store=store)
        except Exception as error:  # a consumer must never stop at one message
            outcomes.append(Outcome(error=error))
        else:
            outcomes.append(Outcome(decision=report.decision, executed=tuple(report.executed),
                                    resumed=tuple(report.resumed), failed_step=report.failed_step, step_error=report.error,
                                    changes=tuple(report.changes)))
        if after_each is not None:
            after_each(index)
    return outcomes


# -- sources that race with the sensor ---------------------------------------------------------------


class RacingSource(PayloadSource):
    """A real source whose items vanish after the listing: ``interfere`` runs between list and read.

    The wrapped source lists as it always does and reads its items lazily, so whatever
    ``interfere`` deletes is gone before its download or ``open``: the race of a writer that
    removes an item while a tick is running, made deterministic.
    """

    def __init__(self, inner: PayloadSource, *, interfere: Callable[[], None]) -> None:
        self.inner = inner
        self.interfere = interfere

    @property
    def key(self) -> str:
        return self.inner.key

    def scan(self, *, known: Mapping[str, str], max_payload_bytes: int) -> Scan:
        listed = self.inner.scan(known=known, max_payload_bytes=max_payload_bytes)
        self.interfere()
        return listed

    def acknowledge(self, items) -> None:
        self.inner.acknowledge(items)


# -- root and file permissions ---------------------------------------------------------------------


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_CAPABILITY_VERSION_3 = 0x20080522
_DAC_OVERRIDES = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH


@contextmanager
def file_permissions_enforced() -> Iterator[None]:
    """Make ``chmod 000`` mean "unreadable" in this thread, also for root (tests and CI run as root).

    Root reads any file through CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH. Capabilities are per
    thread on Linux: this drops both from the calling thread's effective set and raises them
    again afterwards (they stay in the permitted set). A sensor evaluated with
    ``build_sensor_context`` runs in the calling thread. Without root, nothing needs changing.
    """
    if os.geteuid() != 0:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    header = _CapHeader(_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    saved = data[0].effective
    data[0].effective = saved & ~_DAC_OVERRIDES
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")
    try:
        yield
    finally:
        data[0].effective = saved
        libc.capset(ctypes.byref(header), data)


# -- Dagster --------------------------------------------------------------------------------------


def run_failure_text(result: ExecuteInProcessResult) -> str:
    """What the UI shows for a failed run: every step failure's description or error, joined."""
    texts = []
    for event in result.all_events:
        if event.event_type_value != "STEP_FAILURE":
            continue
        data = event.event_specific_data
        user = getattr(data, "user_failure_data", None)
        if user is not None and user.description:
            texts.append(user.description)
        if data.error is not None:
            texts.append(data.error.to_string())
    return "\n".join(texts)


@dataclass
class Env:
    """One row's world: a LocalStore directory, a real Dagster instance, the sensor's log.

    Attributes:
        root: the store's directory.
        instance: a persistent Dagster test instance.
        read_log: returns what the process wrote to stderr since the last call (pytest's
            ``capfd``): Dagster's sensor logger writes its warnings there.
        scratch: a directory for inboxes and other files outside the store.
        endpoint: the moto server's URL (S3 and SQS), for the rows that need it.
        signing_key: set it to sign the store (``LocalStore(..., signing_key=...)``, and the
            resource's ``signing_key``).
    """

    root: Path
    instance: DagsterInstance
    read_log: Callable[[], str]
    scratch: Path
    endpoint: str | None = None
    signing_key: str | None = None
    _assets: dict[str, AssetsDefinition] = field(default_factory=dict)

    @property
    def store(self) -> LocalStore:
        return LocalStore(self.root, signing_key=self.signing_key)

    @property
    def resource(self) -> DotflowResource:
        return DotflowResource(base_dir=str(self.root), lock_timeout_seconds=10, signing_key=self.signing_key)

    def snapshot(self) -> dict[str, bytes]:
        return snapshot(self.root)

    def inbox(self) -> Path:
        path = self.scratch / "inbox"
        path.mkdir(exist_ok=True)
        return path

    def sensor(self, workflows: Sequence[DotflowWorkflow], source: PayloadSource, **options: Any) -> Harness:
        """A payload-change sensor ticked with ``build_sensor_context`` on the real instance."""
        self.read_log()
        return Harness(payload_change_sensor(workflows, source=source, **options), instance=self.instance,
                       resource=self.resource)

    def logged(self, level: str) -> str:
        """The sensor's log lines at ``level`` (``WARNING``, ``ERROR``) since the last look."""
        return "\n".join(line for line in self.read_log().splitlines() if f" - {level} - " in line)

    def asset(self, workflow: DotflowWorkflow) -> AssetsDefinition:
        if workflow.workflow_id not in self._assets:
            self._assets[workflow.workflow_id] = dotflow_asset(workflow)
        return self._assets[workflow.workflow_id]

    def materialize(
        self, workflow: DotflowWorkflow, partition: str, *, tags: Mapping[str, str] | None = None
    ) -> ExecuteInProcessResult:
        """Run one partition of the workflow's asset as the daemon would, on the real instance."""
        asset = self.asset(workflow)
        partitions = asset.partitions_def.name
        if not self.instance.has_dynamic_partition(partitions, partition):
            self.instance.add_dynamic_partitions(partitions, [partition])
        return materialize([asset], partition_key=partition, instance=self.instance,
                           resources={"dotflow": self.resource}, tags=dict(tags or {}), raise_on_error=False)

    def submit(self, workflow: DotflowWorkflow, payload: Any, **tags: str) -> ExecuteInProcessResult:
        """Store ``payload`` and run its partition, as the submit job does."""
        fingerprint = workflow.put_payload(payload, store=self.store)
        return self.materialize(workflow, fingerprint, tags={"dotflow/arrival": "submit", **tags})
