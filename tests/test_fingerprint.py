"""Fingerprints: stable across processes, blind to ordering, and never silently lossy."""

import collections
import dataclasses
import doctest
import enum
import hashlib
import importlib
import math
import os
import pickle
import subprocess
import sys
import types
import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path, PurePosixPath, PureWindowsPath
from zoneinfo import ZoneInfo

import orjson
import pydantic
import pytest

from dotflow_dagster.fingerprint import FingerprintError, fingerprint

# The package re-exports the function under the submodule's name, so `import ... as` would give
# the function; ask for the module itself.
fingerprint_module = importlib.import_module("dotflow_dagster.fingerprint")

# Built the same way in this process and in subprocesses, so class names (module + qualname) match.
STABILITY_CODE = '''
import dataclasses, enum, uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

class Colour(enum.Enum):
    RED = 1
    BLUE = 2

class Size(str, enum.Enum):  # noqa: UP042 - the classic str mixin is what users write
    SMALL = "s"
    LARGE = "l"

@dataclasses.dataclass(frozen=True)
class Customer:
    name: str
    tags: frozenset

WORDS = frozenset(f"word-{i}" for i in range(40))
PAYLOAD = {
    "json": {"b": [1, 2.5, None, True, "x"], "a": {"nested": "value"}},
    "tags": set(WORDS),
    "frozen": frozenset({"alpha", "beta", "gamma", "delta", "epsilon"}),
    "nested_sets": {frozenset({"a", "b"}), frozenset({"c"}), frozenset()},
    "aware": datetime(2024, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=2))),
    "naive": datetime(2024, 3, 1, 12, 30, 15, 250),
    "day": date(2024, 2, 29),
    "clock": time(23, 59, 1),
    "span": timedelta(days=3, microseconds=7),
    "amounts": [Decimal("19.90"), Decimal("-0"), Decimal("1E+30")],
    "ids": (uuid.UUID("12345678-1234-5678-1234-567812345678"),),
    "blob": b"\\x00\\xffbinary",
    "enums": [Colour.RED, Size.LARGE],
    "customer": Customer("Ada", frozenset({"vip", "early", "beta"})),
    "tuple": (1, "two", (3.0,)),
    "by_key": {("sku", 1): "first", frozenset({"k1", "k2"}): "second", 7: "int", "7": "str", None: "none"},
    "big": 2**100,
    "specials": [float("nan"), float("inf"), -float("inf")],
}
ORDER = list(PAYLOAD["tags"])
'''

CHILD = '''
import sys, types, json
module = types.ModuleType("fp_stability_payload")
sys.modules[module.__name__] = module
exec(sys.argv[1], module.__dict__)
from dotflow_dagster.fingerprint import fingerprint
print(json.dumps({"digest": fingerprint(module.PAYLOAD), "order": module.ORDER}))
'''


def load_stability_module() -> types.ModuleType:
    module = types.ModuleType("fp_stability_payload")
    sys.modules[module.__name__] = module
    exec(STABILITY_CODE, module.__dict__)
    return module


def test_digest_is_64_lowercase_hex_characters():
    for payload in [{"a": 1}, {"a": {1, 2}}, None, [], "text"]:
        digest = fingerprint(payload)
        assert len(digest) == 64
        assert set(digest) <= set("0123456789abcdef")


