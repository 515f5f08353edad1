"""Payload paths: a strict grammar, and removal/redaction applied at once against the original payload."""

import collections
import copy
import dataclasses
import json
from typing import Any, NamedTuple

import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dotflow_dagster.fingerprint import fingerprint
from dotflow_dagster.paths import REDACTED, format_path, parse_paths, redact, without_paths

PROPERTY = settings(max_examples=200, deadline=None)


def canonical(value: Any) -> str:
    # Tells 1, 1.0 and True apart, and 0.0 from -0.0, as the fingerprint does; NaN equals itself.
    return json.dumps(value, sort_keys=True)


def paths(*texts: str) -> tuple:
    return parse_paths(texts)


# --- 1. several paths into one list name elements of the original list ----------------------------


def test_two_indexes_of_one_list_both_name_original_elements():
    ignore = ["root['l'][0]", "root['l'][1]"]
    assert fingerprint({"l": [5, 6, 10]}, ignore_paths=ignore) != fingerprint({"l": [5, 6, 999]}, ignore_paths=ignore)
    assert fingerprint({"l": [5, 6, 10]}, ignore_paths=ignore) == fingerprint({"l": [7, 8, 10]}, ignore_paths=ignore)
    assert without_paths({"l": [5, 6, 10]}, paths(*ignore)) == {"l": [10]}
    assert without_paths({"l": [5, 6, 10]}, paths(*reversed(ignore))) == {"l": [10]}


def test_redact_reaches_every_named_index_and_nothing_else():
    payload = {"cards": ["4111", "public", "5500"]}
    assert redact(payload, paths("root['cards'][0]", "root['cards'][2]")) == {"cards": ["***", "public", "***"]}
    assert redact(payload, paths("root['cards'][-1]", "root['cards'][0]")) == {"cards": ["***", "public", "***"]}


@pytest.mark.parametrize(
    ("path_texts", "expected"),
    [
        (["root['l'][-1]", "root['l'][2]"], [0, 1]),  # one element named twice
        (["root['l'][1]", "root['l'][1]"], [0, {"x": 1}]),  # duplicates
        (["root['l'][2]['x']", "root['l'][2]"], [0, 1]),  # a prefix of another path wins
        (["root['l'][-1]['x']", "root['l'][0]"], [1, {}]),  # overlapping: [-1] is the original last
        (["root['l'][-3]", "root['l'][2]", "root['l'][1]"], []),
        (["root['l'][5]", "root['l'][-4]", "root['m']"], [0, 1, {"x": 1}]),  # absent paths are skipped
    ],
)
def test_negative_duplicate_and_overlapping_paths_remove_original_elements(path_texts, expected):
    payload = {"l": [0, 1, {"x": 1}]}
    before = copy.deepcopy(payload)
    assert without_paths(payload, parse_paths(path_texts)) == {"l": expected}
    assert payload == before


def test_paths_below_a_shifted_element_address_the_original_element():
    payload = {"l": [{"a": 1, "b": 2}, {"a": 3, "b": 4}]}
    result = without_paths(payload, paths("root['l'][0]", "root['l'][1]['b']"))
    assert result == {"l": [{"a": 3}]}
    assert redact(payload, paths("root['l'][0]", "root['l'][1]['b']")) == {"l": ["***", {"a": 3, "b": "***"}]}


def test_only_containers_on_a_path_are_copied():
    untouched = {"deep": [1, 2]}
    payload = {"keep": untouched, "edit": {"secret": 1, "other": [3]}, "l": (1, 2, 3)}
    result = redact(payload, paths("root['edit']['secret']", "root['l'][1]"))
    assert result["keep"] is untouched
    assert result["edit"]["other"] is payload["edit"]["other"]
    assert result["l"] == (1, "***", 3)
    assert payload == {"keep": {"deep": [1, 2]}, "edit": {"secret": 1, "other": [3]}, "l": (1, 2, 3)}
    assert without_paths(payload, paths("root['missing'][0]")) is payload


def test_an_empty_path_is_refused_by_without_paths_and_redact():
    with pytest.raises(ValueError, match="whole payload"):
        without_paths({"a": 1}, [()])
    with pytest.raises(ValueError, match="whole payload"):
        redact({"a": 1}, [()])


