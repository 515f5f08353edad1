"""Metadata and tags under namespaced ``dotflow/...`` keys: what the Dagster UI shows of a run.

Every materialization, failure and skip carries ``dotflow/current_fingerprint`` and a
``dotflow/history`` table, so an operator looking at any partition sees which input is current
and when each one arrived, without opening every 64-hex partition key.
"""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dagster import MetadataValue

from dotflow_dagster.display import to_display
from dotflow_dagster.ledger import LedgerState
from dotflow_dagster.report import RunReport

if TYPE_CHECKING:
    from dotflow_dagster.errors import InputChangedError

__all__ = [
    "METADATA_KEYS",
    "TAG_ARRIVAL",
    "TAG_FINGERPRINT",
    "TAG_ON_INPUT_CHANGE",
    "TAG_RETRY_OF",
    "TAG_WORKFLOW_ID",
    "failure_metadata",
    "history_table",
    "refusal_metadata",
    "report_metadata",
    "skip_metadata",
]

TAG_WORKFLOW_ID = "dotflow/workflow_id"
TAG_FINGERPRINT = "dotflow/fingerprint"
TAG_ON_INPUT_CHANGE = "dotflow/on_input_change"
# Set on runs for a payload that has just arrived (the submit job's, a sensor's): such a run may
# make its input current. Its value names the way in, e.g. "submit" or "sensor".
TAG_ARRIVAL = "dotflow/arrival"
# Set by the submit job on the asset run it starts when the submit run is itself a retry.
TAG_RETRY_OF = "dotflow/retry_of"

METADATA_KEYS = (
    "dotflow/workflow_id",
    "dotflow/fingerprint",
    "dotflow/current_fingerprint",
    "dotflow/previous_fingerprint",
    "dotflow/decision",
    "dotflow/steps_executed",
    "dotflow/steps_resumed",
    "dotflow/steps",
    "dotflow/payload",
    "dotflow/diff",
    "dotflow/history",
    "dotflow/skipped",
)

# The UI renders markdown tables well up to a few dozen rows; older entries stay in the ledger.
HISTORY_ROWS = 20