def test_plain_json_digest_is_sha256_of_J_and_sorted_orjson_bytes():
    # Documented format: other tools can recompute a plain-JSON fingerprint without this library.
    payload = {"b": [1, 2.5, None, True], "a": {"z": "é", "y": -3}}
    expected = hashlib.sha256(b"J" + orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert fingerprint(payload) == expected


def test_module_docstring_examples_run():
    results = doctest.testmod(fingerprint_module)
    assert results.attempted >= 2
    assert results.failed == 0


@pytest.mark.integration
def test_digest_is_the_same_in_processes_with_different_hash_seeds():
    module = load_stability_module()
    expected = fingerprint(module.PAYLOAD)
    seeds = ["0", "1", "12345", "random"]
    root = str(Path(__file__).resolve().parent.parent)
    children = []
    for seed in seeds:
        pythonpath = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": pythonpath}
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", CHILD, STABILITY_CODE],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for seed, child in zip(seeds, children, strict=True):
        stdout, stderr = child.communicate(timeout=120)
        assert child.returncode == 0, f"PYTHONHASHSEED={seed}: {stderr}"
        results.append(orjson.loads(stdout.strip().splitlines()[-1]))
    # Without differing set iteration orders this test could not catch an order-dependent digest.
    assert len({tuple(result["order"]) for result in results}) > 1
    assert [result["digest"] for result in results] == [expected] * len(seeds)


def test_dict_insertion_order_does_not_matter():
    first = {"a": 1, "b": {"x": [1, 2], "y": None}, 3: "int key", (1, 2): "tuple key"}
    second = {(1, 2): "tuple key", 3: "int key", "b": {"y": None, "x": [1, 2]}, "a": 1}
    assert list(first) != list(second)
    assert fingerprint(first) == fingerprint(second)


def test_set_iteration_order_does_not_matter():
    # 1 and 9 share a slot in a small set, so the insertion order decides the iteration order.
    first, second = set(), set()
    first.update([1, 9])
    second.update([9, 1])
    assert list(first) != list(second)
    assert fingerprint({"s": first}) == fingerprint({"s": second})
    assert fingerprint(first) == fingerprint(frozenset(second))


def test_set_and_frozenset_with_the_same_elements_are_equal():
    assert fingerprint({"a", "b"}) == fingerprint(frozenset({"b", "a"}))
    assert fingerprint({"a", "b"}) != fingerprint({"a", "c"})


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ({1: "x"}, {"1": "x"}),
        (1, True),
        (1, 1.0),
        (0, False),
        (0.0, -0.0),
        ([1, 2], (1, 2)),
        ([], ()),
        ({"a": [1]}, {"a": (1,)}),
        (["a", "b"], {"a", "b"}),
        (None, float("nan")),
        ([None], [float("nan")]),
        (float("nan"), float("inf")),
        (float("inf"), -float("inf")),
        (None, float("inf")),
        (Decimal("1.5"), 1.5),
        (Decimal("1"), 1),
        (Decimal("1.5"), "1.5"),
        (b"abc", "abc"),
        (b"abc", "616263"),
        (uuid.UUID(int=1), str(uuid.UUID(int=1))),
        (uuid.UUID(int=1), uuid.UUID(int=1).hex),
        (Path("a/b"), "a/b"),
        (date(2024, 1, 1), "2024-01-01"),
        (2**64, 2**64 - 1),
        (2**64, str(2**64)),
        (-(2**63) - 1, -(2**63)),
        ({"x": 1}, collections.OrderedDict(x=2)),
        (timedelta(seconds=1), 1_000_000),
    ],
)
def test_values_that_must_be_told_apart(left, right):
    assert fingerprint(left) != fingerprint(right)
    assert fingerprint({"k": [left]}) != fingerprint({"k": [right]})


class Colour(enum.Enum):
    RED = 1


class Shade(enum.Enum):
    RED = 1


class Size(str, enum.Enum):  # noqa: UP042 - the classic str mixin is what users write
    SMALL = "s"


class Level(enum.IntEnum):
    LOW = 1


class Ratio(float, enum.Enum):
    HALF = 0.5


class Mode(enum.StrEnum):
    FAST = "fast"


class Permission(enum.IntFlag):
    READ = 1
    WRITE = 2


@pytest.mark.parametrize(
    ("member", "plain"),
    [
        (Colour.RED, 1),
        (Size.SMALL, "s"),
        (Level.LOW, 1),
        (Ratio.HALF, 0.5),
        (Mode.FAST, "fast"),
        (Permission.READ | Permission.WRITE, 3),
    ],
)
def test_enum_members_differ_from_their_values_even_when_python_says_equal(member, plain):
    # str/int/float enums compare equal to their value and orjson writes them as that value.
    assert fingerprint({"k": member}) != fingerprint({"k": plain})
    assert fingerprint([member]) != fingerprint([plain])
    assert fingerprint({"k": member}) == fingerprint({"k": type(member)(member.value)})


def test_enum_members_of_different_classes_or_names_differ():
    assert fingerprint(Colour.RED) != fingerprint(Shade.RED)
    assert fingerprint(Permission.READ) != fingerprint(Permission.WRITE)


def test_enum_keys_differ_from_their_values_as_keys():
    assert fingerprint({Size.SMALL: 1}) != fingerprint({"s": 1})
    assert fingerprint({Level.LOW: 1}) != fingerprint({1: 1})


