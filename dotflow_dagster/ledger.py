"""The ledger: per-workflow_id state, and every fingerprint's payload, stored by content.

Layout inside a store (keys, not paths: the same on disk and on S3)::

    workflows/<workflow_id>/ledger.json                      current fingerprint + history
    workflows/<workflow_id>/payloads/<fingerprint>.pickle     the payload, so a key alone can re-run
    workflows/<workflow_id>/checkpoints/<fingerprint>/<step>  one completed step each
    workflows/<workflow_id>/decided/<fingerprint>              a fingerprint some run has decided

The ``decided`` markers outlive the capped history and retention: a fingerprint decided long ago
must never count as a new input again (a backfill of it would roll the input back).

Every ledger write is a compare-and-swap on ``ledger.json``, so two writers never both win.
"""

import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from dotflow_dagster.errors import StoreError, UnknownFingerprintError
from dotflow_dagster.stores import DotflowStore

__all__ = ["SENSOR_MANAGED", "HistoryEntry", "Ledger", "LedgerState"]

logger = logging.getLogger("dotflow_dagster")

LEDGER_FORMAT = 1
# The history grows by one entry per *change* of input (not per run); cap it so a workflow that
# flips inputs for years keeps a small ledger. Payloads and partitions are pruned separately.
MAX_HISTORY = 1000


def _whole_pickle(data: bytes) -> bool:
    """Whether ``data`` can be a whole pickle: protocol 2+ streams open with PROTO and end with STOP."""
    return data[:1] == b"\x80" and data[-1:] == b"."


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class HistoryEntry:
    """One decision in a workflow's life.

    Attributes:
        fingerprint: the payload's fingerprint.
        decision: ``new``, ``reset``, ``reuse`` or ``raise`` (``unchanged`` runs update ``outcome``).
        first_seen: when this entry was made (UTC, ISO 8601).
        outcome: ``running``, ``succeeded``, ``failed at <step>`` or ``refused``.
        run_id: the run that made the decision (a Dagster run id, or one made up by the caller).
        previous_fingerprint: the current fingerprint before the decision.
        updated_at: the last time ``outcome`` changed.
        runs: how many runs this entry covers (later ``unchanged`` runs add to it).
        summary: one line saying what changed against ``previous_fingerprint`` (redacted).
        extra: fields written by a newer version of this library, kept as they are.
    """

    fingerprint: str
    decision: str
    first_seen: str
    outcome: str = "running"
    run_id: str | None = None
    previous_fingerprint: str | None = None
    updated_at: str | None = None
    runs: int = 1
    summary: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def to_document(self) -> dict[str, Any]:
        """The entry as it is stored in ``ledger.json`` (a new dict)."""
        return dict(self._document())

    def _document(self) -> dict[str, Any]:
        # Built once per entry and never changed: a ledger holds up to MAX_HISTORY entries and is
        # written twice a run, while only its last entry or two change.
        document = self.__dict__.get("_stored_document")
        if document is None:
            # Not dataclasses.asdict, which deep-copies every value.
            document = {name: getattr(self, name) for name in _ENTRY_FIELD_ORDER}
            if self.extra:
                document = {**self.extra, **document}
            object.__setattr__(self, "_stored_document", document)
        return document

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> "HistoryEntry":
        if document.keys() == _ENTRY_FIELDS:
            # The usual case, every field and nothing else: the document is kept as the entry's own.
            entry = cls(**document)
            object.__setattr__(entry, "_stored_document", document)
            return entry
        # A ledger written by a newer version may carry fields this one does not know; keep them
        # (and write them back) rather than refusing the whole ledger.
        known = {name: document[name] for name in _ENTRY_FIELDS if name in document}
        extra = {name: value for name, value in document.items() if name not in _ENTRY_FIELDS}
        return cls(**known, extra=extra)


# The only value of LedgerState.payloads_managed_by besides None.
SENSOR_MANAGED = "sensor"