# --- 2. a strict grammar -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_path",
    [
        "root['a'",
        "root[a]",
        "root['a'][*]",
        "a",
        "root['a']]",
        "root..x",
        "root['a']junk",
        "root['a'] ",
        "root[ 0]",
        "root[01]",
        "root[1.5]",
        "root['a\\q']",
        "root[b'a']",
        "root['''a''']",
        "root['a' 'b']",
        "root.",
        "root.1a",
        "rootx",
        "root",
        "root[",
        "",
    ],
)
def test_malformed_paths_are_refused_naming_the_path(bad_path):
    with pytest.raises(ValueError, match="payload path") as raised:
        parse_paths([bad_path])
    assert repr(bad_path) in str(raised.value)


def test_grammar_accepts_keys_indexes_and_names():
    assert parse_paths(
        [
            "root['a'][0][-2]",
            'root["it\'s"]',
            "root['it\\'s']",
            "root.order.lines[3]['sku']",
            "root['\\u00e9\\n\\x00']",
            "root['']",
            "root.été",
        ]
    ) == (
        ("a", 0, -2),
        ("it's",),
        ("it's",),
        ("order", "lines", 3, "sku"),
        ("é\n\x00",),
        ("",),
        ("été",),
    )


def test_a_single_string_is_refused_where_a_list_of_paths_is_expected():
    with pytest.raises(TypeError, match="single string"):
        parse_paths("root['a']")
    with pytest.raises(TypeError, match="single string"):
        parse_paths(b"root['a']")


@pytest.mark.parametrize("entry", [1, None, b"root['a']", ("a",)])
def test_non_string_entries_are_refused(entry):
    with pytest.raises(TypeError, match="must be a string"):
        parse_paths(["root['ok']", entry])


def test_a_non_iterable_is_refused():
    with pytest.raises(TypeError, match="list of path strings"):
        parse_paths(5)


path_elements = st.lists(
    st.one_of(
        st.integers(min_value=-(10**30), max_value=10**30),
        # Every code point, lone surrogates included (json.loads makes them from "\ud800").
        st.lists(st.integers(min_value=0, max_value=0x10FFFF), max_size=6).map(lambda points: "".join(map(chr, points))),
        st.text(max_size=6),
    ),
    min_size=1,
    max_size=5,
).map(tuple)


@PROPERTY
@given(path_elements)
def test_format_path_output_parses_back_to_the_same_elements(elements):
    parsed = parse_paths([format_path(elements)])
    assert parsed == (elements,)
    assert [type(element) for element in parsed[0]] == [type(element) for element in elements]


# --- 3. dataclass and pydantic fields ----------------------------------------------------------------


@dataclasses.dataclass
class Credentials:
    user: str
    token: str


@dataclasses.dataclass(frozen=True)
class FrozenCredentials:
    user: str
    token: str


@dataclasses.dataclass(frozen=True, slots=True)
class SlottedCredentials:
    user: str
    token: str


class CredentialsModel(pydantic.BaseModel):
    user: str
    token: str


class FrozenCredentialsModel(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)

    user: str
    token: str
    retries: int = 0


CREDENTIAL_TYPES = [Credentials, FrozenCredentials, SlottedCredentials, CredentialsModel, FrozenCredentialsModel]


def make(cls: type, user: str = "ada", token: str = "s3cret-token") -> Any:
    return cls(user=user, token=token)


@pytest.mark.parametrize("cls", CREDENTIAL_TYPES)
@pytest.mark.parametrize("path", ["root['c'].token", "root['c']['token']", "root.c.token"])
def test_redact_reaches_dataclass_and_model_fields_by_either_spelling(cls, path):
    payload = {"c": make(cls), "n": 1}
    result = redact(payload, paths(path))
    assert type(result["c"]) is cls
    assert result["c"].token == REDACTED and result["c"].user == "ada"
    assert "s3cret" not in repr(result)
    assert payload["c"].token == "s3cret-token"