def test_str_and_int_subclasses_count_as_their_base_type():
    class Name(str):
        def __str__(self):
            return "overridden"

    class Count(int):
        def __int__(self):
            return 999

    class Amount(float):
        pass

    subclassed = {"n": Name("ada"), "c": Count(3), "f": Amount(2.5)}
    assert fingerprint(subclassed) == fingerprint({"n": "ada", "c": 3, "f": 2.5})
    assert fingerprint({Name("key"): 1}) == fingerprint({"key": 1})


def test_mapping_and_list_subclasses_take_the_slow_path_but_match_plain_json():
    class Items(list):
        pass

    plain = {"b": [1, {"c": 2.5}], "a": None}
    odd = collections.OrderedDict(a=None, b=Items([1, collections.defaultdict(int, c=2.5)]))
    assert fingerprint(odd) == fingerprint(plain)
    assert fingerprint(types.MappingProxyType(plain)) == fingerprint(plain)


def test_user_dict_imitating_a_tag_never_collides_with_the_real_tag():
    tag = "\u0000dotflow"
    mimic_set = {tag: "set", "v": [1]}
    assert fingerprint(mimic_set) != fingerprint({1})
    # The same imitation next to a real tag (T domain, where escaping applies).
    assert fingerprint({"real": {1}, "x": mimic_set}) != fingerprint({"real": {1}, "x": {1}})
    mimic_tuple = {tag: "tuple", "v": [1, 2]}
    assert fingerprint({"real": {1}, "x": mimic_tuple}) != fingerprint({"real": {1}, "x": (1, 2)})
    # An imitation of the escape wrapper itself.
    escaped = {tag: "dict", "v": {tag: "set", "v": [1]}}
    assert fingerprint({"real": {1}, "x": escaped}) != fingerprint({"real": {1}, "x": mimic_set})
    assert fingerprint({"real": {1}, "x": {"v": escaped}}) != fingerprint({"real": {1}, "x": {"v": mimic_set}})


def test_plain_json_holding_the_tag_key_gets_one_digest_on_both_paths():
    tag = "\u0000dotflow"
    plain = {"x": {tag: "set", "v": [1]}}
    via_slow_path = collections.OrderedDict(x=collections.OrderedDict([(tag, "set"), ("v", [1])]))
    assert fingerprint(via_slow_path) == fingerprint(plain)
    assert fingerprint(plain) == hashlib.sha256(b"J" + orjson.dumps(plain, option=orjson.OPT_SORT_KEYS)).hexdigest()


def test_decimals_with_equal_values_are_equal():
    assert fingerprint(Decimal("1.0")) == fingerprint(Decimal("1.00")) == fingerprint(Decimal("1"))
    assert fingerprint(Decimal("1000")) == fingerprint(Decimal("1E+3"))
    assert fingerprint(Decimal("-0")) == fingerprint(Decimal("0")) == fingerprint(Decimal("0E+7"))
    assert fingerprint(Decimal("1E+1000000")) == fingerprint(Decimal("10E+999999"))
    assert fingerprint(Decimal("1.5")) != fingerprint(Decimal("-1.5"))
    # Beyond the default 28-digit context precision, which Decimal.normalize() would round to.
    long_value = Decimal("1.00000000000000000000000000000000001")
    assert fingerprint(long_value) != fingerprint(Decimal("1"))
    assert fingerprint(Decimal("NaN")) == fingerprint(Decimal("NaN"))
    assert fingerprint(Decimal("NaN")) != fingerprint(Decimal("sNaN"))
    assert fingerprint(Decimal("Infinity")) != fingerprint(Decimal("-Infinity"))


def test_aware_datetimes_of_the_same_instant_are_equal_whatever_the_zone():
    utc = datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
    sao_paulo = utc.astimezone(ZoneInfo("America/Sao_Paulo"))
    tokyo = utc.astimezone(timezone(timedelta(hours=9)))
    assert sao_paulo.hour != tokyo.hour
    assert fingerprint({"at": utc}) == fingerprint({"at": sao_paulo}) == fingerprint({"at": tokyo})
    assert fingerprint({"at": utc}) != fingerprint({"at": utc + timedelta(microseconds=1)})


