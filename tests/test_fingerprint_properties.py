"""Property tests: the encoding rules of dotflow_dagster.fingerprint hold for generated payloads.

``canonical()`` below restates the module docstring's rules as a plain Python value: two
payloads must share a digest exactly when their canonical values are equal.
"""

import copy
import dataclasses
import enum
import hashlib
import importlib
import math
import random
import types
import uuid
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import PurePath, PurePosixPath, PureWindowsPath
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dotflow_dagster.fingerprint import fingerprint

fingerprint_module = importlib.import_module("dotflow_dagster.fingerprint")

# Modest example counts keep the file under ~20 s; no example database is written to the repo.
PROPERTY = settings(max_examples=250, deadline=None, database=None)


class Colour(enum.Enum):
    RED = 1
    LIST = [1, 2]


class Shade(enum.Enum):
    RED = 1


class Level(enum.IntEnum):
    LOW = 1


class Size(str, enum.Enum):  # noqa: UP042 - the classic str mixin is what users write
    SMALL = "s"


class Mode(enum.StrEnum):
    FAST = "fast"


class Ratio(float, enum.Enum):
    HALF = 0.5


class Permission(enum.IntFlag):
    READ = 1
    WRITE = 2


@dataclasses.dataclass(frozen=True)
class Pair:
    left: object
    right: object


@dataclasses.dataclass(frozen=True)
class OtherPair:
    left: object
    right: object


class Name(str):
    pass


class Count(int):
    pass


class Amount(float):
    pass


class Items(list):
    pass


class Record(dict):
    pass


# --- the rules, restated ----------------------------------------------------------------------

_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_NAIVE = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _multiset(values: Any) -> frozenset[tuple[Any, int]]:
    # Two NaNs are two set elements (or keys), so multiplicity counts.
    return frozenset(Counter(values).items())


def canonical(value: Any) -> Any:
    """``value`` as the docstring's rules see it: equal exactly when digests must be equal."""
    if isinstance(value, enum.Enum):  # before str/int/float: enum members are told apart
        return ("enum", _qualified(type(value)), value.name, canonical(value.value))
    if value is None or isinstance(value, bool):
        return ("json", value)
    if isinstance(value, int):
        return ("int", int.__int__(value))
    if isinstance(value, float):
        number = float.__float__(value)
        return ("float", number.hex() if math.isfinite(number) else repr(number))  # -0.0 != 0.0
    if isinstance(value, str):
        return ("str", str.__str__(value))
    if isinstance(value, bytes | bytearray):
        return ("bytes", bytes(value))
    if isinstance(value, Decimal):
        return ("decimal", value) if value.is_finite() else ("decimal", str(value))  # 1.0 == 1.00
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            return ("naive datetime", value - _EPOCH_NAIVE)
        return ("instant", value - _EPOCH_UTC)
    if isinstance(value, date):
        return ("date", value.toordinal())
    if isinstance(value, time):
        micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000 + value.microsecond
        offset = value.utcoffset()
        return ("time", micros) if offset is None else ("utc time", micros - offset // _MICROSECOND)
    if isinstance(value, timedelta):
        return ("timedelta", value)
    if isinstance(value, uuid.UUID):
        return ("uuid", value.int)
    if isinstance(value, PurePath):
        return ("path", value.as_posix())
    if isinstance(value, Mapping):
        return ("mapping", _multiset((canonical(key), canonical(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("list", tuple(map(canonical, value)))
    if isinstance(value, tuple):
        return ("tuple", tuple(map(canonical, value)))
    if isinstance(value, set | frozenset):
        return ("set", _multiset(map(canonical, value)))
    if dataclasses.is_dataclass(value):
        fields = tuple((field.name, canonical(getattr(value, field.name))) for field in dataclasses.fields(value))
        return ("dataclass", _qualified(type(value)), fields)
    raise TypeError(f"no rule for {type(value).__qualname__}")


# --- strategies ------------------------------------------------------------------------------

FIXED_ZONES = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59))
)
ZONES = st.none() | st.just(UTC) | FIXED_ZONES
ENUM_MEMBERS = st.sampled_from([Colour.RED, Colour.LIST, Shade.RED, Level.LOW, Size.SMALL, Mode.FAST, Ratio.HALF])
FLAGS = st.just(Permission.READ | Permission.WRITE)

HASHABLE_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),  # NaN, the infinities and -0.0 included
    st.text(max_size=6),
    st.sampled_from(["\ud800", "\udfff", "null", "\u0000dotflow", "v"]),
    st.decimals().filter(lambda number: not number.is_snan()),  # a signalling NaN cannot be hashed
    st.datetimes(timezones=ZONES),
    st.dates(),
    st.times(timezones=ZONES),
    st.timedeltas(),
    st.uuids(),
    st.binary(max_size=4),
    st.sampled_from([PurePosixPath("data/in.csv"), PurePosixPath("a")]),
    ENUM_MEMBERS | FLAGS,
)
LEAVES = HASHABLE_LEAVES | st.binary(max_size=4).map(bytearray) | st.just(Decimal("-sNaN"))
HASHABLE = st.one_of(HASHABLE_LEAVES, st.lists(HASHABLE_LEAVES, max_size=3).map(tuple))