@pytest.mark.parametrize("cls", CREDENTIAL_TYPES)
def test_redact_reaches_fields_nested_in_lists_dicts_and_other_objects(cls):
    @dataclasses.dataclass(frozen=True)
    class Envelope:
        accounts: list
        meta: dict

    payload = {"batch": [Envelope(accounts=[make(cls), make(cls, "bob", "other-secret")], meta={"c": make(cls)})]}
    result = redact(
        payload,
        paths(
            "root['batch'][0].accounts[0].token",
            "root['batch'][0]['accounts'][-1]['token']",
            "root.batch[0].meta['c'].token",
        ),
    )
    assert "s3cret" not in repr(result) and "other-secret" not in repr(result)
    assert [account.user for account in result["batch"][0].accounts] == ["ada", "bob"]
    assert payload["batch"][0].accounts[1].token == "other-secret"


def test_redact_falls_back_to_a_plain_dict_when_a_dataclass_cannot_be_copied():
    @dataclasses.dataclass(frozen=True)
    class Uncopyable:
        user: str
        token: str

        def __copy__(self):
            raise TypeError("no copies")

    result = redact([Uncopyable("ada", "s3cret")], paths("root[0].token"))
    assert result == [{"user": "ada", "token": REDACTED}]


def test_redact_falls_back_to_a_plain_dict_when_a_model_cannot_be_copied():
    class Stubborn(pydantic.BaseModel):
        user: str
        token: str

        def model_copy(self, *args, **kwargs):
            return self  # a copy that is no copy must not be trusted

    result = redact({"c": Stubborn(user="ada", token="s3cret")}, paths("root['c'].token"))
    assert result == {"c": {"user": "ada", "token": REDACTED}}


def test_redact_reaches_pydantic_extra_fields_and_namedtuple_fields():
    class Loose(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="allow")
        user: str

    class Pair(NamedTuple):
        user: str
        token: str

    result = redact(
        {"m": Loose(user="ada", api_key="s3cret"), "t": Pair("ada", "s3cret")},
        paths("root['m'].api_key", "root['t'].token"),
    )
    assert "s3cret" not in repr(result)
    assert type(result["t"]) is Pair and result["t"] == Pair("ada", REDACTED)


def test_redact_keeps_mapping_and_sequence_types_and_reaches_into_root_models():
    class Tokens(pydantic.RootModel[list[str]]):
        pass

    class Pair(NamedTuple):
        user: str
        token: str

    payload = {
        "ordered": collections.OrderedDict(user="ada", token="s3cret"),
        "counts": collections.defaultdict(int, token=1),
        "pairs": [Pair("ada", "s3cret")],
        "tokens": Tokens(["public", "s3cret"]),
    }
    result = redact(
        payload,
        paths("root['ordered']['token']", "root.counts.token", "root['pairs'][0][1]", "root['tokens'][-1]"),
    )
    assert type(result["ordered"]) is collections.OrderedDict and result["ordered"]["token"] == REDACTED
    assert type(result["counts"]) is collections.defaultdict and result["counts"]["token"] == REDACTED
    assert result["pairs"] == [Pair("ada", REDACTED)] and type(result["pairs"][0]) is Pair
    assert type(result["tokens"]) is Tokens and result["tokens"].root == ["public", REDACTED]
    assert "s3cret" not in repr(result)
    ignore = ["root['tokens'][-1]"]
    assert fingerprint(payload, ignore_paths=ignore) == fingerprint(
        {**payload, "tokens": Tokens(["public", "rotated"])}, ignore_paths=ignore
    )
    assert fingerprint(payload, ignore_paths=ignore) != fingerprint(
        {**payload, "tokens": Tokens(["other", "s3cret"])}, ignore_paths=ignore
    )


@pytest.mark.parametrize("cls", CREDENTIAL_TYPES)
@pytest.mark.parametrize("path", ["root['c'].token", "root['c']['token']"])
def test_ignoring_a_dataclass_or_model_field_leaves_it_out_of_the_fingerprint(cls, path):
    def digest(payload: Any) -> str:
        return fingerprint(payload, ignore_paths=[path])

    base = digest({"c": make(cls)})
    assert base == digest({"c": make(cls, token="rotated")})
    assert base != digest({"c": make(cls, user="bob")})
    assert base != digest({"c": {"user": "ada"}})  # still told apart from a plain dict
    assert fingerprint({"c": make(cls)}) != fingerprint({"c": make(cls, token="rotated")})