def test_naive_and_aware_datetimes_differ():
    naive = datetime(2024, 6, 1, 10, 0)
    assert fingerprint(naive) != fingerprint(naive.replace(tzinfo=UTC))
    assert fingerprint(naive) == fingerprint(datetime(2024, 6, 1, 10, 0))
    assert fingerprint(naive) != fingerprint(date(2024, 6, 1))


def test_extreme_aware_datetimes_do_not_overflow():
    low = datetime.min.replace(tzinfo=timezone(timedelta(hours=5)))
    high = datetime.max.replace(tzinfo=timezone(timedelta(hours=-5)))
    assert fingerprint(low) != fingerprint(high)


def test_times_compare_like_python():
    plus_two = timezone(timedelta(hours=2))
    assert fingerprint(time(12, 0, tzinfo=plus_two)) == fingerprint(time(10, 0, tzinfo=UTC))
    assert fingerprint(time(12, 0)) != fingerprint(time(12, 0, tzinfo=UTC))


def test_bytes_and_bytearray_with_the_same_content_are_equal():
    assert fingerprint(b"\x00\x01") == fingerprint(bytearray(b"\x00\x01"))
    assert fingerprint(b"\x00\x01") != fingerprint(b"\x00\x02")


def test_paths_are_compared_by_their_posix_form():
    assert fingerprint(Path("data/in.csv")) == fingerprint(PurePosixPath("data/in.csv"))
    assert fingerprint(PureWindowsPath("data\\in.csv")) == fingerprint(PurePosixPath("data/in.csv"))
    assert fingerprint(Path("data/in.csv")) != fingerprint(Path("data/out.csv"))


def test_integers_beyond_64_bits_and_beyond_python_digit_limit():
    huge = 10**5000  # str() of this raises ValueError under Python's default 4300-digit limit
    assert fingerprint(huge) != fingerprint(huge + 1)
    assert fingerprint(-huge) != fingerprint(huge)
    assert fingerprint(2**64 - 1) == hashlib.sha256(b"J" + str(2**64 - 1).encode()).hexdigest()


def test_strings_with_lone_surrogates_are_supported_and_kept_apart():
    assert fingerprint({"s": "\ud800"}) != fingerprint({"s": "\udc00"})
    assert fingerprint({"\ud800": 1}) != fingerprint({"\udc00": 1})
    assert fingerprint({"s": "\ud800"}) != fingerprint({"s": ""})


@dataclasses.dataclass
class Customer:
    name: str
    address: object = None


@dataclasses.dataclass
class Supplier:
    name: str
    address: object = None


class OrderModel(pydantic.BaseModel):
    id: int
    placed_at: datetime
    lines: list[tuple[str, Decimal]]


class InvoiceModel(pydantic.BaseModel):
    id: int
    placed_at: datetime
    lines: list[tuple[str, Decimal]]


def test_dataclasses_are_compared_by_class_and_fields():
    assert fingerprint(Customer("Ada")) == fingerprint(Customer("Ada"))
    assert fingerprint(Customer("Ada")) != fingerprint(Customer("Bob"))
    assert fingerprint(Customer("Ada")) != fingerprint(Supplier("Ada"))
    assert fingerprint(Customer("Ada")) != fingerprint({"name": "Ada", "address": None})


def test_pydantic_models_are_compared_by_class_and_dump():
    placed = datetime(2024, 1, 1, tzinfo=UTC)
    order = OrderModel(id=1, placed_at=placed, lines=[("sku", Decimal("2.50"))])
    same = OrderModel(id=1, placed_at=placed.astimezone(ZoneInfo("Europe/Berlin")), lines=[("sku", Decimal("2.5"))])
    assert fingerprint({"order": order}) == fingerprint({"order": same})
    assert fingerprint(order) != fingerprint(OrderModel(id=2, placed_at=placed, lines=[("sku", Decimal("2.5"))]))
    assert fingerprint(order) != fingerprint(InvoiceModel(id=1, placed_at=placed, lines=[("sku", Decimal("2.5"))]))
    assert fingerprint(order) != fingerprint(order.model_dump())


