"""Check a whole store: ledgers, payloads, checkpoints and decided markers, object by object.

``verify_store`` reads every object once and reports what would break a run or mislead an
operator, without changing anything:

- every object: readable, its expiry header well formed, and (in a signed store) its
  signature valid for its key; an object that fails is never unpickled;
- every ledger (``workflows/<id>/ledger.json``): parses, its fields have sane types, its
  current fingerprint has a stored payload and a decided marker, every fingerprint in its
  history has a decided marker;
- every decided marker: holds the time of the decision;
- every sensor's state (``sensors/<name>/state.json``): parses, its fields have the types the
  sensor writes (one that does not is replaced by an empty state at the sensor's next tick,
  which logs an error);
- every payload: unpickles;
- every checkpoint: unpickles to the runner's ``CompletedStep`` whose ``step_key`` is the
  key's last segment;
- temporary files that a crashed writer left behind, and folders where only a key's file
  belongs (a ledger, a payload, a decided marker, a checkpoint, a sensor's state), which hide
  that key and fail every read and write of it (LocalStore).

Unpickling runs code named in the object, so in an unsigned store it trusts whoever could
write there; a signed store's objects are unpickled only after their signature checks.

``python -m dotflow_dagster verify --store ...`` is the command line around it
(``dotflow_dagster/__main__.py``).
"""

import math
import os
import pickle
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dotflow_dagster.errors import StoreError
from dotflow_dagster.ledger import MAX_HISTORY, Ledger, LedgerState
from dotflow_dagster.sensor_state import SensorState
from dotflow_dagster.stores import DotflowStore, LocalStore, S3Store, UntrustedObjectError
from dotflow_dagster.stores.base import _INTERNAL, _SEGMENT
from dotflow_dagster.stores.local import _TTL_HEADER_SIZE, _TTL_MAGIC, _header_expiry, _open

__all__ = ["Problem", "VerifyReport", "open_store", "verify_store"]

