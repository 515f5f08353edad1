"""``payload_change_sensor``: payloads that arrive in a source become fingerprint partitions and runs.

Each tick lists the source, reads only what changed since the last tick, and for each payload
compares its fingerprint with the ledger's current one, the ledger's latest decision, and the
last one this sensor requested for that workflow. A fingerprint that is none of them is stored,
registered as a partition and requested as a run; the run itself decides by the policy (a
changed payload under ``raise`` gets a run that fails at once with the diff, visible in the UI).
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dagster import (
    AssetKey,
    AssetSelection,
    DagsterRunStatus,
    DefaultSensorStatus,
    DynamicPartitionsDefinition,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    define_asset_job,
    sensor,
)

from dotflow_dagster.errors import InputChangedError, StoreError
from dotflow_dagster.execution import asset_key_for, partitions_def_name_for
from dotflow_dagster.fingerprint import FingerprintError
from dotflow_dagster.ledger import LedgerState
from dotflow_dagster.metadata import TAG_ARRIVAL, TAG_FINGERPRINT, TAG_WORKFLOW_ID
from dotflow_dagster.resource import DotflowResource
from dotflow_dagster.sensor_state import RequestedRun, SensorState
from dotflow_dagster.sensor_state import state_key as state_key_for
from dotflow_dagster.sources.base import ArrivedPayload, BadPayload, PayloadSource
from dotflow_dagster.stores import DotflowStore, validate_key
from dotflow_dagster.workflow import DotflowWorkflow

__all__ = ["TAG_EXPECTED_DECISION", "TAG_PREVIOUS_FINGERPRINT", "arrivals_job_name_for", "payload_change_sensor"]

TAG_PREVIOUS_FINGERPRINT = "dotflow/previous_fingerprint"
TAG_EXPECTED_DECISION = "dotflow/expected_decision"

# Runs that may still execute: their fingerprint's payload and partition must not be pruned.
_UNFINISHED = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


@dataclass
class _Tick:
    """What one evaluation collects before it is returned as a ``SensorResult``."""

    run_requests: list[RunRequest] = field(default_factory=list)
    partitions_to_add: dict[str, list[str]] = field(default_factory=dict)
    partitions_to_delete: dict[str, list[str]] = field(default_factory=dict)
    requested_now: dict[str, set[str]] = field(default_factory=dict)
    unfinished: dict[str, set[str]] | None = None  # queried at most once per tick, when needed

    def pending(self, context: SensorEvaluationContext, workflow_id: str) -> set[str]:
        """Fingerprints of the workflow that a run has yet to finish: queued, running, or requested now."""
        if self.unfinished is None:
            self.unfinished = _unfinished_fingerprints(context)
        return self.unfinished.get(workflow_id, set()) | self.requested_now.get(workflow_id, set())


def payload_change_sensor(
    workflows: Sequence[DotflowWorkflow],
    *,
    source: PayloadSource,
    name: str | None = None,
    minimum_interval_seconds: int = 30,
    default_status: DefaultSensorStatus = DefaultSensorStatus.STOPPED,
    max_payload_bytes: int = 10 * 2**20,
    run_tags: Mapping[str, str] | None = None,
) -> SensorDefinition:
    """Build a sensor that turns payloads arriving in ``source`` into partitions and runs.

    For each payload the workflow would not end on without a new run (it is neither the last
    input this sensor requested, while that run has yet to decide, nor, when no run of another
    input is queued or running, the ledger's current fingerprint or its latest decision), the sensor
    stores the payload, registers the fingerprint as a partition of the workflow's
    ``dotflow_asset`` and requests a run of it with ``run_key=f"{workflow_id}:{fp}:{generation}"``
    (``generation``: one more than the ledger's decisions plus this sensor's requests since the
    last decision, so a return to an earlier payload gets a fresh run). Runs are tagged
    ``dotflow/arrival=sensor`` (an arrival: it may make its input current), ``dotflow/workflow_id``,
    ``dotflow/fingerprint``, ``dotflow/previous_fingerprint`` and ``dotflow/expected_decision``.
    The run's own decision stays the authority: if the ledger moved meanwhile, it decides again.

    Bad items (invalid JSON, an unfingerprintable payload, a name that is no workflow_id, an
    unknown workflow_id, a payload over ``max_payload_bytes``) are logged once as warnings, naming
    the item and the reason, and read again only when they change. Each tick also prunes, per
    workflow it has requested runs for, the partitions and payloads beyond the workflow's
    ``retention`` (never the current one, one being requested, or one with a queued or running
    run), and from then on the workflow's runs leave payloads to the sensor.

    The sensor's own state lives at ``sensors/<name>/state.json`` in the store. If it cannot be
    read (truncated, or changed by hand), the tick logs an error naming it and starts from an
    empty state: every item is read again once, and payloads already known are dropped by
    fingerprint or requested again under the run key they had, which Dagster skips.

    Args:
        workflows: the workflows this sensor feeds; each needs its ``dotflow_asset`` (default key)
            in the same code location.
        source: where payloads arrive, e.g. ``DirectorySource("inbox")``.
        name: the sensor's name; defaults to ``dotflow_payload_sensor``.
        minimum_interval_seconds: seconds between ticks.
        default_status: whether it runs as soon as it is loaded.
        max_payload_bytes: larger payloads are refused as bad items, never read whole.
        run_tags: extra tags on every run it requests, e.g. ``{"dagster/max_retries": "2"}`` so
            the daemon's run retries pick a run up again after a lost worker. The ``dotflow/``
            tags are the sensor's own: a ``dotflow/`` key here raises ``ValueError``.

    Example:
        >>> import tempfile
        >>> from dotflow import action
        >>> from dotflow_dagster import DirectorySource, DotflowWorkflow, payload_change_sensor
        >>> @action
        ... def extract(initial_context):
        ...     return initial_context.storage
        >>> orders = DotflowWorkflow("orders", steps=[extract])
        >>> payload_change_sensor([orders], source=DirectorySource(tempfile.mkdtemp())).name
        'dotflow_payload_sensor'
    """
    workflows = list(workflows)
    by_id = {workflow.workflow_id: workflow for workflow in workflows}
    if len(by_id) != len(workflows):
        raise ValueError("payload_change_sensor: two workflows share one workflow_id")
    if not workflows:
        raise ValueError("payload_change_sensor needs at least one workflow")
    sensor_name = name or "dotflow_payload_sensor"
    validate_key(sensor_name)
    extra_tags = dict(run_tags or {})
    for tag, value in extra_tags.items():
        if not isinstance(tag, str) or not isinstance(value, str):
            raise TypeError(
                f"payload_change_sensor {sensor_name!r}: run_tags must map strings to strings, got {tag!r}: {value!r}"
            )
        if tag.startswith("dotflow/"):
            raise ValueError(
                f"payload_change_sensor {sensor_name!r}: run tag {tag!r} is refused: the dotflow/ tags say why a run "
                "started (an arrival, which fingerprint) and are set by the sensor itself"
            )
    asset_keys = {workflow.workflow_id: asset_key_for(workflow) for workflow in workflows}
    # One asset job per workflow: a run request names its job, because one job cannot span
    # several dynamic partitions definitions.
    jobs = {
        workflow_id: define_asset_job(
            name=arrivals_job_name_for(key),
            selection=AssetSelection.assets(key),
            description=f"Runs of {key.to_user_string()} requested by sensor {sensor_name} for arriving payloads.",
        )
        for workflow_id, key in asset_keys.items()
    }
    state_key = state_key_for(sensor_name)

    @sensor(
        name=sensor_name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        jobs=list(jobs.values()),
        description=f"Watches {source.key} for payloads of {', '.join(sorted(by_id))}; new fingerprints become "
        "partitions and runs.",
    )
    def _payload_change_sensor(context: SensorEvaluationContext, dotflow: DotflowResource) -> SensorResult:
        store = dotflow.get_store()
        state = _load_state(store, state_key, context=context, sensor_name=sensor_name, source=source)
        tick = _Tick()
        scan = source.scan(known=state.versions, max_payload_bytes=max_payload_bytes)
        state.remember = scan.present is not None
        stored = []  # items whose payload is durably stored: a queue may delete them
        for item in scan.items:
            if _handle(
                item, context=context, store=store, state=state, tick=tick, by_id=by_id, jobs=jobs, run_tags=extra_tags
            ):
                stored.append(item)
        if scan.present is not None:
            for gone in set(state.versions) - scan.present:
                del state.versions[gone]
                state.dirty = True
        if state.pending & by_id.keys():
            unfinished = tick.unfinished if tick.unfinished is not None else _unfinished_fingerprints(context)
            for workflow_id in sorted(state.pending & by_id.keys()):
                _prune(
                    by_id[workflow_id],
                    context=context,
                    store=store,
                    state=state,
                    tick=tick,
                    unfinished=unfinished.get(workflow_id, set()),
                )
        if tick.run_requests:
            shown = ", ".join(request.run_key for request in tick.run_requests[:10])
            more = len(tick.run_requests) - 10
            context.log.info(f"requested {len(tick.run_requests)} run(s): {shown}" + (f" and {more} more" if more > 0 else ""))
        if state.dirty:
            store.write_bytes(state_key, state.to_bytes())
        try:
            source.acknowledge(stored)
        except Exception as error:  # the state is written: this tick's run requests must still be returned
            context.log.error(f"{source.key}: acknowledging {len(stored)} stored item(s) failed; they will be seen "
                              f"again and dropped by fingerprint: {error}")
        return SensorResult(
            run_requests=tick.run_requests,
            dynamic_partitions_requests=[
                *(DynamicPartitionsDefinition(name=n).build_add_request(keys) for n, keys in tick.partitions_to_add.items()),
                *(DynamicPartitionsDefinition(name=n).build_delete_request(keys) for n, keys in tick.partitions_to_delete.items()),
            ],
            cursor=f"{len(state.versions)} locations, {len(state.pending)} workflows pending",
        )

    return _payload_change_sensor


def _load_state(
    store: DotflowStore, state_key: str, *, context: SensorEvaluationContext, sensor_name: str, source: PayloadSource
) -> SensorState:
    """The stored state, or an empty one (logged as an error) when the stored one cannot be read.

    Starting afresh is safe, so a damaged state never stops the sensor: every item in the source
    is read again once, a payload already decided or requested is dropped by fingerprint (the
    ledger's current and latest ones) or requested again under the run key it had, which
    Dagster skips, and the next write replaces the damaged document.
    """
    data = store.read_bytes(state_key)
    if data is None:
        return SensorState()
    try:
        return SensorState.from_bytes(data)
    except ValueError as error:
        context.log.error(
            f"sensor {sensor_name}: its state {state_key} in {store.location} cannot be read ({error}); starting "
            f"from an empty state: every item in {source.key} is read again once and payloads already known are "
            "dropped by fingerprint"
        )
        return SensorState(dirty=True)


def arrivals_job_name_for(asset_key: AssetKey) -> str:
    """The asset job the sensor launches a workflow's runs in: ``<asset name>_arrivals``."""
    return f"{asset_key.path[-1]}_arrivals"


def _handle(
    item: ArrivedPayload | BadPayload,
    *,
    context: SensorEvaluationContext,
    store: DotflowStore,
    state: SensorState,
    tick: _Tick,
    by_id: dict[str, DotflowWorkflow],
    jobs: dict[str, Any],
    run_tags: Mapping[str, str],
) -> bool:
    """Handle one item; return whether its payload is durably accounted for.

    True only for a payload that is now stored (requested) or was already known: a queue may
    then delete its message. A bad or conflicting item is logged, recorded as seen, and returns
    False, so a queue leaves it for its redrive (dead-letter) queue; a store failure returns
    False and is not recorded, so the next tick tries again.
    """
    if isinstance(item, BadPayload):
        context.log.warning(f"payload at {item.location} is skipped: {item.reason}")
        state.handled(item.location, item.version)
        return False
    workflow = by_id.get(item.workflow_id)
    if workflow is None:
        context.log.warning(
            f"payload at {item.location} is skipped: no workflow {item.workflow_id!r} in this sensor "
            f"(it feeds {', '.join(sorted(by_id))})"
        )
        state.handled(item.location, item.version)
        return False
    try:
        fingerprint = workflow.fingerprint(item.payload)
    except (FingerprintError, ValueError) as error:
        context.log.warning(f"payload at {item.location} for workflow {workflow.workflow_id!r} is skipped: {error}")
        state.handled(item.location, item.version)
        return False
    try:
        request = _request_for(
            workflow,
            item,
            fingerprint=fingerprint,
            store=store,
            state=state,
            job_name=jobs[workflow.workflow_id].name,
            run_tags=run_tags,
            pending=lambda: tick.pending(context, workflow.workflow_id),
        )
    except InputChangedError as error:
        # A conflicting payload was stored for this identity between the check and the store.
        request = f"payload at {item.location}: {error}; no run requested"
    except StoreError as error:
        # The store is the one thing a later tick may find healthy again: do not mark it handled.
        context.log.error(f"payload at {item.location} for workflow {workflow.workflow_id!r}: {error}; will retry")
        return False
    state.handled(item.location, item.version)
    if request is None:
        return True
    if isinstance(request, str):
        context.log.warning(request)
        return False
    partitions_name = partitions_def_name_for(asset_key_for(workflow).path[-1])
    adding = tick.partitions_to_add.get(partitions_name, ())
    if fingerprint not in adding and not context.instance.has_dynamic_partition(partitions_name, fingerprint):
        tick.partitions_to_add.setdefault(partitions_name, []).append(fingerprint)
    tick.run_requests.append(request)
    tick.requested_now.setdefault(workflow.workflow_id, set()).add(fingerprint)
    state.pending.add(workflow.workflow_id)
    state.dirty = True
    return True


def _request_for(
    workflow: DotflowWorkflow,
    item: ArrivedPayload,
    *,
    fingerprint: str,
    store: DotflowStore,
    state: SensorState,
    job_name: str,
    run_tags: Mapping[str, str],
    pending: Callable[[], set[str]],
) -> RunRequest | str | None:
    """The run request for a new fingerprint, a warning for a refused one, ``None`` for a known one."""
    ledger = workflow.ledger(store=store)
    ledger_state = ledger.read()
    last = state.requested.get(workflow.workflow_id)
    # Checked first: a payload whose identity is the current one but whose validated values
    # differ must never be dropped silently as "unchanged".
    conflicts = workflow.validation_conflicts(item.payload, store=store)
    if not conflicts and _lands_anyway(fingerprint, ledger_state=ledger_state, last=last, pending=pending):
        return None
    if conflicts:
        # The partition would run the payload stored for this identity, not this one.
        return (
            f"payload at {item.location} for workflow {workflow.workflow_id!r} has the identity {fingerprint} of a "
            f"stored payload but differs at {', '.join(conflicts)}; no run requested (one id must not silently "
            "carry another payload): give it its own identity, or remove the stored one"
        )
    ledger.mark_sensor_managed()
    workflow.put_payload(item.payload, store=store)
    decisions = ledger_state.decision_count
    issued = last.issued if last is not None and last.decisions == decisions else 0
    generation = decisions + issued + 1
    state.requested[workflow.workflow_id] = RequestedRun(fingerprint=fingerprint, decisions=decisions, issued=issued + 1)
    return RunRequest(
        run_key=f"{workflow.workflow_id}:{fingerprint}:{generation}",
        partition_key=fingerprint,
        job_name=job_name,
        tags={
            **run_tags,
            TAG_ARRIVAL: "sensor",
            TAG_WORKFLOW_ID: workflow.workflow_id,
            TAG_FINGERPRINT: fingerprint,
            TAG_PREVIOUS_FINGERPRINT: ledger_state.current_fingerprint or "",
            TAG_EXPECTED_DECISION: _expected_decision(workflow, ledger_state),
        },
    )


def _lands_anyway(
    fingerprint: str, *, ledger_state: LedgerState, last: RequestedRun | None, pending: Callable[[], set[str]]
) -> bool:
    """Whether the workflow ends on ``fingerprint`` without a new run: then the delivery is a duplicate.

    The last input this sensor requested, while its run has yet to decide, is where the workflow
    ends. Otherwise, while runs of other inputs still wait or run, a delivery equal to the
    ledger's current input is the latest change and must run again after them (runs of one
    workflow leave the queue in order). With nothing else pending, the workflow ends on the
    ledger's current input; the latest decision counts too, so a refused input delivered again
    is not requested again.
    """
    latest = ledger_state.history[-1].fingerprint if ledger_state.history else None
    is_last = last is not None and last.fingerprint == fingerprint
    if not is_last and fingerprint not in (ledger_state.current_fingerprint, latest):
        return False  # a new input: no need to look at the runs
    if is_last and (ledger_state.decision_count == last.decisions or fingerprint in pending()):
        return True
    if pending() - {fingerprint}:
        return False
    return fingerprint in (ledger_state.current_fingerprint, latest)


def _expected_decision(workflow: DotflowWorkflow, ledger_state: LedgerState) -> str:
    if ledger_state.current_fingerprint is None:
        return "new"
    policy = workflow.on_input_change
    return policy if isinstance(policy, str) else "hook"


def _unfinished_fingerprints(context: SensorEvaluationContext) -> dict[str, set[str]]:
    """Fingerprints with a queued or running run, by workflow_id: one query per tick."""
    unfinished: dict[str, set[str]] = {}
    for run in context.instance.get_runs(RunsFilter(statuses=_UNFINISHED)):
        workflow_id, fingerprint = run.tags.get(TAG_WORKFLOW_ID), run.tags.get(TAG_FINGERPRINT)
        if workflow_id and fingerprint:
            unfinished.setdefault(workflow_id, set()).add(fingerprint)
    return unfinished


def _prune(
    workflow: DotflowWorkflow,
    *,
    context: SensorEvaluationContext,
    store: DotflowStore,
    state: SensorState,
    tick: _Tick,
    unfinished: set[str],
) -> None:
    """Prune partitions and payloads beyond retention for a workflow this sensor has fed."""
    last = state.requested.get(workflow.workflow_id)
    keep = unfinished | tick.requested_now.get(workflow.workflow_id, set())
    if last is not None:
        keep.add(last.fingerprint)  # requested, perhaps not yet a run the instance knows
    try:
        pruned = set(workflow.prune(store=store, keep=keep))
        retained = set(workflow.retained_fingerprints(store=store)) | keep
    except StoreError as error:
        context.log.error(f"workflow {workflow.workflow_id!r}: retention skipped this tick: {error}")
        return
    partitions_name = partitions_def_name_for(asset_key_for(workflow).path[-1])
    ledger = workflow.ledger(store=store)
    ledger_state = ledger.read()
    stale = [
        key
        for key in context.instance.get_dynamic_partitions(partitions_name)
        if key not in retained and (key in pruned or ledger.was_decided(key, state=ledger_state))
    ]
    if stale:
        tick.partitions_to_delete.setdefault(partitions_name, []).extend(stale)
        context.log.info(f"workflow {workflow.workflow_id}: pruned {len(stale)} partition(s) beyond retention")
    settled = not unfinished and (last is None or ledger.was_decided(last.fingerprint, state=ledger_state))
    if settled and workflow.workflow_id not in tick.requested_now:
        state.pending.discard(workflow.workflow_id)
        state.dirty = True

