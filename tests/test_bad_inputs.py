"""Every hostile input of docs/reliability.md's table, against the real parts, one test per row.

Each row (tests/support/bad_inputs_*.py) shows the error the user sees, naming what was wrong
and where; that the worker, the sensor tick or the next Dagster run goes on; and that nothing
stored before is lost. The table in the docs is generated from the same rows, and
``test_the_docs_table_is_generated_from_these_rows`` fails when the two differ.
"""

import pytest

from tests.moto_server import moto_server  # noqa: F401  (the session fixture, for the S3 and SQS rows)
from tests.support.bad_inputs_harness import Env
from tests.support.bad_inputs_table import DOC, Row, all_rows, documented_table, markdown_table

ROWS = all_rows()


def _param(item: Row):
    marks = [pytest.mark.integration] if item.needs_moto else []
    if item.defect:
        # Asserts the intended behaviour: fixing the defect turns this red until the row says so.
        marks.append(pytest.mark.xfail(strict=True, raises=AssertionError, reason=item.defect))
    return pytest.param(item, id=item.name, marks=marks)


@pytest.mark.parametrize("item", [_param(item) for item in ROWS])
def test_a_bad_input_is_named_stops_nothing_and_loses_nothing(item: Row, tmp_path, instance, capfd, request):
    endpoint = request.getfixturevalue("moto_server").endpoint if item.needs_moto else None
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = Env(root=tmp_path / "store", instance=instance, read_log=lambda: capfd.readouterr().err, scratch=scratch,
              endpoint=endpoint)
    item.check(env)


def test_the_table_covers_every_kind_of_input_the_docs_promise():
    assert len(ROWS) >= 25
    assert len({item.name for item in ROWS}) == len(ROWS)
    kinds = {item.where.split(" ")[0] for item in ROWS}
    assert {"payload", "workflow", "inbox", "S3", "SQS", "run", "paths", "stored"} <= kinds, kinds


def test_the_docs_table_is_generated_from_these_rows():
    expected = markdown_table(ROWS)
    assert documented_table(DOC.read_text()) == expected, (
        "docs/reliability.md's bad-input table differs from the rows: run "
        "`.venv/bin/python -m tests.support.bad_inputs_table --write`"
    )