@dataclass(frozen=True)
class LedgerState:
    """What the ledger records for one workflow_id.

    Attributes:
        workflow_id: the workflow.
        current_fingerprint: the input the workflow stands on (``None`` before the first decision).
        history: the decisions, oldest first, capped at ``MAX_HISTORY`` entries.
        decision_count: how many history entries were ever appended (``new``, ``reset``,
            ``reuse``, ``raise``; an ``unchanged`` run merges into its entry and adds none).
            Never decreases and is not capped with the history, so it can number decisions,
            e.g. in run keys. Ledgers written before it existed read as ``len(history)``.
        payloads_managed_by: ``None``, or ``"sensor"`` once a sensor feeds this workflow
            (``Ledger.mark_sensor_managed``): runs then prune checkpoints only and leave stored
            payloads to the sensor, which alone sees the runs still queued.
        extra: fields written by a newer version of this library, kept as they are.
    """

    workflow_id: str
    current_fingerprint: str | None = None
    history: tuple[HistoryEntry, ...] = field(default=())
    decision_count: int = None  # type: ignore[assignment]  # None: len(history), see __post_init__
    payloads_managed_by: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        # A state built without a count (or with one below its own history) counts its history.
        count = len(self.history) if self.decision_count is None else max(self.decision_count, len(self.history))
        object.__setattr__(self, "decision_count", count)

    def latest_entry(self, fingerprint: str) -> HistoryEntry | None:
        """The most recent history entry for ``fingerprint``, if it is still in the history."""
        for entry in reversed(self.history):
            if entry.fingerprint == fingerprint:
                return entry
        return None

    def fingerprints(self, *, ran_only: bool = False) -> list[str]:
        """Distinct fingerprints, most recent decision first (``ran_only``: skip refused ones)."""
        seen: dict[str, None] = {}
        for entry in reversed(self.history):
            if not (ran_only and entry.decision == "raise"):
                seen.setdefault(entry.fingerprint, None)
        return list(seen)

    def to_bytes(self) -> bytes:
        document = {
            **self.extra,
            "format": LEDGER_FORMAT,
            "workflow_id": self.workflow_id,
            "current_fingerprint": self.current_fingerprint,
            "history": [entry._document() for entry in self.history[-MAX_HISTORY:]],
            "decision_count": self.decision_count,
            "payloads_managed_by": self.payloads_managed_by,
        }
        return orjson.dumps(document, option=orjson.OPT_INDENT_2)

    @classmethod
    def from_bytes(cls, data: bytes, *, workflow_id: str, where: str) -> "LedgerState":
        try:
            document = orjson.loads(data)
            if document.get("format") != LEDGER_FORMAT or document.get("workflow_id") != workflow_id:
                raise ValueError(f"format {document.get('format')!r}, workflow_id {document.get('workflow_id')!r}")
            history = tuple(HistoryEntry.from_document(entry) for entry in document["history"])
            decision_count = document.get("decision_count", len(history))
            if isinstance(decision_count, bool) or not isinstance(decision_count, int) or decision_count < 0:
                raise ValueError(f"decision_count {decision_count!r}")
            managed_by = document.get("payloads_managed_by")
            if managed_by is not None and not isinstance(managed_by, str):
                raise ValueError(f"payloads_managed_by {managed_by!r}")
            extra = {name: value for name, value in document.items() if name not in _STATE_KEYS}
        except Exception as error:
            raise StoreError(f"ledger of workflow {workflow_id!r} at {where} is unreadable: {error}") from None
        return cls(
            workflow_id=workflow_id,
            current_fingerprint=document["current_fingerprint"],
            history=history,
            decision_count=decision_count,
            payloads_managed_by=managed_by,
            extra=extra,
        )


def _latest_decision_index(state: LedgerState, fingerprint: str) -> int | None:
    """Index of the latest entry that let ``fingerprint`` run (a refusal never did)."""
    for index in range(len(state.history) - 1, -1, -1):
        entry = state.history[index]
        if entry.fingerprint == fingerprint and entry.decision != "raise":
            return index
    return None


_PAYLOAD_SUFFIX = ".pickle"
_ENTRY_FIELD_ORDER = tuple(f.name for f in fields(HistoryEntry) if f.name != "extra")
_ENTRY_FIELDS = frozenset(_ENTRY_FIELD_ORDER)
# workflow_id -> (ledger bytes, the state they hold) of the ledgers this process read or wrote last.
_RECENT_STATES: dict[str, tuple[bytes, LedgerState]] = {}
_RECENT_STATES_KEPT = 64
_STATE_KEYS = frozenset(
    {"format", "workflow_id", "current_fingerprint", "history", "decision_count", "payloads_managed_by"}
)