def test_ignoring_fields_of_nested_dataclasses_and_models():
    @dataclasses.dataclass(frozen=True)
    class Order:
        id: int
        auth: Any
        lines: list

    def order(id: int, token: str, price: int) -> Order:
        return Order(id=id, auth=FrozenCredentialsModel(user="ada", token=token), lines=[{"price": price, "at": token}])

    ignore = ["root['orders'][0].auth.token", "root['orders'][0]['lines'][0]['at']"]
    base = fingerprint({"orders": [order(1, "a", 5)]}, ignore_paths=ignore)
    assert base == fingerprint({"orders": [order(1, "b", 5)]}, ignore_paths=ignore)
    assert base != fingerprint({"orders": [order(2, "a", 5)]}, ignore_paths=ignore)
    assert base != fingerprint({"orders": [order(1, "a", 6)]}, ignore_paths=ignore)


def test_an_ignored_field_counts_as_absent_from_its_class():
    # Removing a field from the class later keeps fingerprints stable, as removing a key does.
    def define(*names: str) -> type:
        cls = dataclasses.make_dataclass("Account", names, frozen=True)
        cls.__module__ = __name__
        return cls

    with_token, without_token = define("user", "token"), define("user")
    assert fingerprint(with_token("ada", "x"), ignore_paths=["root.token"]) == fingerprint(without_token("ada"))

    class Account(pydantic.BaseModel):
        user: str
        token: str

    class Trimmed(pydantic.BaseModel):
        user: str

    Trimmed.__qualname__ = Account.__qualname__
    assert fingerprint(Account(user="ada", token="x"), ignore_paths=["root.token"]) == fingerprint(Trimmed(user="ada"))


def test_removal_never_touches_the_input_objects():
    payload = {"c": FrozenCredentials("ada", "x"), "m": FrozenCredentialsModel(user="ada", token="y")}
    without_paths(payload, paths("root['c'].token", "root['m'].token"))
    assert payload["c"] == FrozenCredentials("ada", "x")
    assert payload["m"].token == "y"


# --- 5. properties against a simple reference --------------------------------------------------------

leaves = st.none() | st.booleans() | st.integers(-1000, 1000) | st.floats() | st.text(max_size=4)
json_like = st.recursive(
    leaves,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=3), children, max_size=4),
    max_leaves=25,
)
containers = st.lists(json_like, min_size=1, max_size=6) | st.dictionaries(st.text(max_size=3), json_like, min_size=1)


def every_path(value: Any, prefix: tuple = ()) -> list[tuple]:
    found = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found.append((*prefix, key))
        found.extend(every_path(item, (*prefix, key)))
    return found


def normalised(value: Any, path: tuple) -> tuple | None:
    """``path`` with non-negative indexes, or None if it is absent from ``value``."""
    result = []
    for element in path:
        if isinstance(value, dict) and isinstance(element, str) and element in value:
            key = element
        elif isinstance(value, list) and isinstance(element, int) and -len(value) <= element < len(value):
            key = element % len(value)
        else:
            return None
        result.append(key)
        value = value[key]
    return tuple(result)


def outermost(value: Any, paths_: list[tuple]) -> list[tuple]:
    found = {path for path in (normalised(value, p) for p in paths_) if path is not None}
    return [p for p in found if not any(q != p and p[: len(q)] == q for q in found)]


def reference_without(value: Any, paths_: list[tuple]) -> Any:
    """Delete one path at a time, larger list indexes first, so no deletion shifts a later one."""
    result = copy.deepcopy(value)

    def order(path: tuple) -> tuple:
        return tuple((0, -element, "") if isinstance(element, int) else (1, 0, element) for element in path)

    for path in sorted(outermost(value, paths_), key=order):
        parent = result
        for element in path[:-1]:
            parent = parent[element]
        del parent[path[-1]]
    return result


def reference_redact(value: Any, paths_: list[tuple]) -> Any:
    result = copy.deepcopy(value)
    for path in outermost(value, paths_):
        parent = result
        for element in path[:-1]:
            parent = parent[element]
        parent[path[-1]] = REDACTED
    return result