def containers_of(children: st.SearchStrategy[Any], keys: st.SearchStrategy[Any], hashable: st.SearchStrategy[Any]):
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(st.text(max_size=4) | st.just("\u0000dotflow"), children, max_size=4),
        st.dictionaries(keys, children, max_size=3),
        st.sets(hashable, max_size=4),
        st.frozensets(hashable, max_size=4),
        st.builds(Pair, children, children),
    )


TYPED = st.recursive(LEAVES, lambda children: containers_of(children, HASHABLE, HASHABLE), max_leaves=20)

JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(codec="utf-8")),
)
JSON_KEYS = st.text(st.characters(codec="utf-8"), max_size=8) | st.just("\u0000dotflow")
PLAIN_JSON = st.recursive(
    JSON_LEAVES, lambda children: st.lists(children) | st.dictionaries(JSON_KEYS, children), max_leaves=40
)

# Values that plain JSON, Python equality or a naive encoder would confuse with one another.
CONFUSABLE_HASHABLE = [
    None, True, False, 0, 1, -1, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1,
    0.0, -0.0, 1.0, 0.5, float("nan"), float("inf"), -float("inf"),
    "", "1", "0.5", "null", "true", "nan", "s", "fast", "a", "v", "\u0000dotflow", "\ud800", "2024-01-01",
    Decimal("1"), Decimal("1.0"), Decimal("0"), Decimal("-0"), Decimal("NaN"), Decimal("-NaN"),
    b"", b"1", uuid.UUID(int=1), str(uuid.UUID(int=1)), uuid.UUID(int=1).hex,
    date(2024, 1, 1), datetime(2024, 1, 1), datetime(2024, 1, 1, tzinfo=UTC),
    datetime(2024, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))),
    time(0, 0), time(0, 0, tzinfo=UTC), time(2, 0, tzinfo=timezone(timedelta(hours=2))),
    timedelta(0), timedelta(microseconds=1),
    Colour.RED, Shade.RED, Level.LOW, Size.SMALL, Mode.FAST, Ratio.HALF, Permission.READ,
    PurePosixPath("a"), Name("a"), Count(1), Amount(0.5),
]  # fmt: skip
CONFUSABLE_KEYS = st.sampled_from(["", "1", "v", "k", "\u0000dotflow", Name("k")])
CONFUSABLE_LEAVES = st.sampled_from([*CONFUSABLE_HASHABLE, bytearray(b"1"), Decimal("sNaN"), Colour.LIST])


def confusable_containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    hashable = st.sampled_from(CONFUSABLE_HASHABLE)
    tag_imitation = st.fixed_dictionaries(
        {"\u0000dotflow": st.sampled_from(["set", "tuple", "dict", "map", "int"]), "v": children}
    )
    return st.one_of(
        st.lists(children, max_size=3),
        st.lists(children, max_size=3).map(tuple),
        st.lists(children, max_size=3).map(Items),
        st.dictionaries(CONFUSABLE_KEYS, children, max_size=3),
        st.dictionaries(hashable, children, max_size=2),
        st.dictionaries(CONFUSABLE_KEYS, children, max_size=3).map(OrderedDict),
        st.sets(hashable, max_size=3),
        st.frozensets(hashable, max_size=3),
        st.builds(Pair, children, children),
        st.builds(OtherPair, children, children),
        tag_imitation,
    )


CONFUSABLE = st.recursive(CONFUSABLE_LEAVES, confusable_containers, max_leaves=6)


# --- rewriting a payload without changing what it means ----------------------------------------


Spelling = Callable[[Any, random.Random, bool], Any]


def rebuilt(value: Any, rng: random.Random, spell: Spelling, hashable: bool = False) -> Any:
    """``value`` rebuilt bottom-up with fresh containers, mappings and sets in shuffled insertion
    order, and ``spell`` applied to every value (told whether it sits in a set or a key)."""
    if isinstance(value, enum.Enum):
        return spell(value, rng, hashable)
    if isinstance(value, Mapping):
        items = [(rebuilt(key, rng, spell, True), rebuilt(item, rng, spell)) for key, item in value.items()]
        rng.shuffle(items)
        return spell(dict(items), rng, hashable)
    if isinstance(value, list):
        return spell([rebuilt(item, rng, spell) for item in value], rng, hashable)
    if isinstance(value, tuple):
        return spell(tuple(rebuilt(item, rng, spell, hashable) for item in value), rng, hashable)
    if isinstance(value, set | frozenset):
        elements = [rebuilt(element, rng, spell, True) for element in value]
        rng.shuffle(elements)
        return spell(type(value)(elements), rng, hashable)
    if isinstance(value, Pair):
        return spell(Pair(rebuilt(value.left, rng, spell), rebuilt(value.right, rng, spell)), rng, hashable)
    return spell(value, rng, hashable)


