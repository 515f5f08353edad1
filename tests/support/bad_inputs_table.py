"""The bad-input table: rows that carry their own documentation, and the markdown made from them.

Each row names a hostile input, what the user sees, what goes on and what is kept, and holds the
check that shows it against real parts. ``docs/reliability.md`` shows the table made by
:func:`markdown_table`; ``tests/test_bad_inputs.py`` fails when the two differ, so the table
cannot drift from the tests. After changing a row, rewrite the section with::

    .venv/bin/python -m tests.support.bad_inputs_table --write

A row whose ``defect`` is set documents a known defect: its check asserts the intended behaviour
and runs as a strict ``xfail``, so fixing the defect turns the test red until the row (and the
docs) say it is fixed.

Example:
    >>> from tests.support.bad_inputs_table import Row, markdown_table
    >>> example = Row(name="demo", where="payload", hostile="a | b", sees="an error", goes_on="yes",
    ...               kept="all", check=lambda env: None)
    >>> markdown_table([example]).splitlines()[2]
    '| 1 | payload | a \\\\| b | an error | yes | all |'
"""

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DOC",
    "END",
    "ROWS",
    "START",
    "Row",
    "all_rows",
    "documented_table",
    "markdown_table",
    "row",
]

DOC = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"
START = "<!-- bad-inputs-table:start (generated from tests/support/bad_inputs_*.py; do not edit by hand) -->"
END = "<!-- bad-inputs-table:end -->"


@dataclass(frozen=True)
class Row:
    """One hostile input and what happens to it.

    Attributes:
        name: the test id.
        where: where the input comes in (payload, inbox file, SQS message, run tag...).
        hostile: the input, in a few words.
        sees: the error the user sees, as close to its text as fits in a cell.
        goes_on: what carries on: the next message, the rest of the tick, the next run.
        kept: what stays as it was in the store.
        check: shows all of it against real parts; gets an ``Env``.
        defect: for a known defect, the intended behaviour and the fix it needs; the check then
            asserts that behaviour and runs as a strict xfail.
        needs_moto: the check uses the moto server (S3, SQS).
    """

    name: str
    where: str
    hostile: str
    sees: str
    goes_on: str
    kept: str
    check: Callable[[Any], None]
    defect: str | None = None
    needs_moto: bool = False


ROWS: list[Row] = []


def row(
    *, where: str, hostile: str, sees: str, goes_on: str, kept: str, defect: str | None = None, needs_moto: bool = False
) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    """Register the decorated check as a row of the table, in definition order."""

    def register(check: Callable[[Any], None]) -> Callable[[Any], None]:
        ROWS.append(Row(name=check.__name__, where=where, hostile=hostile, sees=sees, goes_on=goes_on, kept=kept,
                        check=check, defect=defect, needs_moto=needs_moto))
        return check

    return register


def all_rows() -> list[Row]:
    """Every row, in table order (importing the row modules registers them)."""
    import tests.support.bad_inputs_payloads  # noqa: F401
    import tests.support.bad_inputs_runs  # noqa: F401
    import tests.support.bad_inputs_sources  # noqa: F401
    from tests.support.bad_inputs_table import ROWS as registered  # not __main__'s, when run with -m

    order = ("payload", "workflow id", "inbox file", "S3 object", "SQS message", "run", "paths", "stored")
    return sorted(registered, key=lambda item: next(i for i, prefix in enumerate(order) if item.where.startswith(prefix)))


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def markdown_table(rows: Sequence[Row]) -> str:
    """The rows as the markdown table of ``docs/reliability.md``, then the known defects by row number."""
    lines = [
        "| # | where | hostile input | what the user sees | what goes on | what is kept |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    defects = []
    for number, item in enumerate(rows, start=1):
        sees = f"**Known defect** (see below). {item.sees[:1].upper()}{item.sees[1:]}" if item.defect else item.sees
        lines.append(
            f"| {number} | {_cell(item.where)} | {_cell(item.hostile)} | {_cell(sees)} | {_cell(item.goes_on)} "
            f"| {_cell(item.kept)} |"
        )
        if item.defect:
            defects.append(f"- Row {number}, {item.hostile}: {' '.join(item.defect.split())}")
    if defects:
        lines += ["", "Known defects, each pinned by a strict `xfail` that asserts the intended behaviour:", "", *defects]
    return "\n".join(lines)


def documented_table(text: str) -> str:
    """The generated section of ``docs/reliability.md`` (between the markers), stripped."""
    if START not in text or END not in text:
        raise ValueError(f"{DOC} has no bad-inputs table between {START!r} and {END!r}")
    return text.split(START, 1)[1].split(END, 1)[0].strip()


def _write() -> None:
    text = DOC.read_text()
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    DOC.write_text(f"{before}{START}\n\n{markdown_table(all_rows())}\n\n{END}{after}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Print, or --write into docs/reliability.md, the bad-input table.")
    parser.add_argument("--write", action="store_true")
    if parser.parse_args().write:
        _write()
    else:
        sys.stdout.write(markdown_table(all_rows()) + "\n")
