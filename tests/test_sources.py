"""DirectorySource: reads only new or changed ``<workflow_id>.json`` files, each once complete."""

import json
import os
import time
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dotflow_dagster.sources
import dotflow_dagster.sources.base
from dotflow_dagster.sources import ArrivedPayload, BadPayload, DirectorySource, PayloadSource, Scan, decode_json

LIMIT = 1_000_000


def write(path: Path, data: bytes | str, *, age: float | None = None) -> Path:
    """Write ``path`` via a temporary name and a rename, as the documented writer does."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(temporary, path)
    if age is not None:
        backdate(path, age)
    return path


def backdate(path: Path, seconds: float) -> None:
    mtime_ns = time.time_ns() - int(seconds * 1e9)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def scan(source: DirectorySource, known: dict[str, str] | None = None, limit: int = LIMIT) -> tuple[Scan, list]:
    result = source.scan(known=known or {}, max_payload_bytes=limit)
    return result, list(result.items)


def versions(items) -> dict[str, str]:
    return {item.location: item.version for item in items}


@pytest.fixture
def inbox(tmp_path: Path) -> Path:
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def opens(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every file opened during the test, by ``os.open`` or ``open``."""
    opened: list[str] = []
    real_os_open, real_open = os.open, open

    def counting_os_open(path, *args, **kwargs):
        opened.append(os.fspath(path))
        return real_os_open(path, *args, **kwargs)

    def counting_open(file, *args, **kwargs):
        opened.append(os.fspath(file) if not isinstance(file, int) else f"fd {file}")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", counting_os_open)
    monkeypatch.setattr("builtins.open", counting_open)
    return opened


def test_every_source_implements_the_interface():
    for source in (DirectorySource, dotflow_dagster.sources.S3Source, dotflow_dagster.sources.SQSSource):
        assert issubclass(source, PayloadSource) and source.__name__ in dotflow_dagster.sources.__all__


# -- decode_json: what every source decodes with -------------------------------------------------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**60), max_value=10**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


def _same(first, second) -> bool:
    """Equal values of equal types all the way down (``1 == 1.0`` does not count)."""
    return first == second and json.dumps(first) == json.dumps(second)


@settings(max_examples=300)
@given(_JSON)
def test_decode_json_reads_every_document_exactly_as_written(value):
    document = json.dumps(value).encode()
    assert _same(decode_json(document), value)


@pytest.mark.parametrize(
    "document, value",
    [
        (json.dumps({"id": 10**30 + 1}).encode(), {"id": 10**30 + 1}),  # orjson: 1e+30
        (b"[18446744073709551615, 18446744073709551616]", [2**64 - 1, 2**64]),  # orjson: the second a float
        (b"[-9223372036854775808, -9223372036854775809]", [-(2**63), -(2**63) - 1]),
        (b'{"n": 1' + b"0" * 400 + b', "f": 1.5}', {"n": 10**400, "f": 1.5}),  # orjson refuses it (infinity)
        (b'{"id": "12345678901234567890", "f": 0.12345678901234567890123}', {"id": "12345678901234567890",
                                                                             "f": 0.12345678901234568}),
    ],
)
def test_decode_json_keeps_integers_beyond_64_bits_exact(document, value):
    assert _same(decode_json(document), value)


@pytest.mark.parametrize(
    "document",
    [
        b"[NaN, 100000000000000000000]",  # orjson accepts strict JSON only, long integers or not
        b"[1e400, 1" + b"0" * 400 + b"]",
        b'["\\ud800", 1' + b"0" * 400 + b"]",
        b'{"n": 1' + b"0" * 400,
        b"1" + b"0" * 400 + b".",
    ],
)
def test_decode_json_refuses_what_orjson_refuses(document):
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(document.replace(b"1" + b"0" * 400, b"0").replace(b"100000000000000000000", b"0"))
    with pytest.raises(orjson.JSONDecodeError):
        decode_json(document)


