"""Retention: which fingerprints keep their checkpoints and payloads, and pruning the rest.

A workflow keeps its current fingerprint and the ``retention`` most recent earlier decisions (a
refusal counts, so a refused input stays resettable while among them). After each run,
everything older loses its checkpoints and, while no sensor manages the workflow's payloads,
its stored payload too (only for fingerprints some run has decided: an undecided payload may
belong to a run still queued). A sensor, which alone sees the queue, prunes payloads itself
with ``prune_fingerprints`` and a ``keep`` set. The ``decided/<fingerprint>`` markers are never
pruned: an old input must never count as new again.

A fingerprint's payload is stored before any run decides it and deleted only after its
checkpoints, so every fingerprint with checkpoints has a stored payload. A run therefore finds
what it may prune by listing the payloads (one object per fingerprint) rather than every
checkpoint (one per step and fingerprint): listing a key costs a read of its expiry header on
``LocalStore`` and a ranged GET on ``S3Store``. ``prune_fingerprints`` and
``fingerprints_to_prune`` still list every checkpoint, so a sensor's pruning also removes
checkpoints a store holds without a payload (e.g. written by a version that stored none).
"""

from collections.abc import Iterable
from typing import TYPE_CHECKING

from dotflow_dagster.ledger import Ledger, LedgerState
from dotflow_dagster.stores import DotflowStore

if TYPE_CHECKING:
    from dotflow_dagster.workflow import DotflowWorkflow

__all__ = ["apply_retention", "fingerprints_to_prune", "prune_fingerprints", "retained_fingerprints", "retained_in"]


def retained_fingerprints(workflow: "DotflowWorkflow", *, store: DotflowStore) -> frozenset[str]:
    """The fingerprints retention keeps: the current one and the ``retention`` most recent earlier decisions.

    Decisions are ordered by when they were made (an ``unchanged`` run does not make one), and a
    refusal counts: a refused fingerprint stays resettable while it is among the ``retention``
    most recent decisions.
    """
    return retained_in(workflow.ledger(store=store).read(), retention=workflow.retention)


def retained_in(state: LedgerState, *, retention: int) -> frozenset[str]:
    """The fingerprints retention keeps in ``state`` (see ``retained_fingerprints``)."""
    current = state.current_fingerprint
    earlier = [fingerprint for fingerprint in state.fingerprints() if fingerprint != current][:retention]
    return frozenset(earlier + ([current] if current is not None else []))


def fingerprints_to_prune(
    workflow: "DotflowWorkflow", *, store: DotflowStore, keep: Iterable[str] = ()
) -> list[str]:
    """What ``prune_fingerprints`` would prune, without deleting anything; sorted.

    Every fingerprint with a stored payload or checkpoints that is neither retained (see
    ``retained_fingerprints``) nor in ``keep``, decided or not.
    """
    ledger = workflow.ledger(store=store)
    spared = retained_in(ledger.read(), retention=workflow.retention) | _fingerprint_set(keep)
    present = set(ledger.stored_payload_fingerprints()) | set(ledger.checkpointed_fingerprints())
    return sorted(present - spared)


def prune_fingerprints(
    workflow: "DotflowWorkflow", *, store: DotflowStore, keep: Iterable[str] = ()
) -> list[str]:
    """Delete the stored payload and checkpoints of every fingerprint beyond retention; return them.

    Meant for a sensor, which alone sees the runs still queued: ``keep`` must name every
    fingerprint a run may still need (requested this tick, queued, in progress). Anything else
    that is not retained (the current fingerprint and the ``retention`` most recent earlier
    decisions) loses its payload and checkpoints, including payloads no run has decided yet,
    so a pruned fingerprint can no longer run by key (``UnknownFingerprintError``). The
    ``decided/<fingerprint>`` markers stay: a pruned input never counts as new again. Takes no
    run lock; deletes are idempotent, so it may race a run's own retention.

    Args:
        workflow: the workflow whose fingerprints to prune.
        store: where its ledger, payloads and checkpoints live.
        keep: fingerprints to spare on top of the retained ones.

    Returns:
        The pruned fingerprints, sorted (the sensor deletes their partitions).
    """
    ledger = workflow.ledger(store=store)
    pruned = fingerprints_to_prune(workflow, store=store, keep=keep)
    for fingerprint in pruned:
        # Checkpoints first: a payload outlives its checkpoints, so runs find them through it.
        store.delete_prefix(ledger.checkpoint_prefix(fingerprint))
        store.delete(ledger.payload_key(fingerprint))
    return pruned


def _fingerprint_set(keep: Iterable[str]) -> frozenset[str]:
    if isinstance(keep, str):
        raise TypeError(f"keep must be a collection of fingerprints, not the single string {keep!r}")
    return frozenset(keep)


def apply_retention(
    workflow: "DotflowWorkflow", *, state: LedgerState, ledger: Ledger, store: DotflowStore
) -> list[str]:
    """Prune, after a run, what lies beyond retention; return the fingerprints touched.

    Checkpoints of every fingerprint that is not retained are deleted. Stored payloads are
    deleted too, but only of fingerprints some run has decided (an undecided payload may belong
    to a run that is still queued) and only while no sensor manages the workflow's payloads
    (``LedgerState.payloads_managed_by``): a sensor prunes them itself, knowing its queue.
    """
    keep = retained_in(state, retention=workflow.retention)
    pruned: set[str] = set()
    # Every fingerprint with checkpoints has a stored payload (see the module's docstring), so
    # the payloads name every candidate; one listing of them replaces a listing of every checkpoint.
    for fingerprint in ledger.stored_payload_fingerprints():
        if fingerprint in keep:
            continue
        if store.delete_prefix(ledger.checkpoint_prefix(fingerprint)):
            pruned.add(fingerprint)
        # Only after its checkpoints are gone, so a crash in between leaves the payload that
        # leads the next run to them.
        if state.payloads_managed_by is None and ledger.was_decided(fingerprint, state=state):
            store.delete(ledger.payload_key(fingerprint))
            pruned.add(fingerprint)
    return sorted(pruned)