def _cell(text: str | None, limit: int = 120) -> str:
    text = (text or "").replace("\n", " ").replace("|", "\\|")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def history_table(state: LedgerState, *, highlight: str | None = None, rows: int = HISTORY_ROWS) -> str:
    """The ledger's decisions as a markdown table, oldest first, the current input marked.

    Args:
        state: the workflow's ledger state.
        highlight: a fingerprint to mark as "this partition".
        rows: how many of the most recent decisions to show.
    """
    if not state.history:
        return "_No input has been decided yet._"
    lines = [
        "| first seen (UTC) | fingerprint | decision | outcome | runs | what changed |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    shown = state.history[-rows:]
    for entry in shown:
        short = f"`{entry.fingerprint[:12]}`"
        marks = []
        if entry.fingerprint == state.current_fingerprint and entry.decision != "raise":
            marks.append("**current**")
        if highlight is not None and entry.fingerprint == highlight:
            marks.append("this partition")
        label = short + (" " + ", ".join(marks) if marks else "")
        lines.append(
            f"| {entry.first_seen[:19].replace('T', ' ')} | {label} | {entry.decision} | {_cell(entry.outcome)} "
            f"| {entry.runs} | {_cell(entry.summary)} |"
        )
    hidden = len(state.history) - len(shown)
    if hidden:
        lines.append(f"\n_{hidden} earlier decisions are kept in the ledger and not shown._")
    return "\n".join(lines)


def _json(value: Any) -> MetadataValue:
    rendered = to_display(value)
    return MetadataValue.json(rendered if isinstance(rendered, dict | list) else {"value": rendered})


def steps_table(report: RunReport) -> str:
    """The run's steps as a markdown table: status, why it ran or was reused, timing, error."""
    rows = [
        "| step | status | why | duration (s) | attempts | error |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for step in report.steps:
        rows.append(
            f"| {step.name} | {step.status} | {_cell(step.reason, 200)} | {step.duration:.3f} | {step.attempts} "
            f"| {_cell(step.error, 200)} |"
        )
    return "\n".join(rows)


def _ledger_metadata(state: LedgerState, *, fingerprint: str) -> dict[str, MetadataValue]:
    return {
        "dotflow/current_fingerprint": MetadataValue.text(state.current_fingerprint or ""),
        "dotflow/history": MetadataValue.md(history_table(state, highlight=fingerprint)),
    }


def report_metadata(report: RunReport, *, state: LedgerState | None = None) -> Mapping[str, MetadataValue]:
    """Metadata for the materialization of ``report.fingerprint``; payload and diff are redacted.

    Ordered for the UI, which lists entries as given: what happened and which input is current
    first, the details after.
    """
    metadata: dict[str, MetadataValue] = {
        "dotflow/decision": MetadataValue.text(report.decision),
        "dotflow/fingerprint": MetadataValue.text(report.fingerprint),
    }
    if state is not None:
        metadata["dotflow/current_fingerprint"] = MetadataValue.text(state.current_fingerprint or "")
    if report.skip_reason:
        # Nothing was decided: the run's "previous" would only repeat the current fingerprint.
        metadata["dotflow/skipped"] = MetadataValue.text(report.skip_reason)
    else:
        metadata["dotflow/previous_fingerprint"] = MetadataValue.text(report.previous_fingerprint or "")
    if report.changes:
        lines = "\n".join(report.changes)
        metadata["dotflow/diff"] = MetadataValue.md(
            f"Changes against `{report.previous_fingerprint}`:\n\n```\n{lines}\n```"
        )
    if state is not None:
        metadata["dotflow/history"] = MetadataValue.md(history_table(state, highlight=report.fingerprint))
    metadata.update(
        {
            "dotflow/steps_executed": MetadataValue.json(report.executed),
            "dotflow/steps_resumed": MetadataValue.json(report.resumed),
            "dotflow/steps": MetadataValue.md(steps_table(report)),
            "dotflow/payload": _json(report.payload),
            "dotflow/workflow_id": MetadataValue.text(report.workflow_id),
        }
    )
    return metadata


def skip_metadata(report: RunReport, *, state: LedgerState) -> Mapping[str, MetadataValue]:
    """Metadata of a skipped run's observation or failure: why nothing ran, and what is current."""
    return {
        "dotflow/decision": MetadataValue.text("skipped"),
        "dotflow/fingerprint": MetadataValue.text(report.fingerprint),
        **_ledger_metadata(state, fingerprint=report.fingerprint),
        "dotflow/skipped": MetadataValue.text(report.skip_reason or ""),
        "dotflow/workflow_id": MetadataValue.text(report.workflow_id),
    }


def failure_metadata(
    *,
    state: LedgerState,
    report: RunReport | None = None,
    workflow_id: str | None = None,
    fingerprint: str | None = None,
) -> Mapping[str, MetadataValue]:
    """Metadata of a failed run: the report's (when steps ran) plus what is current."""
    if report is not None:
        return report_metadata(report, state=state)
    assert workflow_id is not None and fingerprint is not None
    return {
        "dotflow/fingerprint": MetadataValue.text(fingerprint),
        **_ledger_metadata(state, fingerprint=fingerprint),
        "dotflow/workflow_id": MetadataValue.text(workflow_id),
    }


def refusal_metadata(error: "InputChangedError", *, state: LedgerState) -> Mapping[str, MetadataValue]:
    """Metadata of a run refused under ``raise``: both fingerprints, the redacted diff, the history."""
    return {
        "dotflow/decision": MetadataValue.text("raise"),
        "dotflow/fingerprint": MetadataValue.text(error.current_fingerprint),
        "dotflow/current_fingerprint": MetadataValue.text(state.current_fingerprint or ""),
        "dotflow/previous_fingerprint": MetadataValue.text(error.previous_fingerprint),
        "dotflow/diff": MetadataValue.md(f"```\n{error.diff_text}\n```"),
        "dotflow/history": MetadataValue.md(history_table(state, highlight=error.current_fingerprint)),
        "dotflow/workflow_id": MetadataValue.text(error.workflow_id),
    }