_WORKFLOWS = "workflows/"
# Places (glob patterns under a LocalStore's root) that only ever hold a key's file: a folder
# there is never a folder of keys the store wrote.
_KEY_PLACES = (
    "workflows/*/ledger.json",
    "workflows/*/payloads/*",
    "workflows/*/decided/*",
    "workflows/*/checkpoints/*/*",
    "sensors/*/state.json",
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a store.

    Attributes:
        workflow_id: the workflow the object belongs to (``None`` outside ``workflows/``).
        key: the object's key (a file path for a leftover temporary file).
        message: what is wrong, and what it means.
    """

    workflow_id: str | None
    key: str
    message: str

    def __str__(self) -> str:
        owner = f"workflow {self.workflow_id!r} " if self.workflow_id is not None else ""
        return f"{owner}key {self.key}: {self.message}"


@dataclass(frozen=True)
class VerifyReport:
    """What ``verify_store`` found.

    Attributes:
        location: the store.
        signed: whether signatures were checked (the store has a signing key).
        workflows: workflow ids with at least one object (or the one asked for).
        ledgers: ledgers read.
        payloads: stored payloads read.
        checkpoints: checkpoints read.
        decided: decided markers read.
        others: other objects read (sensor states, plain dotflow keys, keys of newer versions).
        problems: everything wrong, in key order.
    """

    location: str
    signed: bool
    workflows: int = 0
    ledgers: int = 0
    payloads: int = 0
    checkpoints: int = 0
    decided: int = 0
    others: int = 0
    problems: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """Whether nothing is wrong."""
        return not self.problems

    def summary(self) -> str:
        """One line of counts, e.g. ``2 workflows, 3 payloads, 7 checkpoints, 0 problems``."""
        return (
            f"{self.workflows} workflows, {self.payloads} payloads, {self.checkpoints} checkpoints, "
            f"{len(self.problems)} problems"
            f" ({self.ledgers} ledgers, {self.decided} decided markers, {self.others} other objects)"
        )


def open_store(spec: str, *, signing_key: str | None = None, s3_client: Any = None) -> DotflowStore:
    """The store ``spec`` names: ``s3://bucket/prefix`` or an existing directory.

    For S3 the client is boto3's default (``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3``,
    ``AWS_PROFILE``, credentials from the environment) unless ``s3_client`` is given.

    Raises:
        ValueError: ``spec`` names no usable store (no bucket, an invalid prefix, a path that is
            not a directory); the message says which.

    Example:
        >>> import tempfile
        >>> open_store(tempfile.mkdtemp(prefix="store-")).signed
        False
    """
    if spec.startswith("s3://"):
        bucket, _, prefix = spec[len("s3://") :].partition("/")
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        if s3_client is None:
            import boto3

            s3_client = boto3.client("s3")
        try:
            return S3Store(bucket, prefix, s3=s3_client, signing_key=signing_key)
        except ValueError as error:
            raise ValueError(f"--store {spec!r}: {error}") from None
    if "://" in spec:
        raise ValueError(f"--store {spec!r}: a directory or s3://bucket/prefix, no other scheme")
    if not os.path.isdir(spec):
        raise ValueError(f"--store {spec!r}: no such directory")
    return LocalStore(spec, signing_key=signing_key)


def verify_store(store: DotflowStore, *, workflow_id: str | None = None) -> VerifyReport:
    """Check every object of ``store`` (or of one workflow) and report what is wrong.

    Reads only; changes nothing. See the module docstring for what is checked.

    Args:
        store: the store, with the signing key it was written with, if any.
        workflow_id: check only this workflow's objects.

    Raises:
        ValueError: ``workflow_id`` is not a valid id (one key segment).
        StoreError: the store cannot be listed at all (an unreachable endpoint, a missing
            bucket, a root that is not a directory). An object that cannot be read is a
            ``Problem``, not an error.

    Example:
        >>> import tempfile
        >>> from dotflow import action
        >>> from dotflow_dagster import DotflowWorkflow, LocalStore
        >>> @action
        ... def parse(initial_context):
        ...     return initial_context.storage["rows"]
        >>> store = LocalStore(tempfile.mkdtemp(), signing_key="a key of at least 16 bytes")
        >>> _ = DotflowWorkflow("rows-demo", steps=[parse]).run({"rows": 3}, store=store)
        >>> report = verify_store(store)
        >>> report.ok, report.summary()
        (True, '1 workflows, 1 payloads, 1 checkpoints, 0 problems (1 ledgers, 1 decided markers, 0 other objects)')
    """
    _check_workflow_id(workflow_id)
    return _Verification(store).run(workflow_id)


def _check_workflow_id(workflow_id: str | None) -> None:
    if workflow_id is not None and (not _SEGMENT.fullmatch(workflow_id) or workflow_id in (".", "..")):
        raise ValueError(f"workflow_id {workflow_id!r} must be one key segment ([A-Za-z0-9._-]+)")


class _Verification:
    """One pass over a store; collects counts and problems."""

    def __init__(self, store: DotflowStore) -> None:
        self.store = store
        self.problems: list[Problem] = []
        self.counts: dict[str, int] = defaultdict(int)

    def problem(self, workflow_id: str | None, key: str, message: str) -> None:
        self.problems.append(Problem(workflow_id=workflow_id, key=key, message=message))

    def run(self, workflow_id: str | None) -> VerifyReport:
        # One listing: on S3 a listing reads every object's first bytes (its expiry).
        prefix = "" if workflow_id is None else f"{_WORKFLOWS}{workflow_id}/"
        by_workflow: dict[str, list[str]] = defaultdict(list)
        outside: list[str] = []
        for key in self.store.list_keys(prefix):
            if key.startswith(_WORKFLOWS) and key.count("/") >= 2:
                by_workflow[key.split("/", 2)[1]].append(key)
            else:
                outside.append(key)
        if workflow_id is not None:
            by_workflow.setdefault(workflow_id, [])
        for owner, keys in sorted(by_workflow.items()):
            self.workflow(owner, keys)
        for key in outside:
            if _is_sensor_state(key):
                self.sensor_state(key)
            else:
                self.other(None, key)
        self.temporaries(workflow_id)
        self.folders_in_the_way(workflow_id)
        return VerifyReport(
            location=self.store.location,
            signed=self.store.signed,
            workflows=len(by_workflow),
            ledgers=self.counts["ledgers"],
            payloads=self.counts["payloads"],
            checkpoints=self.counts["checkpoints"],
            decided=self.counts["decided"],
            others=self.counts["others"],
            problems=tuple(sorted(self.problems, key=lambda p: (p.workflow_id or "", p.key, p.message))),
        )

    # -- one object ---------------------------------------------------------------------------------

    def value(self, workflow_id: str | None, key: str) -> bytes | None:
        """The object's checked value; ``None`` (after recording why) if it cannot be trusted or read."""
        try:
            raw = self.store.read_raw(key)
        except StoreError as error:
            self.problem(workflow_id, key, f"unreadable: {error}")
            return None
        if raw is None:
            return None  # deleted since it was listed
        if raw.startswith(_TTL_MAGIC) and len(raw) < _TTL_HEADER_SIZE:
            self.problem(workflow_id, key, f"truncated expiry header ({len(raw)} bytes, a header is {_TTL_HEADER_SIZE})")
            return None
        expiry = _header_expiry(raw)
        if expiry is not None and math.isnan(expiry):
            self.problem(workflow_id, key, "expiry header holds no time (NaN): the object would never expire")
            return None
        try:
            return _open(raw, key=key, signer=self.store._signer, where=self.store._where())
        except UntrustedObjectError as error:
            self.problem(workflow_id, key, f"refused, not unpickled: {error.reason}")
            return None

    def unpickled(self, workflow_id: str, key: str, data: bytes, what: str) -> tuple[bool, Any]:
        try:
            return True, pickle.loads(data)
        except Exception as error:
            hint = (
                " (run verify where the workflow's code imports, e.g. with its project on PYTHONPATH)"
                if isinstance(error, ImportError | AttributeError)
                else ""
            )
            self.problem(workflow_id, key, f"{what} cannot be unpickled: {type(error).__name__}: {error}{hint}")
            return False, None

    # -- one workflow ---------------------------------------------------------------------------------

    def workflow(self, workflow_id: str, keys: list[str]) -> None:
        ledger = Ledger(store=self.store, workflow_id=workflow_id)
        present = set(keys)
        checks: dict[str, Callable[[str, str], None]] = {
            "payloads/": self.payload,
            "checkpoints/": self.checkpoint,
            "decided/": self.decided,
        }
        for key in keys:
            if key == ledger.ledger_key:
                continue
            rest = key[len(ledger.prefix) :]
            check = next((check for folder, check in checks.items() if rest.startswith(folder)), self.other)
            check(workflow_id, key)
        if ledger.ledger_key in present:
            self.ledger(ledger, present)

    def ledger(self, ledger: Ledger, present: set[str]) -> None:
        workflow_id, key = ledger.workflow_id, ledger.ledger_key
        data = self.value(workflow_id, key)
        if data is None:
            return
        self.counts["ledgers"] += 1
        try:
            state = LedgerState.from_bytes(data, workflow_id=workflow_id, where=f"{self.store.location} key {key}")
        except StoreError as error:
            self.problem(workflow_id, key, str(error))
            return
        for message in _ledger_schema_problems(state):
            self.problem(workflow_id, key, f"ledger: {message}")
        current = state.current_fingerprint
        if isinstance(current, str):
            if ledger.payload_key(current) not in present:
                self.problem(
                    workflow_id,
                    key,
                    f"current fingerprint {current} has no stored payload ({ledger.payload_key(current)}): "
                    "its partition cannot be run again by key",
                )
        decided = {entry.fingerprint for entry in state.history if isinstance(entry.fingerprint, str)}
        if isinstance(current, str):
            decided.add(current)
        for fingerprint in sorted(decided):
            if ledger.decided_key(fingerprint) not in present:
                self.problem(
                    workflow_id,
                    key,
                    f"fingerprint {fingerprint} was decided (the ledger says so) but has no decided marker "
                    f"({ledger.decided_key(fingerprint)}): once the history is trimmed it would count as a new "
                    "input again",
                )

    def payload(self, workflow_id: str, key: str) -> None:
        if not key.endswith(".pickle"):
            self.other(workflow_id, key)
            return
        data = self.value(workflow_id, key)
        if data is None:
            return
        self.counts["payloads"] += 1
        self.unpickled(workflow_id, key, data, "payload")

    def checkpoint(self, workflow_id: str, key: str) -> None:
        from dotflow_dagster.runner import CompletedStep

        data = self.value(workflow_id, key)
        if data is None:
            return
        self.counts["checkpoints"] += 1
        step_key = key.rsplit("/", 1)[1]
        ok, checkpoint = self.unpickled(workflow_id, key, data, "checkpoint")
        if not ok:
            return
        if not isinstance(checkpoint, CompletedStep):
            self.problem(workflow_id, key, f"checkpoint is a {type(checkpoint).__name__}, not a CompletedStep")
        elif checkpoint.step_key != step_key:
            self.problem(
                workflow_id,
                key,
                f"checkpoint belongs to step {checkpoint.step_key!r}, not to {step_key!r} (its key's last segment)",
            )

    def decided(self, workflow_id: str, key: str) -> None:
        data = self.value(workflow_id, key)
        if data is None:
            return
        self.counts["decided"] += 1
        try:
            datetime.fromisoformat(data.decode())
        except (UnicodeDecodeError, ValueError):
            self.problem(workflow_id, key, f"decided marker holds {data[:40]!r}, not the time of the decision")

    def sensor_state(self, key: str) -> None:
        data = self.value(None, key)
        if data is None:
            return
        self.counts["others"] += 1
        try:
            SensorState.from_bytes(data)
        except ValueError as error:
            self.problem(
                None,
                key,
                f"sensor state cannot be read ({error}): at its next tick the sensor logs an error and starts from "
                "an empty state, reading every item of its source again once",
            )

    def other(self, workflow_id: str | None, key: str) -> None:
        if self.value(workflow_id, key) is not None:
            self.counts["others"] += 1

    def temporaries(self, workflow_id: str | None) -> None:
        root = getattr(self.store, "root", None)
        for path in self.store.leftover_temporaries():
            relative = os.path.relpath(path, root) if root is not None else path
            parts = relative.split(os.sep)
            owner = parts[1] if len(parts) > 2 and parts[0] == "workflows" else None
            if workflow_id is not None and owner != workflow_id:
                continue
            self.problem(
                owner, path, "temporary file of a write that never finished (its writer died); safe to delete"
            )

    def folders_in_the_way(self, workflow_id: str | None) -> None:
        root = getattr(self.store, "root", None)
        if not isinstance(self.store, LocalStore) or root is None or not root.is_dir():
            return
        for pattern in _KEY_PLACES:
            for path in root.glob(pattern):
                key = path.relative_to(root).as_posix()
                parts = key.split("/")
                owner = parts[1] if parts[0] == "workflows" else None
                if _INTERNAL in key or not path.is_dir() or (workflow_id is not None and owner != workflow_id):
                    continue
                self.problem(
                    owner,
                    key,
                    "a folder stands where this key's file belongs: every read and write of the key fails "
                    "(StoreError) until it is removed",
                )