def test_ignore_paths_leave_out_exactly_those_values():
    ignore = ["root['received_at']", "root['meta']['delivery']"]
    base = {"id": 7, "received_at": "09:00", "meta": {"delivery": 1, "source": "sqs"}}
    moved = {**base, "received_at": "09:05", "meta": {"delivery": 2, "source": "sqs"}}
    changed = {**base, "meta": {"delivery": 1, "source": "kafka"}}
    assert fingerprint(base, ignore_paths=ignore) == fingerprint(moved, ignore_paths=ignore)
    assert fingerprint(base, ignore_paths=ignore) != fingerprint(changed, ignore_paths=ignore)
    assert fingerprint(base, ignore_paths=ignore) == fingerprint({"id": 7, "meta": {"source": "sqs"}})
    assert fingerprint(base) != fingerprint(moved)
    assert base["received_at"] == "09:00" and base["meta"] == {"delivery": 1, "source": "sqs"}


def test_ignore_paths_accept_any_iterable_and_skip_absent_paths():
    payload = {"id": 7, "at": datetime(2024, 1, 1)}
    expected = fingerprint({"id": 7})
    assert fingerprint(payload, ignore_paths=("root['at']",)) == expected
    assert fingerprint(payload, ignore_paths=(path for path in ["root['at']", "root['missing'][0]"])) == expected


def test_ignore_paths_can_drop_an_unsupported_value():
    payload = {"id": 7, "handle": object()}
    assert fingerprint(payload, ignore_paths=["root['handle']"]) == fingerprint({"id": 7})


@pytest.mark.parametrize("bad_path", ["received_at", "root[", "root"])
def test_invalid_ignore_path_raises_value_error_naming_it(bad_path):
    with pytest.raises(ValueError, match="payload path") as raised:
        fingerprint({"a": 1}, ignore_paths=[bad_path])
    assert repr(bad_path) in str(raised.value)


def test_a_single_string_as_ignore_paths_is_refused():
    with pytest.raises(TypeError, match="iterable of paths"):
        fingerprint({"a": 1}, ignore_paths="root['a']")


class Opaque:
    pass


@pytest.mark.parametrize(
    ("make_value", "type_name"),
    [
        (Opaque, "Opaque"),
        (lambda: (lambda: 1), "function"),
        (lambda: object(), "object"),
        (lambda: 1j, "complex"),
        (lambda: collections.deque([1]), "deque"),
    ],
)
def test_unsupported_values_raise_fingerprint_error_naming_path_and_type(make_value, type_name):
    payload = {"items": [1, 2, 3, make_value()]}
    with pytest.raises(FingerprintError) as raised:
        fingerprint(payload)
    error = raised.value
    assert isinstance(error, TypeError)
    assert error.path == "root['items'][3]"
    assert error.value_type == type_name
    assert "root['items'][3]" in str(error)
    assert repr(type_name) in str(error)
    assert "0x" not in str(error)


def test_open_file_is_refused(tmp_path):
    with open(tmp_path / "f.txt", "w") as handle:
        with pytest.raises(FingerprintError) as raised:
            fingerprint({"out": handle})
    assert raised.value.path == "root['out']"
    assert raised.value.value_type == "TextIOWrapper"
    assert "0x" not in str(raised.value)


def test_error_paths_through_dataclasses_tuples_and_non_str_keys():
    with pytest.raises(FingerprintError) as raised:
        fingerprint({"order": Customer("Ada", address=(1, {2: Opaque()}))})
    assert raised.value.path == "root['order'].address[1][2]"
    with pytest.raises(FingerprintError) as raised:
        fingerprint({"tags": {1, Opaque()}})
    assert raised.value.path == "root['tags']"
    assert "an element of the set" in str(raised.value)
    with pytest.raises(FingerprintError) as raised:
        fingerprint({"by": {Opaque(): 1}})
    assert raised.value.path == "root['by']"
    assert "a key of the mapping" in str(raised.value)


