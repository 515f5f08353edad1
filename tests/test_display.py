"""to_display: a JSON-safe, readable rendering of anything, that never raises and is never slow."""

import collections
import dataclasses
import enum
import json
import math
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from decimal import Decimal
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import orjson
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dotflow_dagster.diff import describe_changes
from dotflow_dagster.display import int_text, to_display
from dotflow_dagster.fingerprint import fingerprint


def assert_json_safe(value: Any) -> None:
    """Only dict with str keys, list, str, int within ±2**53, finite float, bool and None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            assert all(type(key) is str for key in item)
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
        elif type(item) is str:
            item.encode("utf-8")  # no lone surrogates
        elif type(item) is int:
            assert -(2**53) < item < 2**53
        elif type(item) is float:
            assert math.isfinite(item)
        else:
            assert item is None or type(item) is bool, type(item)
    json.dumps(value, allow_nan=False)
    orjson.dumps(value)


class Colour(enum.Enum):
    RED = 1


class Size(str, enum.Enum):  # noqa: UP042 - the classic str mixin is what users write
    SMALL = "s"


@dataclasses.dataclass(frozen=True)
class Point:
    x: Any
    y: Any = None


class Order(pydantic.BaseModel):
    id: int
    tags: set[str] = set()
    placed: datetime | None = None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (float("nan"), "NaN"),
        (float("inf"), "Infinity"),
        (-float("inf"), "-Infinity"),
        (-0.0, -0.0),
        (2**53 - 1, 2**53 - 1),
        (2**53, "9007199254740992"),
        (-(2**64), "-18446744073709551616"),
        ("\ud800x", "\\ud800x"),
        ((1, "a", None), [1, "a", None]),
        ({3, 1, 2}, [1, 2, 3]),
        (frozenset({"b", "a"}), ["a", "b"]),
        ({"b", 3, None, True, 2.5}, [None, True, 2.5, 3, "b"]),
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05+00:00"),
        (date(2024, 2, 29), "2024-02-29"),
        (clock(23, 59), "23:59:00"),
        (timedelta(days=1, seconds=5), "1 day, 0:00:05"),
        (Decimal("19.90"), "19.90"),
        (Decimal("-NaN"), "-NaN"),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
        (b"\x00\xffhi", "b64:AP9oaQ=="),
        (bytearray(b"hi"), "b64:aGk="),
        (PureWindowsPath("C:\\data\\in.csv"), "C:/data/in.csv"),
        (PurePosixPath("/tmp/x"), "/tmp/x"),
        (Colour.RED, "Colour.RED"),
        (Size.SMALL, "Size.SMALL"),
        (Point(1, Point(2)), {"x": 1, "y": {"x": 2, "y": None}}),
        (
            Order(id=1, tags={"b", "a"}, placed=datetime(2024, 1, 1, tzinfo=UTC)),
            {"id": 1, "tags": ["a", "b"], "placed": "2024-01-01T00:00:00+00:00"},
        ),
        (collections.OrderedDict(b=1, a=2), {"b": 1, "a": 2}),
        ({"nested": [{"t": (1, {2})}]}, {"nested": [{"t": [1, [2]]}]}),
    ],
)
def test_values_are_rendered_by_the_documented_rules(value, expected):
    shown = to_display(value)
    assert shown == expected and type(shown) is type(expected)
    assert_json_safe(shown)


def test_integers_beyond_4000_digits_are_shown_in_hexadecimal_with_a_note():
    assert to_display(10**3999) == str(10**3999)
    shown = to_display(-(10**5000))
    assert shown.startswith(f"{-(10**5000):#x}") and "hexadecimal" in shown


def test_int_text_is_decimal_up_to_4000_digits_then_the_length_and_last_digits():
    assert int_text(-(10**3999)) == str(-(10**3999))
    huge = 10**5000 + 1234567
    assert int_text(huge) == "<int of 5001 digits: ...0001234567>"
    assert int_text(-huge) == "<int of 5001 digits: -...0001234567>"
    # Exact next to powers of ten, where a floating-point logarithm rounds across them.
    for digits in (4001, 9999, 30103):
        assert int_text(10 ** (digits - 1)) == f"<int of {digits} digits: ...0000000000>"
        assert int_text(10**digits - 1) == f"<int of {digits} digits: ...9999999999>"


def test_a_lowered_int_digit_limit_never_makes_a_rendering_raise():
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        assert int_text(10**700) == "<int of 701 digits: ...0000000000>"
        assert to_display([10**700]) == [f"{10**700:#x} (an integer of {(10**700).bit_length()} bits, in hexadecimal)"]
        assert describe_changes({"n": 1}, {"n": 10**700}).lines == ("root['n']: 1 -> <int of 701 digits: ...0000000000>",)
    finally:
        sys.set_int_max_str_digits(previous)


def test_a_diff_shows_integers_beyond_4300_digits_by_their_length_and_last_digits():
    class Count(int):
        pass

    before = {"n": 1, "rows": [1], "ids": {1}, "count": Count(1)}
    after = {"n": 10**5000 + 7, "rows": [1, -(10**6000)], "ids": {10**4500}, "count": Count(10**4400)}
    change = describe_changes(before, after)  # repr() of any of them raises ValueError
    assert change.lines == (
        "root['count']: 1 -> <int of 4401 digits: ...0000000000>",
        "root['ids']: {1} -> {<int of 4501 digits: ...0000000000>}",
        "root['n']: 1 -> <int of 5001 digits: ...0000000007>",
        "root['rows']: [1] -> [1, <int of 6001 digits: -...0000000000>]",
    )
    # DeepDiff (built when a policy hook reads it) hashes set items by writing them in decimal.
    with pytest.raises(ValueError, match=r"a changed set in decimal(.|\n)*root\['ids'\]: \{1\} -> \{<int of 4501"):
        _ = change.diff
    del before["ids"], after["ids"]
    paths = describe_changes(before, after).diff.affected_paths
    assert sorted(paths) == ["root['count']", "root['n']", "root['rows'][1]"]


def test_non_string_keys_become_readable_and_are_never_merged():
    shown = to_display({1: "int", "1": "str", (1, 2): "tuple", None: "none", frozenset({2, 1}): "set", ("a",): "one"})
    assert shown == {
        "1 (int)": "int",
        "1": "str",
        "(1, 2)": "tuple",
        "None": "none",
        "frozenset({1, 2})": "set",
        "('a',)": "one",
    }
    # Collisions among rendered keys are numbered rather than merged.
    shown = to_display({"\ud800": 1, "\\ud800": 2, "\\ud800 (str)": 3, 2.0: 4, "2.0": 5})
    assert len(shown) == 5 and sorted(shown.values()) == [1, 2, 3, 4, 5]
    assert shown["\\ud800"] == 2 and shown["2.0"] == 5


def test_deep_nesting_is_cut_at_max_depth_without_recursion():
    deep: list = []
    innermost = deep
    for _ in range(200_000):
        innermost.append([])
        innermost = innermost[0]
    shown = to_display(deep)
    assert_json_safe(shown)
    depth = 0
    while isinstance(shown, list):
        shown, depth = shown[0], depth + 1
    assert depth == 100 and shown.startswith("<nested deeper than max_depth=100")
    assert to_display({"a": {"b": 1}}, max_depth=1) == {"a": "<nested deeper than max_depth=1: dict>"}
    assert to_display([1], max_depth=0) == "<nested deeper than max_depth=0: list>"


def test_cycles_are_marked():
    looped: list = [1]
    looped.append(looped)
    mapping: dict = {}
    mapping["self"] = mapping

    @dataclasses.dataclass
    class Node:
        next: Any = None

    node = Node()
    node.next = node
    shared = [1]
    assert to_display(looped) == [1, "<cycle: list>"]
    assert to_display(mapping) == {"self": "<cycle: dict>"}
    assert to_display(node) == {"next": "<cycle: Node>"}
    assert to_display([shared, shared]) == [[1], [1]]  # shared, not cyclic


def test_huge_and_exponentially_shared_payloads_stay_fast_and_bounded():
    bomb: list = [1]
    for _ in range(80):
        bomb = [bomb, bomb]  # 2**80 paths through 80 objects
    started = time.perf_counter()
    shown = to_display(bomb)
    to_display(list(range(1_000_000)))
    to_display({i: i for i in range(300_000)})
    assert time.perf_counter() - started < 5
    assert_json_safe(shown)
    assert to_display(list(range(10)), max_items=5) == [0, 1, 2, 3, "<6 more items not shown>"]
    assert to_display({"a": 1, "b": 2, "c": 3}, max_items=2) == {"a": 1, "<2 more entries not shown>": None}


class Hostile:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class BrokenMapping(dict):
    def items(self):  # type: ignore[override]
        raise RuntimeError("no items")


@dataclasses.dataclass
class Flaky:
    ok: int
    bad: int = 0

    def __getattribute__(self, name: str) -> Any:
        if name == "bad":
            raise RuntimeError("unreadable field")
        return super().__getattribute__(name)


def test_anything_else_is_a_truncated_repr_and_nothing_raises():
    generator = (i for i in range(3))
    shown = to_display(
        {
            "object": Hostile(),
            "mapping": BrokenMapping(a=1),
            "field": Flaky(ok=1),
            "generator": generator,
            "deque": collections.deque(range(10_000)),
            "complex": 1j,
            "long": type("Long", (), {"__repr__": lambda self: "x" * 10_000})(),
            "type": int,
            "model": Order.model_construct(id="not an int"),
        }
    )
    assert_json_safe(shown)
    assert shown["complex"] == "1j"
    assert len(shown["long"]) <= 200 and len(shown["deque"]) <= 200
    assert shown["field"]["ok"] == 1 and shown["field"]["bad"].startswith("<field 'bad' not readable")
    assert shown["mapping"].startswith("<not displayable: BrokenMapping")
    assert list(generator) == [0, 1, 2]  # never consumed


def test_the_input_is_not_changed():
    payload = {"s": {3, 1, 2}, "t": (1, [2]), "m": Order(id=1, tags={"x"})}
    before = repr(payload)
    to_display(payload)
    assert repr(payload) == before


# Everything the fingerprint accepts, including its awkward corners.
text = st.lists(st.integers(min_value=0, max_value=0x10FFFF), max_size=6).map(lambda points: "".join(map(chr, points)))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**300), max_value=2**300),
    st.floats(),
    text,
    st.decimals(),
    st.datetimes() | st.datetimes(timezones=st.just(UTC)),
    st.dates(),
    st.times(),
    st.timedeltas(),
    st.uuids(),
    st.binary(max_size=8),
    st.sampled_from([Colour.RED, Size.SMALL, Path("a/b"), PureWindowsPath("c:\\x")]),
)


def is_nan(value: Any) -> bool:
    return (isinstance(value, float) and math.isnan(value)) or (isinstance(value, Decimal) and value.is_nan())


# NaN keys would make one dict or set hold "equal" elements twice; leave them to the leaves.
hashables = st.recursive(
    scalars.filter(lambda value: not is_nan(value)),
    lambda children: st.tuples(children, children) | st.frozensets(children, max_size=3),
    max_leaves=5,
)
anything = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.dictionaries(hashables, children, max_size=4),
        st.sets(hashables, max_size=4),
        st.builds(Point, children, children),
    ),
    max_leaves=30,
)


@settings(max_examples=250, deadline=None)
@given(anything)
def test_everything_the_fingerprint_accepts_is_rendered_as_plain_json(value):
    try:
        fingerprint(value)
    except Exception:
        pass  # to_display must cope even where the fingerprint refuses
    shown = to_display(value)
    assert_json_safe(shown)
    if isinstance(value, dict):
        assert len(shown) == len(value)  # no key is merged with another