def test_decode_json_refuses_an_integer_python_will_not_read_and_says_so():
    with pytest.raises(ValueError, match=r"^it holds an integer of more than 4300 digits, which Python refuses"):
        decode_json(b'{"n": ' + b"7" * 5000 + b"}")


def test_only_documents_with_a_19_digit_run_are_decoded_twice(monkeypatch):
    second: list[str] = []
    real = json.loads
    monkeypatch.setattr(dotflow_dagster.sources.base.json, "loads", lambda text: second.append(text) or real(text))
    assert decode_json(b'{"v": [-999999999999999999, 1.5e300, "2024-01-01T00:00:00.123456789"]}')["v"][0] == 1 - 10**18
    assert second == []
    # A long run in a string, or a 64-bit integer written with 19 digits: decoded twice, read the same.
    assert decode_json(b'["1234567890123456789", 9223372036854775807]') == ["1234567890123456789", 2**63 - 1]
    assert second == ['["1234567890123456789", 9223372036854775807]']


def test_key_and_locations_use_the_resolved_path(tmp_path, inbox, monkeypatch):
    (tmp_path / "link").symlink_to(inbox)
    monkeypatch.chdir(tmp_path)
    source = DirectorySource("link")
    assert source.key == f"directory:{inbox.resolve()}"
    assert source.path == inbox.resolve()
    assert repr(source) == f"DirectorySource({str(inbox.resolve())!r})"
    write(inbox / "orders.json", "{}")
    result, items = scan(source)
    assert result.present == {str(inbox.resolve() / "orders.json")}
    assert [item.location for item in items] == [str(inbox.resolve() / "orders.json")]


def test_a_new_file_is_an_arrived_payload(inbox):
    path = write(inbox / "orders.json", '{"rows": [1, 2]}')
    result, items = scan(DirectorySource(inbox))
    status = path.stat()
    assert items == [
        ArrivedPayload(
            workflow_id="orders",
            payload={"rows": [1, 2]},
            location=str(path),
            version=f"{status.st_mtime_ns}:{status.st_ctime_ns}:{status.st_size}",
        )
    ]
    assert result.present == {str(path)}


@pytest.mark.parametrize("document", ["[1, 2, 3]", "42", '"text"', "null", "true"])
def test_any_json_value_is_a_payload(inbox, document):
    write(inbox / "anything.json", document)
    _, items = scan(DirectorySource(inbox))
    assert [item.payload for item in items] == [orjson.loads(document)]


def test_an_unchanged_file_is_neither_yielded_nor_opened(inbox, opens):
    source = DirectorySource(inbox)
    write(inbox / "a.json", '{"v": 1}')
    write(inbox / "b.json", '{"v": 2}')
    _, first = scan(source)
    assert len(first) == 2
    opens.clear()

    result, items = scan(source, versions(first))

    assert items == [] and opens == []
    assert result.present == {str(inbox / "a.json"), str(inbox / "b.json")}


def test_items_are_read_lazily_in_name_order(inbox, opens):
    for name in ("c", "a", "b"):
        write(inbox / f"{name}.json", f'"{name}"')
    opens.clear()
    result = DirectorySource(inbox).scan(known={}, max_payload_bytes=LIMIT)
    assert opens == []  # listing only
    first = next(result.items)
    assert first.workflow_id == "a" and opens == [str(inbox / "a.json")]
    assert [item.workflow_id for item in result.items] == ["b", "c"]


def test_a_touched_file_is_yielded_again(inbox):
    source = DirectorySource(inbox)
    path = write(inbox / "orders.json", '{"v": 1}', age=10)
    _, first = scan(source)
    os.utime(path)  # same content, new mtime: the sensor drops it by fingerprint

    _, again = scan(source, versions(first))

    assert [(item.workflow_id, item.payload) for item in again] == [("orders", {"v": 1})]
    assert again[0].version != first[0].version


def _change_ctime(path: Path, mode: int) -> None:
    """``chmod`` that surely moves the ctime, even on a filesystem whose clock is coarse."""
    before = path.stat().st_ctime_ns
    os.chmod(path, mode)
    while path.stat().st_ctime_ns == before:
        time.sleep(0.005)
        os.chmod(path, mode)