def test_error_in_pydantic_model_field_uses_dump_keys():
    class Loose(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
        blob: Opaque

    with pytest.raises(FingerprintError) as raised:
        fingerprint({"order": Loose(blob=Opaque())})
    assert raised.value.path == "root['order']['blob']"


def test_fingerprint_error_survives_pickling():
    with pytest.raises(FingerprintError) as raised:
        fingerprint([Opaque()])
    copy = pickle.loads(pickle.dumps(raised.value))
    assert (str(copy), copy.path, copy.value_type) == (str(raised.value), "root[0]", "Opaque")


def test_reference_cycles_raise_fingerprint_error_naming_the_path():
    items: list = [1]
    items.append(items)
    with pytest.raises(FingerprintError, match="cycle") as raised:
        fingerprint({"items": items})
    assert raised.value.path == "root['items'][1]"
    mapping: dict = {}
    mapping["self"] = {"again": mapping}
    with pytest.raises(FingerprintError, match="cycle") as raised:
        fingerprint(mapping)
    assert raised.value.path == "root['self']['again']"


def test_shared_but_acyclic_values_are_fine():
    shared = {"x": [1, 2]}
    copies = {"a": {"x": [1, 2]}, "b": {"x": [1, 2]}, "s": {1}}
    assert fingerprint({"a": shared, "b": shared, "s": {1}}) == fingerprint(copies)


def test_too_deep_nesting_raises_fingerprint_error_not_recursion_error():
    shallow: list = []
    for _ in range(100):
        shallow = [shallow]
    assert len(fingerprint(shallow)) == 64
    for depth in (300, 5000):
        deep: list = []
        for _ in range(depth):
            deep = [deep]
        with pytest.raises(FingerprintError, match="nested more deeply"):
            fingerprint(deep)


# Deep tuples are fingerprinted in a fresh interpreter: orjson aborted the whole process on them
# (SIGABRT), which must fail one test rather than end the test run.
DEEP_CHILD = """
import sys
from dotflow_dagster.fingerprint import FingerprintError, fingerprint

namespace = {}
exec(sys.argv[1], namespace)
for name, payload in namespace["CASES"]:
    try:
        print(name, "digest", fingerprint(payload))
    except FingerprintError as error:
        print(name, "error", error.path, error.value_type, error)
"""

NEST = """
import collections, dataclasses, enum, types
import pydantic

def nest(depth, *wraps):
    value = None
    for level in range(depth):
        value = wraps[level % len(wraps)](value)
    return value

@dataclasses.dataclass
class Box:
    inner: object

@dataclasses.dataclass(eq=False)
class Holder:  # hashed by identity, so sets and keys can hold anything
    value: object

class Sub(dict):
    pass

class Node(pydantic.BaseModel):
    child: "Node | None" = None
"""


def fingerprint_in_a_child(build: str) -> dict[str, str]:
    """``{name: "digest <hex>" or "error <path> <type> <message>"}`` for the CASES that ``build`` defines.

    ``build`` runs after NEST in a fresh interpreter and sets ``CASES`` to (name, payload) pairs.
    """
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    completed = subprocess.run(
        [sys.executable, "-c", DEEP_CHILD, NEST + build], env=env, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, f"exit status {completed.returncode}:\n{completed.stderr[-3000:]}"
    return dict(line.split(" ", 1) for line in completed.stdout.splitlines())


def test_deep_tuple_raises_instead_of_aborting_the_process():
    # orjson 3.13 does not count tuples against its nesting limit: handed this payload, it
    # corrupted its heap and the interpreter died with SIGABRT before any check ran.
    outcomes = fingerprint_in_a_child('CASES = [("top", nest(2500, lambda v: (v,)))]')
    assert outcomes["top"].startswith("error root tuple cannot fingerprint value at root: the payload is nested")


def test_deep_tuple_in_a_set_raises_naming_the_set():
    # Sorting the set encodes each element; orjson refused this one with its own TypeError.
    outcomes = fingerprint_in_a_child('CASES = [("set", {"tags": {nest(200, lambda v: (v,))}})]')
    assert outcomes["set"].startswith(
        "error root['tags'] tuple cannot fingerprint an element of the set at root['tags']: it is nested"
    )


def test_deep_tuple_as_a_mapping_key_raises_naming_the_mapping():
    outcomes = fingerprint_in_a_child('CASES = [("key", {"by_key": {nest(200, lambda v: (v,)): "value"}})]')
    assert outcomes["key"].startswith(
        "error root['by_key'] tuple cannot fingerprint a key of the mapping at root['by_key']: it is nested"
    )


@dataclasses.dataclass(eq=False)
class Holder:
    """Hashed by identity, so a set can hold it whatever its field holds."""

    value: object


def test_deep_list_in_a_set_raises_naming_the_set():
    # Shallow enough for Python's recursion limit, too deep for the encoder once tagged: sorting
    # the set raised orjson's own TypeError instead of a FingerprintError.
    deep: list = []
    for _ in range(252):
        deep = [deep]
    with pytest.raises(FingerprintError, match="nested more deeply") as raised:
        fingerprint({"tags": {Holder(deep)}})
    assert raised.value.path == "root['tags']"
    assert "an element of the set at root['tags']" in str(raised.value)


DEEP_KINDS = {
    "tuple": "lambda v: (v,)",
    "list": "lambda v: [v]",
    "dict": "lambda v: {'k': v}",
    "dict subclass": "lambda v: Sub(k=v)",
    "OrderedDict": "lambda v: collections.OrderedDict(k=v)",
    "mappingproxy": "lambda v: types.MappingProxyType({'k': v})",
    "frozenset": "lambda v: frozenset({v})",
    "dataclass": "Box",
    "pydantic model": "lambda v: Node(child=v)",
    "mixture": (
        "lambda v: (v,), lambda v: [v], Box, lambda v: frozenset({Holder(v)}), lambda v: Sub(k=v), lambda v: {1: v}"
    ),
}


@pytest.mark.parametrize("kind", DEEP_KINDS)
def test_any_nesting_ends_in_a_digest_or_a_fingerprint_error(kind):
    depths = (200, 260, 1000, 2500, 10_000, 100_000)
    build = f"""
CASES = []
for depth in {depths}:
    deep = nest(depth, {DEEP_KINDS[kind]})
    CASES += [
        (f"top-{{depth}}", deep),
        (f"enum-{{depth}}", enum.Enum("Deep", {{"MEMBER": deep}}).MEMBER),
        (f"set-{{depth}}", {{"s": {{Holder(deep)}}}}),
        (f"key-{{depth}}", {{"m": {{Holder(deep): 1}}}}),
    ]
"""
    outcomes = fingerprint_in_a_child(build)
    assert len(outcomes) == 4 * len(depths)
    for name, outcome in outcomes.items():
        assert outcome.startswith(("digest ", "error ")), (name, outcome)
        if int(name.split("-")[1]) > 254:
            assert outcome.startswith("error "), (name, outcome)


def test_nesting_limit_is_orjsons_on_both_paths():
    class Items(list):
        pass

    def nested(depth: int, wrap=list) -> list:
        # `depth` lists in all, the outermost built by `wrap`.
        value: list = []
        for _ in range(depth - 2):
            value = [value]
        return wrap([value])

    orjson.dumps(nested(254))
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(nested(255))
    expected = hashlib.sha256(b"J" + orjson.dumps(nested(254))).hexdigest()
    assert fingerprint(nested(254)) == fingerprint(nested(254, Items)) == expected
    for wrap in (list, Items):
        with pytest.raises(FingerprintError, match="nested more deeply"):
            fingerprint(nested(255, wrap))


def test_cycles_through_shared_containers_are_refused_without_exhausting_memory():
    # The plain-JSON check walks level by level before orjson sees the payload; without its
    # sharing guard, each back-reference multiplied the levels until memory ran out.
    build = """
import resource
resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))
twice = {}
twice["left"] = twice["right"] = twice
parent = {"children": []}
parent["children"] = [{"parent": parent, "n": n} for n in range(50_000)]
siblings = []
siblings.extend({"siblings": siblings} for _ in range(50_000))
nodes = [{"id": n, "edges": []} for n in range(2_000)]
for n, node in enumerate(nodes):
    node["edges"] = [nodes[(n * 7 + k) % len(nodes)] for k in range(40)]
CASES = [("twice", twice), ("parent", {"doc": parent}), ("siblings", [siblings]), ("graph", {"nodes": nodes})]
"""
    outcomes = fingerprint_in_a_child(build)
    assert set(outcomes) == {"twice", "parent", "siblings", "graph"}
    for name, outcome in outcomes.items():
        assert outcome.startswith("error ") and "contains itself" in outcome, (name, outcome)


def test_large_plain_payloads_keep_the_fast_path(monkeypatch):
    # Past the first few thousand values the check consults reference counts; rows the caller
    # still holds elsewhere must not send a tree to the slow path.
    def fail(payload):
        raise AssertionError("slow path used for plain JSON")

    rows = [{"id": n, "tags": ["a", "b"], "price": n / 7, "note": None} for n in range(5_000)]
    held_elsewhere = list(rows)
    payload = {"rows": rows, "total": 1.5}
    monkeypatch.setattr(fingerprint_module, "_slow_encoding", fail)
    expected = hashlib.sha256(b"J" + orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert fingerprint(payload) == expected
    assert held_elsewhere[0] is rows[0]


def test_sharing_a_container_gives_the_digest_of_copies():
    shared = {"currency": "EUR", "tags": ["a", "b"]}
    for count in (10, 5_000):
        with_shared = {"rows": [{"n": n, "meta": shared} for n in range(count)]}
        with_copies = {"rows": [{"n": n, "meta": {"currency": "EUR", "tags": ["a", "b"]}} for n in range(count)]}
        assert fingerprint(with_shared) == fingerprint(with_copies)
    looped: list = [shared]
    looped.append(looped)
    with pytest.raises(FingerprintError, match="contains itself"):
        fingerprint({"rows": [looped] * 3_000})


def test_plain_json_never_takes_the_slow_path(monkeypatch):
    # The speed contract: plain JSON is encoded and checked by orjson and C builtins alone.
    def fail(payload):
        raise AssertionError("slow path used for plain JSON")

    monkeypatch.setattr(fingerprint_module, "_slow_encoding", fail)
    payload = {"a": [1, 2.5, None, True, "x", {"b": -(2**63)}], "c": 2**64 - 1, "big": [1e308, 1e308]}
    expected = hashlib.sha256(b"J" + orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)).hexdigest()
    assert fingerprint(payload) == expected


@pytest.mark.parametrize(
    "odd",
    [(1, 2), float("nan"), float("inf"), uuid.UUID(int=5), Size.SMALL, Level.LOW, Ratio.HALF, Colour.RED],
    ids=repr,
)
def test_values_orjson_writes_lossily_are_caught_at_any_depth(odd):
    # orjson encodes each of these as a plain JSON value; deep in a large payload, next to
    # nulls, they must still change the digest.
    def build(leaf):
        rows = [{"id": i, "name": f"row {i}", "note": None, "price": i / 3} for i in range(200)]
        deep = leaf
        for _ in range(40):
            deep = {"level": [deep]}
        rows[117]["extra"] = deep
        return {"rows": rows}

    plain = orjson.loads(orjson.dumps(odd))
    assert fingerprint(build(odd)) != fingerprint(build(plain))


@pytest.mark.parametrize("odd", [float("nan"), float("inf"), -float("inf")], ids=repr)
def test_non_finite_floats_are_caught_before_and_after_the_first_none(odd):
    # Floats are checked as the walk meets them once a None guarantees a null in orjson's output,
    # and those met before it (or with no None at all) once the output turns out to hold one.
    for build in (lambda leaf: {"a": leaf, "b": [None]}, lambda leaf: {"a": [leaf], "b": None}, lambda leaf: [leaf]):
        assert fingerprint(build(odd)) != fingerprint(build(None))


def test_orjson_fragment_is_refused():
    with pytest.raises(FingerprintError) as raised:
        fingerprint({"raw": orjson.Fragment(b"[1]")})
    assert raised.value.path == "root['raw']"
    assert raised.value.value_type == "Fragment"


def test_unstable_inputs_like_nan_keep_a_stable_digest():
    assert fingerprint([math.nan]) == fingerprint([float("nan")])
    assert fingerprint({"n": math.nan}) != fingerprint({"n": None})


def test_fast_and_slow_paths_give_plain_json_the_same_digest(monkeypatch):
    # Whatever path a plain-JSON payload takes (an OrderedDict inside, or an interpreter other
    # than CPython), its digest must not change.
    payload = {
        "text": ["ascii", "é", "日本", "\U0001f600", "", "null", "\u0000dotflow"],
        "numbers": [0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 0.1, -0.0, 1e308, 5e-324, 1.5e16],
        "flags": [True, False, None],
        "nested": {"z": {"y": [[], {}, [{}]]}, "a": "x"},
        "\u0000dotflow": "set",
    }
    fast = fingerprint(payload)
    monkeypatch.setattr(fingerprint_module, "_CPYTHON", False)
    assert fingerprint(payload) == fast


def test_model_dump_failure_is_reported_with_its_cause():
    class Broken(pydantic.BaseModel):
        value: int

        @pydantic.field_serializer("value")
        def explode(self, value):
            raise RuntimeError("serializer broke")

    with pytest.raises(FingerprintError) as raised:
        fingerprint({"m": Broken(value=1)})
    assert raised.value.path == "root['m']"
    assert "model_dump() raised" in str(raised.value)
    assert raised.value.__cause__ is not None
