"""Measured tables of the reliability scenarios, and the copies of them published in the docs.

A scenario renders what it measured as a markdown table (``markdown_table``) and checks that
``docs/reliability.md`` publishes exactly that table between the markers
``<!-- measured: <name> -->`` and ``<!-- /measured: <name> -->``: a figure in the docs can then
only be one a test measured. ``write_measured`` also leaves the table in a file beside the
test's other artifacts, to paste from when the measurement changes.

Example:
    >>> print(markdown_table(["store", "runs"], [["LocalStore", 1]]))
    | store | runs |
    | --- | --- |
    | LocalStore | 1 |
    >>> published_table("<!-- measured: x -->\\n| a |\\n<!-- /measured: x -->", name="x")
    '| a |'
"""

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

__all__ = ["RELIABILITY_DOC", "markdown_table", "published_table", "write_measured"]

RELIABILITY_DOC = ROOT / "docs" / "reliability.md"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table of ``rows`` under ``header`` (cells shown with ``str``)."""
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def published_table(text: str, *, name: str) -> str | None:
    """The text between ``<!-- measured: name -->`` and ``<!-- /measured: name -->``, stripped, or ``None``."""
    found = re.search(
        rf"<!-- measured: {re.escape(name)} -->\n(.*?)\n<!-- /measured: {re.escape(name)} -->", text, re.DOTALL
    )
    return found.group(1).strip() if found else None


def write_measured(directory: Path, *, name: str, table: str) -> Path:
    """Write ``table`` with its markers to ``directory/<name>.md`` and return the path."""
    path = directory / f"{name}.md"
    path.write_text(f"<!-- measured: {name} -->\n{table}\n<!-- /measured: {name} -->\n")
    return path