def test_a_file_whose_permissions_change_is_yielded_again(inbox):
    # The fix for a file made readable again (chmod 644): mtime and size stay, the ctime moves.
    source = DirectorySource(inbox)
    path = write(inbox / "orders.json", '{"v": 1}', age=10)
    _, first = scan(source)
    status = path.stat()
    assert first[0].version == f"{status.st_mtime_ns}:{status.st_ctime_ns}:{status.st_size}"
    _change_ctime(path, 0o600)

    _, again = scan(source, versions(first))

    assert [(item.workflow_id, item.payload) for item in again] == [("orders", {"v": 1})]
    assert path.stat().st_mtime_ns == status.st_mtime_ns and again[0].version != first[0].version
    assert scan(source, versions(again))[1] == []


def test_a_changed_file_is_yielded_with_its_new_content(inbox):
    source = DirectorySource(inbox)
    write(inbox / "orders.json", '{"v": 1}', age=10)
    _, first = scan(source)
    write(inbox / "orders.json", '{"v": 22}')
    _, again = scan(source, versions(first))
    assert [item.payload for item in again] == [{"v": 22}]


def test_temporary_and_other_names_are_ignored_entirely(inbox, opens):
    for name in (
        "orders.json.tmp",
        ".orders.json",
        "orders.json~",
        "orders.json.swp",
        "orders.json.part",
        "orders.txt",
        "orders.JSON",
        "orders",
        ".json",
        "..json",
    ):
        (inbox / name).write_text("not json")
    (inbox / "folder.json").mkdir()
    (inbox / "folder.json" / "nested.json").write_text("{}")
    (inbox / "dangling.json").symlink_to(inbox / "nowhere.json")
    opens.clear()

    result, items = scan(DirectorySource(inbox))

    assert items == [] and result.present == frozenset() and opens == []


def test_a_symlink_to_a_file_is_a_payload(tmp_path, inbox):
    target = write(tmp_path / "elsewhere.json", '{"v": 1}')
    (inbox / "linked.json").symlink_to(target)
    _, items = scan(DirectorySource(inbox))
    assert [(item.workflow_id, item.location, item.payload) for item in items] == [
        ("linked", str(inbox / "linked.json"), {"v": 1})
    ]


def test_a_young_half_written_file_is_skipped_then_read_when_complete(inbox):
    source = DirectorySource(inbox)
    path = inbox / "orders.json"
    path.write_text('{"rows": [1, 2')  # a writer that does not rename, mid-write

    result, items = scan(source)
    assert items == [] and result.present == {str(path)}

    with path.open("a") as handle:
        handle.write("]}")
    _, items = scan(source)  # nothing was yielded, so nothing is known
    assert [(item.workflow_id, item.payload) for item in items] == [("orders", {"rows": [1, 2]})]


def test_an_empty_young_file_is_skipped(inbox):
    (inbox / "orders.json").touch()
    assert scan(DirectorySource(inbox))[1] == []


def test_an_old_file_that_does_not_parse_is_bad_once_per_version(inbox):
    source = DirectorySource(inbox)
    path = write(inbox / "orders.json", '{"rows": [1, 2', age=5)

    _, items = scan(source)

    assert len(items) == 1 and isinstance(items[0], BadPayload)
    bad = items[0]
    assert bad.location == str(path) and bad.workflow_id == "orders"
    assert bad.reason.startswith(f"invalid JSON in {path}: ")
    assert "line 1" in bad.reason  # orjson's message
    assert scan(source, versions(items))[1] == []  # reported once per version

    write(path, '{"rows": [1, 2]}')
    _, fixed = scan(source, versions(items))
    assert [item.payload for item in fixed] == [{"rows": [1, 2]}]