def same_spelling(value: Any, rng: random.Random, hashable: bool) -> Any:
    return value


def other_spelling(value: Any, rng: random.Random, hashable: bool) -> Any:
    """An equal value of another type or form, where the rules say the digest is the same.

    In a set or a key only hashable spellings are used: ``bytearray`` and ``set`` are not.
    """
    if isinstance(value, enum.Enum):
        return value
    if type(value) is dict:
        return rng.choice([OrderedDict, types.MappingProxyType, Record, dict])(value)
    if type(value) is list:
        return Items(value)
    if type(value) is frozenset and not hashable:
        return set(value)
    if type(value) is set:
        return frozenset(value)
    if type(value) is bytes and not hashable:
        return bytearray(value)
    if type(value) is str:
        return Name(value)
    if type(value) is int:
        return Count(value)
    if type(value) is float:
        return Amount(value)
    if type(value) is Decimal and value.is_finite():
        sign, digits, exponent = value.as_tuple()
        return Decimal((sign, (*digits, 0), exponent - 1))  # 1.5 -> 1.50
    if type(value) is datetime and value.utcoffset() is not None:
        try:
            return value.astimezone(timezone(timedelta(hours=rng.randint(-12, 12))))
        except OverflowError:
            return value  # the same instant, moved out of datetime's range
    return value


# --- properties ------------------------------------------------------------------------------


@PROPERTY
@given(TYPED, st.randoms(use_true_random=False))
def test_dict_key_order_and_set_order_never_matter(value, rng):
    reordered = rebuilt(value, rng, same_spelling)
    assert fingerprint(reordered) == fingerprint(value)


@PROPERTY
@given(TYPED, st.randoms(use_true_random=False))
def test_equivalent_spellings_share_a_digest(value, rng):
    respelled = rebuilt(value, rng, other_spelling)
    assert canonical(respelled) == canonical(value)  # the rewrite itself keeps the meaning
    assert fingerprint(respelled) == fingerprint(value)


def test_equivalent_spellings_named_in_the_docstring():
    # The generated rewrites above cover these; spelled out so a failure reads plainly.
    instant = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
    pairs = [
        ({"a": 1}, OrderedDict(a=1)),
        ({"a": 1}, types.MappingProxyType({"a": 1})),
        ({1, 2}, frozenset({2, 1})),
        (Decimal("1.0"), Decimal("1.00")),
        (instant, instant.astimezone(timezone(timedelta(hours=-3)))),
        (b"\x00\xff", bytearray(b"\x00\xff")),
        (PurePosixPath("data/in.csv"), PureWindowsPath("data\\in.csv")),
    ]
    for left, right in pairs:
        assert fingerprint(left) == fingerprint(right), (left, right)


@PROPERTY
@given(CONFUSABLE, CONFUSABLE)
def test_digests_differ_exactly_when_the_rules_tell_values_apart(left, right):
    same_under_rules = canonical(left) == canonical(right)
    assert (fingerprint(left) == fingerprint(right)) == same_under_rules


@pytest.mark.parametrize(
    "place",
    [
        lambda leaf: leaf,
        lambda leaf: [leaf],
        lambda leaf: (leaf,),
        lambda leaf: {"k": leaf},
        lambda leaf: {leaf: "k"},
        lambda leaf: {leaf},
        lambda leaf: Pair(leaf, None),
        lambda leaf: [[{"k": (leaf, 1)}]],
    ],
    ids=["alone", "list", "tuple", "value", "key", "set", "dataclass", "nested"],
)
def test_every_pair_of_confusable_leaves_is_told_apart_as_the_rules_say(place):
    # Exhaustive over the pool: each pair of leaves shares a digest exactly when the rules equate them.
    leaves_by_digest: dict[str, list[Any]] = {}
    for leaf in CONFUSABLE_HASHABLE:
        leaves_by_digest.setdefault(fingerprint(place(leaf)), []).append(leaf)
    for digest, leaves in leaves_by_digest.items():
        assert len({canonical(leaf) for leaf in leaves}) == 1, (digest, leaves)
    assert len(leaves_by_digest) == len({canonical(leaf) for leaf in CONFUSABLE_HASHABLE})


@PROPERTY
@given(PLAIN_JSON)
def test_plain_json_gets_the_documented_digest_on_both_paths(payload):
    encoded = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    assert fingerprint_module._fast_encoding(payload) == encoded
    assert fingerprint_module._slow_encoding(payload) == (b"J", encoded)
    assert fingerprint(payload) == hashlib.sha256(b"J" + encoded).hexdigest()


@settings(max_examples=60, deadline=None, database=None)
@given(TYPED)
def test_sharing_a_value_is_the_same_as_copying_it(value):
    # Thousands of references to one value take the slow path, their copies the fast one when
    # they are plain JSON; either way the digest is the copies'.
    shared = {"rows": [value] * 3_000}
    copies = {"rows": [copy.deepcopy(value) for _ in range(3_000)]}
    assert fingerprint(shared) == fingerprint(copies)