class Ledger:
    """Read and update one workflow_id's ledger in a store.

    Args:
        store: where the ledger lives.
        workflow_id: an already validated workflow id.
    """

    def __init__(self, *, store: DotflowStore, workflow_id: str) -> None:
        self.store = store
        self.workflow_id = workflow_id
        self.prefix = f"workflows/{workflow_id}/"
        self.ledger_key = f"{self.prefix}ledger.json"

    def payload_key(self, fingerprint: str) -> str:
        return f"{self.prefix}payloads/{fingerprint}{_PAYLOAD_SUFFIX}"

    def checkpoint_prefix(self, fingerprint: str) -> str:
        return f"{self.prefix}checkpoints/{fingerprint}/"

    def decided_key(self, fingerprint: str) -> str:
        return f"{self.prefix}decided/{fingerprint}"

    def was_decided(self, fingerprint: str, *, state: LedgerState | None = None) -> bool:
        """Whether any run has decided ``fingerprint`` (a new input is one that none has)."""
        state = self.read() if state is None else state
        return state.latest_entry(fingerprint) is not None or self.store.exists(self.decided_key(fingerprint))

    def read(self) -> LedgerState:
        """The current state (an empty one before the first run)."""
        data = self.store.read_bytes(self.ledger_key)
        if data is None:
            return LedgerState(workflow_id=self.workflow_id)
        return self._parse(data)

    def _parse(self, data: bytes) -> LedgerState:
        """``LedgerState.from_bytes(data)``, reusing the state last parsed or written if ``data`` is its bytes.

        A run reads its ledger about three times and a full one holds ``MAX_HISTORY`` entries, so
        parsing would cost more than the reads. The state depends on nothing but the bytes (and
        the workflow_id), so equal bytes give an equal state. States are frozen; nothing may
        change their ``extra`` dicts, which a reused state shares.
        """
        remembered = _RECENT_STATES.get(self.workflow_id)
        if remembered is not None and remembered[0] == data:
            return remembered[1]
        state = LedgerState.from_bytes(data, workflow_id=self.workflow_id, where=self._where())
        self._remember(data, state)
        return state

    def _remember(self, data: bytes, state: LedgerState) -> None:
        if self.workflow_id not in _RECENT_STATES and len(_RECENT_STATES) >= _RECENT_STATES_KEPT:
            _RECENT_STATES.pop(next(iter(_RECENT_STATES)))  # the oldest entry: insertion order
        _RECENT_STATES[self.workflow_id] = (data, state)

    def update(self, mutate: Callable[[LedgerState], LedgerState | None]) -> LedgerState:
        """Apply ``mutate`` atomically (compare-and-swap); it may run more than once.

        Returns:
            The state now stored, as a read would return it.
        """
        # The state the last attempt parsed or produced: the one the store now holds, since the
        # compare-and-swap loop ends on the attempt that wrote (or left the key as it was).
        latest = LedgerState(workflow_id=self.workflow_id)

        def apply(current: bytes | None) -> bytes | None:
            nonlocal latest
            latest = LedgerState(workflow_id=self.workflow_id) if current is None else self._parse(current)
            changed = mutate(latest)
            if changed is None:
                return None
            if len(changed.history) > MAX_HISTORY:
                changed = replace(changed, history=changed.history[-MAX_HISTORY:])
            latest = changed
            return changed.to_bytes()

        data = self.store.update(self.ledger_key, apply)
        if data is not None:
            self._remember(data, latest)
        return latest

    def record_decision(
        self,
        *,
        expected_current: str | None,
        fingerprint: str,
        decision: str,
        run_id: str | None,
        summary: str | None = None,
    ) -> bool:
        """Move the current fingerprint (unless ``decision`` is ``raise``) and log the decision.

        Returns ``False``, writing nothing, if the current fingerprint is no longer
        ``expected_current``: the caller decided on stale state and must decide again.
        """
        stale = False

        def mutate(state: LedgerState) -> LedgerState | None:
            nonlocal stale
            stale = state.current_fingerprint != expected_current
            if stale:
                return None
            now = _now()
            if decision == "unchanged":
                # The input did not change: count the run on the entry that made it current, even
                # when a refusal was recorded after it, instead of adding a second "current" row.
                index = _latest_decision_index(state, fingerprint)
                if index is not None:
                    made_current = state.history[index]
                    entry = replace(
                        made_current, outcome="running", run_id=run_id, updated_at=now, runs=made_current.runs + 1
                    )
                    return replace(state, history=state.history[:index] + (entry,) + state.history[index + 1 :])
            entry = HistoryEntry(
                fingerprint=fingerprint,
                decision=decision,
                first_seen=now,
                outcome="refused" if decision == "raise" else "running",
                run_id=run_id,
                previous_fingerprint=state.current_fingerprint,
                updated_at=now,
                summary=summary,
            )
            current = state.current_fingerprint if decision == "raise" else fingerprint
            return replace(
                state,
                current_fingerprint=current,
                history=state.history + (entry,),
                decision_count=state.decision_count + 1,
            )

        self.update(mutate)
        if not stale and not self.store.exists(self.decided_key(fingerprint)):
            # Written after the ledger, so a marker never claims a decision that was not made.
            self.store.write_bytes_if(self.decided_key(fingerprint), _now().encode(), expected_version=None)
        return not stale

    def record_outcome(self, *, fingerprint: str, outcome: str) -> LedgerState:
        """Set the outcome of the latest entry for ``fingerprint``; return the resulting state."""

        def mutate(state: LedgerState) -> LedgerState | None:
            index = _latest_decision_index(state, fingerprint)
            if index is None:
                return None
            updated = replace(state.history[index], outcome=outcome, updated_at=_now())
            return replace(state, history=state.history[:index] + (updated,) + state.history[index + 1 :])

        return self.update(mutate)

    def mark_sensor_managed(self, *, managed: bool = True) -> LedgerState:
        """Record that a sensor manages this workflow's stored payloads (or, ``managed=False``, no longer).

        A sensor calls it before it stores a payload and requests a run. From then on runs
        prune only checkpoints beyond retention and never a stored payload: a payload whose
        run is still queued must not vanish under it, and only the sensor sees the queue (it
        prunes with ``DotflowWorkflow.prune``). Writes nothing when the flag is already so.

        Returns:
            The resulting state.
        """
        owner = SENSOR_MANAGED if managed else None

        def mutate(state: LedgerState) -> LedgerState | None:
            return None if state.payloads_managed_by == owner else replace(state, payloads_managed_by=owner)

        return self.update(mutate)

    def stored_payload_fingerprints(self) -> list[str]:
        """Every fingerprint with a stored payload, sorted."""
        root = f"{self.prefix}payloads/"
        return sorted(
            key[len(root) : -len(_PAYLOAD_SUFFIX)]
            for key in self.store.list_keys(root)
            if key.endswith(_PAYLOAD_SUFFIX) and "/" not in key[len(root) :]
        )

    def checkpointed_fingerprints(self) -> list[str]:
        """Every fingerprint with at least one checkpoint, sorted."""
        root = f"{self.prefix}checkpoints/"
        return sorted({key[len(root) :].split("/", 1)[0] for key in self.store.list_keys(root)})

    def put_payload(self, *, fingerprint: str, payload: Any, repair: bool = False) -> bool:
        """Store the payload under its fingerprint; returns ``False`` if it was already there.

        Content-addressed, so the first payload stored for a fingerprint is kept (payloads that
        differ only in ignored paths share a fingerprint). With ``repair`` (a payload submitted
        again), a stored copy that is visibly broken (truncated: not a whole pickle) is replaced,
        so runs by key work again; the check reads the stored bytes but unpickles nothing.

        Raises:
            ValueError: the payload cannot be pickled (naming the workflow, the fingerprint and why).
        """
        key = self.payload_key(fingerprint)
        if not repair:
            if self.store.exists(key):
                return False
        else:
            # One read: the bytes say both whether a copy is stored and whether it is whole.
            stored = self.store.read_bytes(key)
            if stored is not None:
                if _whole_pickle(stored):
                    return False
                _, version = self.store.read_versioned(key)  # a broken copy: the CAS needs its version
                logger.warning(
                    "payload %s of workflow %r in %s is truncated; replacing it with the payload submitted again",
                    fingerprint, self.workflow_id, self.store.location,
                )
                return self.store.write_bytes_if(key, self._pickled(fingerprint, payload), expected_version=version)
        # IfNoneMatch-style write: racing writers of one fingerprint store equivalent payloads.
        return self.store.write_bytes_if(key, self._pickled(fingerprint, payload), expected_version=None)

    def _pickled(self, fingerprint: str, payload: Any) -> bytes:
        try:
            return pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as error:  # a __reduce__ of the user's can raise anything
            raise ValueError(
                f"workflow {self.workflow_id!r}: the payload with fingerprint {fingerprint} cannot be stored "
                f"(pickled): {type(error).__name__}: {error}"
            ) from error

    def get_payload(self, fingerprint: str) -> Any:
        """The payload stored for ``fingerprint``; ``UnknownFingerprintError`` if there is none."""
        data = self.store.read_bytes(self.payload_key(fingerprint))
        if data is None:
            raise UnknownFingerprintError(
                workflow_id=self.workflow_id, fingerprint=fingerprint, location=self.store.location
            )
        try:
            return pickle.loads(data)
        except Exception as error:
            raise StoreError(
                f"payload {fingerprint} of workflow {self.workflow_id!r} in {self.store.location} "
                f"is unreadable: {type(error).__name__}: {error}"
            ) from None

    def _where(self) -> str:
        return f"{self.store.location} key {self.ledger_key}"