def test_settle_seconds_zero_reports_a_fresh_invalid_file_at_once(inbox):
    write(inbox / "orders.json", "{")
    _, items = scan(DirectorySource(inbox, settle_seconds=0))
    assert [type(item) for item in items] == [BadPayload]
    with pytest.raises(ValueError, match="settle_seconds"):
        DirectorySource(inbox, settle_seconds=-1)


def test_a_file_with_an_integer_beyond_64_bits_is_read_exactly_and_one_python_refuses_is_bad_at_once(inbox):
    exact = write(inbox / "exact.json", json.dumps({"n": 10**30 + 1}))
    refused = write(inbox / "refused.json", '{"n": ' + "7" * 5000 + "}")  # young: still bad at once, it parsed

    _, items = scan(DirectorySource(inbox))

    assert items[0] == ArrivedPayload(workflow_id="exact", payload={"n": 10**30 + 1}, location=str(exact),
                                      version=items[0].version)
    assert isinstance(items[1], BadPayload) and items[1].workflow_id == "refused"
    assert items[1].reason.startswith(f"cannot read {refused}: it holds an integer of more than 4300 digits")


@pytest.mark.parametrize("stem", ["my orders", "x" * 129, "caf\u00e9", "a:b"])
def test_a_name_that_is_no_workflow_id_is_bad_without_being_read(inbox, opens, stem):
    path = write(inbox / f"{stem}.json", "{}")
    opens.clear()

    result, items = scan(DirectorySource(inbox))

    assert opens == [] and result.present == {str(path)}
    assert len(items) == 1 and isinstance(items[0], BadPayload)
    assert items[0].workflow_id is None and items[0].location == str(path)
    assert items[0].reason.startswith(f"{path}: invalid workflow_id {stem!r}")


def test_a_file_over_the_limit_is_bad_without_being_read(inbox, opens):
    path = write(inbox / "big.json", "[" + "1," * 100 + "1]")
    size = path.stat().st_size
    opens.clear()

    _, items = scan(DirectorySource(inbox), limit=size - 1)

    assert opens == []
    assert items == [
        BadPayload(
            location=str(path),
            version=f"{path.stat().st_mtime_ns}:{path.stat().st_ctime_ns}:{size}",
            reason=f"{path} is {size} bytes, over max_payload_bytes={size - 1}",
            workflow_id="big",
        )
    ]
    assert [item.payload for item in scan(DirectorySource(inbox), limit=size)[1]] == [[1] * 101]


def test_a_file_that_grew_past_the_limit_after_the_listing_is_read_only_up_to_the_limit(inbox, monkeypatch):
    path = write(inbox / "growing.json", "[1]")
    result = DirectorySource(inbox).scan(known={}, max_payload_bytes=100)
    with path.open("a") as handle:
        handle.write(" " * 10_000)
    requested: list[int] = []
    real_read = os.read

    def read(fd, size):
        requested.append(size)
        return real_read(fd, size)

    monkeypatch.setattr(os, "read", read)

    items = list(result.items)

    assert sum(requested) <= 101
    assert len(items) == 1 and isinstance(items[0], BadPayload)
    assert items[0].reason == f"{path} is {path.stat().st_size} bytes, over max_payload_bytes=100"


def test_a_file_deleted_between_listing_and_reading_is_skipped(inbox):
    path = write(inbox / "orders.json", "{}")
    result = DirectorySource(inbox).scan(known={}, max_payload_bytes=LIMIT)
    path.unlink()
    assert list(result.items) == []
    assert result.present == {str(path)}  # as listed; the next scan forgets it


def test_an_unreadable_file_is_bad_with_the_os_reason(inbox, monkeypatch):
    path = write(inbox / "secret.json", "{}")
    real_os_open = os.open

    def refuse(target, *args, **kwargs):
        if os.fspath(target) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_os_open(target, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)

    _, items = scan(DirectorySource(inbox))

    assert items == [
        BadPayload(
            location=str(path),
            version=f"{path.stat().st_mtime_ns}:{path.stat().st_ctime_ns}:{path.stat().st_size}",
            reason=f"cannot read {path}: Permission denied",
            workflow_id="secret",
        )
    ]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs file permissions that bind the user")
