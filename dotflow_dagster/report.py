"""What one run did: the report returned by ``DotflowWorkflow.run``."""

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["RunReport", "StepReport"]

StepStatus = Literal["executed", "resumed", "failed", "not_run"]


@dataclass(frozen=True)
class StepReport:
    """One step of one run.

    Attributes:
        name: the step function's name.
        key: the step's identity in the checkpoint store (position, name, and the steps before it).
        status: ``executed``, ``resumed`` (restored from a checkpoint), ``failed`` or ``not_run``.
        duration: seconds spent executing (0.0 when resumed or not run).
        attempts: how many times dotflow ran it (retries included).
        error: the error text when it failed.
        reason: why it ran or was restored, e.g. ``"first input"``, ``"reads unchanged"`` or
            ``"root['rate'] changed"`` (empty when it did not run).
    """

    name: str
    key: str
    status: StepStatus
    duration: float = 0.0
    attempts: int = 0
    error: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class RunReport:
    """The result of running a workflow for one payload.

    Attributes:
        workflow_id: the workflow's id.
        fingerprint: the payload's fingerprint (the Dagster partition key).
        previous_fingerprint: the ledger's current fingerprint before this run (``None`` for the
            first payload; equal to ``fingerprint`` when ``unchanged``).
        decision: ``new``, ``unchanged``, ``reset``, ``reuse`` or ``incremental``; ``skipped`` when a run that is
            not an arrival (a backfill or retry in Dagster) met a superseded or refused
            fingerprint: it executed nothing (``skip_reason`` says why), and its steps show as
            ``resumed`` where the fingerprint's own checkpoints are still kept.
        steps: one ``StepReport`` per step, in order.
        outputs: ``{step name: result}`` for every completed step, resumed or executed.
        payload: the payload with ``redact_paths`` replaced by ``'***'``.
        changes: readable diff lines against ``previous_fingerprint``'s payload (redacted).
        run_id: the run's id (Dagster's run id inside Dagster).
        failed_step: the step that failed, or ``None``.
        error: the failed step's error text, or ``None``.
        traceback: the failed step's traceback, or ``None``.
        skip_reason: why nothing ran, when ``decision`` is ``skipped``.
    """

    workflow_id: str
    fingerprint: str
    previous_fingerprint: str | None
    decision: str
    steps: tuple[StepReport, ...]
    outputs: dict[str, Any]
    payload: Any
    changes: tuple[str, ...] = field(default=())
    run_id: str | None = None
    failed_step: str | None = None
    error: str | None = None
    traceback: str | None = None
    skip_reason: str | None = None

    @property
    def skipped(self) -> bool:
        """Whether the run executed nothing because its input is not the workflow's current one."""
        return self.decision == "skipped"

    @property
    def ok(self) -> bool:
        """Whether every step completed."""
        return self.failed_step is None

    @property
    def complete(self) -> bool:
        """Whether every step has a result, executed now or restored from its checkpoint."""
        return all(step.status in ("executed", "resumed") for step in self.steps)

    @property
    def executed(self) -> list[str]:
        """Names of the steps this run executed successfully, in order."""
        return [step.name for step in self.steps if step.status == "executed"]

    @property
    def resumed(self) -> list[str]:
        """Names of the steps restored from checkpoints, in order."""
        return [step.name for step in self.steps if step.status == "resumed"]

    @property
    def result(self) -> Any:
        """The last step's result (``None`` if the run did not reach it)."""
        if not self.ok or not self.complete or not self.steps:
            return None
        return self.outputs.get(self.steps[-1].name)

    @property
    def diff_text(self) -> str:
        """The diff against the previous fingerprint's payload, one change per line."""
        return "\n".join(self.changes)