def _is_sensor_state(key: str) -> bool:
    parts = key.split("/")
    return len(parts) == 3 and parts[0] == "sensors" and parts[2] == "state.json"


def _ledger_schema_problems(state: LedgerState) -> list[str]:
    """Fields of a parsed ledger whose types or values no writer produces."""
    found = []
    if state.current_fingerprint is not None and not isinstance(state.current_fingerprint, str):
        found.append(f"current_fingerprint is {state.current_fingerprint!r}, not a string")
    for position, entry in enumerate(state.history):
        for name in ("fingerprint", "decision", "first_seen", "outcome"):
            if not isinstance(getattr(entry, name), str) or not getattr(entry, name):
                found.append(f"history[{position}].{name} is {getattr(entry, name)!r}, not a non-empty string")
        for name in ("run_id", "previous_fingerprint", "updated_at", "summary"):
            if getattr(entry, name) is not None and not isinstance(getattr(entry, name), str):
                found.append(f"history[{position}].{name} is {getattr(entry, name)!r}, not a string")
        if isinstance(entry.runs, bool) or not isinstance(entry.runs, int) or entry.runs < 1:
            found.append(f"history[{position}].runs is {entry.runs!r}, not a count >= 1")
    ran = {entry.fingerprint for entry in state.history if entry.decision != "raise"}
    if state.current_fingerprint is not None and state.history and state.current_fingerprint not in ran:
        # Trimming keeps the newest entries, and the current fingerprint's is among them unless
        # a thousand refusals followed it; anything else is a ledger no run wrote.
        if len(state.history) < MAX_HISTORY:
            found.append(
                f"current_fingerprint {state.current_fingerprint} was never made current by any history entry"
            )
    return found
