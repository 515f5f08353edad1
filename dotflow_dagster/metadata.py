"""Materialization metadata for a run report, under namespaced ``dotflow/...`` keys."""

from collections.abc import Mapping
from typing import Any

import orjson
from dagster import MetadataValue

from dotflow_dagster.report import RunReport

__all__ = ["METADATA_KEYS", "TAG_FINGERPRINT", "TAG_ON_INPUT_CHANGE", "TAG_WORKFLOW_ID", "report_metadata"]

TAG_WORKFLOW_ID = "dotflow/workflow_id"
TAG_FINGERPRINT = "dotflow/fingerprint"
TAG_ON_INPUT_CHANGE = "dotflow/on_input_change"

METADATA_KEYS = (
    "dotflow/workflow_id",
    "dotflow/fingerprint",
    "dotflow/previous_fingerprint",
    "dotflow/decision",
    "dotflow/steps_executed",
    "dotflow/steps_resumed",
    "dotflow/steps",
    "dotflow/payload",
    "dotflow/diff",
)


def _json_safe(value: Any) -> dict | list:
    # Payloads may hold sets, datetimes or Decimals (anything the fingerprint accepts);
    # the UI only needs a faithful rendering, so such values become their string form.
    rendered = orjson.loads(orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SORT_KEYS))
    return rendered if isinstance(rendered, dict | list) else {"value": rendered}


def steps_table(report: RunReport) -> str:
    rows = ["| step | status | duration (s) | attempts | error |", "| --- | --- | --- | --- | --- |"]
    for step in report.steps:
        error = (step.error or "").replace("|", "\\|").replace("\n", " ")[:200]
        rows.append(f"| {step.name} | {step.status} | {step.duration:.3f} | {step.attempts} | {error} |")
    return "\n".join(rows)


def report_metadata(report: RunReport) -> Mapping[str, MetadataValue]:
    """Metadata for the materialization of ``report.fingerprint``; payload and diff are redacted."""
    metadata: dict[str, MetadataValue] = {
        "dotflow/workflow_id": MetadataValue.text(report.workflow_id),
        "dotflow/fingerprint": MetadataValue.text(report.fingerprint),
        "dotflow/previous_fingerprint": MetadataValue.text(report.previous_fingerprint or ""),
        "dotflow/decision": MetadataValue.text(report.decision),
        "dotflow/steps_executed": MetadataValue.json(report.executed),
        "dotflow/steps_resumed": MetadataValue.json(report.resumed),
        "dotflow/steps": MetadataValue.md(steps_table(report)),
        "dotflow/payload": MetadataValue.json(_json_safe(report.payload)),
    }
    if report.changes:
        lines = "\n".join(report.changes)
        metadata["dotflow/diff"] = MetadataValue.md(
            f"Changes against `{report.previous_fingerprint}`:\n\n```\n{lines}\n```"
        )
    return metadata