@st.composite
def payload_and_paths(draw: Any, structures: Any = containers) -> tuple[Any, list[tuple], list[str]]:
    """A payload and a set of paths into it: negative indexes, duplicates and a few absent ones."""
    payload = draw(structures)
    candidates = every_path(payload) or [("absent",)]
    chosen = draw(st.lists(st.sampled_from(candidates), max_size=8))
    chosen += draw(st.lists(st.sampled_from([("absent",), (99,), (-99,), (0, "x", 5)]), max_size=2))
    written = []
    for index, path in enumerate(chosen):
        # Count some indexes from the end, and write some keys as .name.
        value, elements = payload, []
        for element in path:
            if isinstance(element, int) and isinstance(value, list) and element < len(value) and draw(st.booleans()):
                elements.append(element - len(value))
            else:
                elements.append(element)
            value = value[element] if normalised(value, (element,)) is not None else None
        chosen[index] = tuple(elements)
        text = format_path(elements)
        if all(not isinstance(e, str) or e.isidentifier() for e in elements) and draw(st.booleans()):
            text = "root" + "".join(f".{e}" if isinstance(e, str) else f"[{e}]" for e in elements)
        written.append(text)
    return payload, chosen, written


@PROPERTY
@given(payload_and_paths(), st.randoms())
def test_without_paths_removes_exactly_the_named_original_elements(case, random):
    payload, chosen, written = case
    before = canonical(payload)
    parsed = parse_paths(written)
    assert list(parsed) == chosen
    expected = canonical(reference_without(payload, chosen))
    assert canonical(without_paths(payload, parsed)) == expected
    shuffled = list(parsed)
    random.shuffle(shuffled)
    assert canonical(without_paths(payload, shuffled)) == expected
    assert canonical(payload) == before


@PROPERTY
@given(payload_and_paths(), st.randoms())
def test_redact_replaces_exactly_the_named_original_elements(case, random):
    payload, chosen, written = case
    before = canonical(payload)
    parsed = parse_paths(written)
    expected = canonical(reference_redact(payload, chosen))
    assert canonical(redact(payload, parsed)) == expected
    shuffled = list(parsed)
    random.shuffle(shuffled)
    assert canonical(redact(payload, shuffled)) == expected
    assert canonical(payload) == before


@PROPERTY
@given(st.lists(leaves, min_size=1, max_size=8), st.data())
def test_any_set_of_indexes_of_one_list_removes_those_elements(items, data):
    indexes = data.draw(st.sets(st.integers(0, len(items) - 1)))
    written = [f"root[{i - len(items) if data.draw(st.booleans()) else i}]" for i in indexes]
    written = data.draw(st.permutations(written))
    expected = [item for i, item in enumerate(items) if i not in indexes]
    assert canonical(without_paths(items, parse_paths(written))) == canonical(expected)
    assert fingerprint(items, ignore_paths=written) == fingerprint(expected)


@PROPERTY
@given(payload_and_paths(), st.data())
def test_fingerprints_agree_exactly_when_payloads_agree_after_removal(case, data):
    first, chosen, written = case
    # The second payload changes the first at a few places, often (not always) ignored ones.
    targets = data.draw(st.lists(st.sampled_from(chosen + every_path(first) or [("absent",)]), max_size=3))
    second = copy.deepcopy(first)
    for target in targets:
        path = normalised(second, target)
        if path is None:
            continue
        parent = second
        for element in path[:-1]:
            parent = parent[element]
        parent[path[-1]] = data.draw(json_like)
    same_after_removal = canonical(reference_without(first, chosen)) == canonical(reference_without(second, chosen))
    same_fingerprint = fingerprint(first, ignore_paths=written) == fingerprint(second, ignore_paths=written)
    assert same_fingerprint == same_after_removal


def test_a_dotted_name_is_any_python_identifier_as_format_path_may_write_it():
    # Found by the property tests: 'A·' is an identifier ('·' continues one) but not \w+.
    assert parse_paths(["root.A·", "root.café['x']"]) == (("A·",), ("café", "x"))
    with pytest.raises(ValueError, match="is not a name"):
        parse_paths(["root.a-b"])