def test_an_unreadable_file_is_bad_for_real(inbox):
    path = write(inbox / "secret.json", "{}")
    path.chmod(0)
    _, items = scan(DirectorySource(inbox))
    assert [item.reason for item in items] == [f"cannot read {path}: Permission denied"]


def test_a_file_that_cannot_be_stat_ed_is_bad_once(inbox):
    (inbox / "loop.json").symlink_to(inbox / "loop.json")
    source = DirectorySource(inbox)
    result, items = scan(source)
    assert result.present == {str(inbox / "loop.json")}
    assert len(items) == 1 and isinstance(items[0], BadPayload)
    assert items[0].reason.startswith(f"cannot stat {inbox / 'loop.json'}: ")
    assert items[0].workflow_id == "loop"
    assert scan(source, versions(items))[1] == []


def test_one_bad_file_does_not_stop_the_others(inbox):
    write(inbox / "a.json", '"a"')
    write(inbox / "b b.json", '"b"')
    write(inbox / "c.json", "{", age=5)
    write(inbox / "d.json", '"d"')
    _, items = scan(DirectorySource(inbox))
    assert [(type(item).__name__, os.path.basename(item.location)) for item in items] == [
        ("ArrivedPayload", "a.json"),
        ("BadPayload", "b b.json"),
        ("BadPayload", "c.json"),
        ("ArrivedPayload", "d.json"),
    ]


def test_present_lists_every_json_file_and_known_ones_are_not_read_again(inbox):
    source = DirectorySource(inbox)
    write(inbox / "a.json", "{}")
    write(inbox / "bad name.json", "{}")
    write(inbox / "big.json", "[" + "0," * 50 + "0]")
    (inbox / "young.json").write_text("{")
    (inbox / "ignored.json.tmp").write_text("{}")

    result, items = scan(source, limit=50)

    expected = {str(inbox / name) for name in ("a.json", "bad name.json", "big.json", "young.json")}
    assert result.present == expected
    assert sorted(os.path.basename(item.location) for item in items) == ["a.json", "bad name.json", "big.json"]

    (inbox / "a.json").unlink()
    result, items = scan(source, versions(items), limit=50)
    assert result.present == expected - {str(inbox / "a.json")}
    assert items == []  # young.json is still young


def test_a_missing_directory_is_a_configuration_error_at_scan_time(tmp_path):
    source = DirectorySource(tmp_path / "missing")  # fine until scanned
    with pytest.raises(FileNotFoundError, match=f"payload directory {tmp_path / 'missing'} does not exist"):
        source.scan(known={}, max_payload_bytes=LIMIT)
    (tmp_path / "file").write_text("")
    with pytest.raises(NotADirectoryError, match="is not a directory"):
        DirectorySource(tmp_path / "file").scan(known={}, max_payload_bytes=LIMIT)


@pytest.mark.parametrize("limit", [-1, 1.5, True, "10"])
def test_max_payload_bytes_must_be_a_non_negative_int(inbox, limit):
    with pytest.raises(ValueError, match="max_payload_bytes"):
        DirectorySource(inbox).scan(known={}, max_payload_bytes=limit)


def test_ten_thousand_unchanged_files_open_nothing(inbox, opens):
    source = DirectorySource(inbox)
    for index in range(10_000):
        (inbox / f"wf-{index:05d}.json").write_bytes(b'{"i": %d}' % index)
    known = {
        entry.path: f"{entry.stat().st_mtime_ns}:{entry.stat().st_ctime_ns}:{entry.stat().st_size}"
        for entry in os.scandir(inbox)
    }
    opens.clear()

    result, items = scan(source, known)

    assert items == [] and opens == []
    assert len(result.present) == 10_000 and result.present == set(known)

    os.utime(inbox / "wf-04242.json", ns=(1, 1))
    _, items = scan(source, known)
    assert [item.workflow_id for item in items] == ["wf-04242"]
    assert opens == [str(inbox / "wf-04242.json")]
