"""LocalStore as dotflow's Storage: overwrite, atomic and durable, no failed checkpoints, no prefix
clashes, expiring keys, OS failures as StoreError, and a run lock that can wait.

Tests of store semantics run against every store (``store`` is parametrized: LocalStore, and
S3Store on a local moto server over HTTP); tests of LocalStore's files, fsyncs, OS errors and
flock say so with ``@local_only(reason)`` and are skipped for the others.
"""

import errno
import json
import math
import os
import pickle
import re
import subprocess
import sys
import threading
import time

import pytest
from dotflow import Config, DotFlow, action
from dotflow.core.context import Context
from dotflow.core.exception import InputChangedError

from dotflow_dagster import LocalStore, RunInProgressError, StoreError
from dotflow_dagster.stores import DotflowStore
from dotflow_dagster.stores import base as base_module
from dotflow_dagster.stores import local as stores_module
from tests.conftest import ROOT, subprocess_env
from tests.moto_server import (  # noqa: F401 - moto_server_fixture provides the fixture moto_server
    moto_server_fixture,
    new_s3_store,
    raw_object,
    store_env,
    store_spec,
    unavailable_reason,
)

WORKFLOW = "0b6a2f4e-6d55-4a5e-8d2e-0d7e1d0c9a11"
OTHER_WORKFLOW = "0b6a2f4e-6d55-4a5e-8d2e-0d7e1d0c9a12"


def local_only(reason: str):
    """Run a test against LocalStore only; the other stores skip it with ``reason``."""

    def mark(test):
        test.local_only_reason = reason
        return test

    return mark


@pytest.fixture(params=["LocalStore", "S3Store"])
def store(request, tmp_path) -> DotflowStore:
    """Each store in turn, empty: LocalStore in a scratch directory, S3Store in a fresh bucket."""
    if request.param == "LocalStore":
        return LocalStore(tmp_path / "store")
    reason = getattr(request.function, "local_only_reason", None)
    if reason:
        pytest.skip(f"LocalStore only: {reason}")
    request.getfixturevalue("moto_server")  # fails, never skips, where moto[server] is missing
    return new_s3_store()


def stored_names(store: DotflowStore, folder: str) -> list[str]:
    """Names of everything a store keeps directly in ``folder`` (its own internal files included)."""
    if isinstance(store, LocalStore):
        return sorted(path.name for path in (store.root / folder).iterdir())
    listing = store.client.list_objects_v2(Bucket=store.bucket, Prefix=f"{store.prefix}{folder}/", Delimiter="/")
    return sorted(item["Key"].rsplit("/", 1)[1] for item in listing.get("Contents", ()))


def stored_bytes(store: DotflowStore, key: str) -> bytes | None:
    """The bytes a store keeps for ``key`` (a TTL header included), or ``None``."""
    if isinstance(store, LocalStore):
        path = store.root / key
        return path.read_bytes() if path.exists() else None
    return raw_object(store, key)


def plant(store: DotflowStore, key: str, raw: bytes) -> None:
    """Put ``raw`` at ``key`` behind the store's back, as an earlier version (or another tool) wrote it."""
    if isinstance(store, LocalStore):
        (store.root / key).parent.mkdir(parents=True, exist_ok=True)
        (store.root / key).write_bytes(raw)
    else:
        store.client.put_object(Bucket=store.bucket, Key=store.prefix + key, Body=raw)


def test_post_overwrites_instead_of_appending(store):
    store.post("a/b", Context(storage={"n": 1}))
    store.post("a/b", Context(storage={"n": 2}))
    assert store.get("a/b").storage == {"n": 2}


def test_missing_key_reads_as_an_empty_context(store):
    assert store.get("nothing/here").storage is None


def test_writes_leave_no_temporary_files(store):
    for index in range(20):
        store.post("k/v", Context(storage=index))
    assert stored_names(store, "k") == ["v"]


def test_clear_removes_only_that_workflows_keys(store):
    store.post("dotflow/wf-1/task", Context(storage=1))
    store.post("dotflow/wf-10/task", Context(storage=10))  # dotflow's bare "wf-1-" prefix would match this too
    store.clear("wf-1")
    assert store.get("dotflow/wf-1/task").storage is None
    assert store.get("dotflow/wf-10/task").storage == 10


def test_atomic_swap_is_a_compare_and_swap(store):
    assert store.atomic_swap("cas/key", None, 1)
    assert not store.atomic_swap("cas/key", None, 2)
    assert store.atomic_swap("cas/key", 1, 3)
    assert store.get("cas/key").storage == 3


def test_compare_and_swap_under_contention_loses_no_update(store):
    def increment() -> None:
        for _ in range(25):
            store.update("counter", lambda data: str(int(data or b"0") + 1).encode())

    threads = [threading.Thread(target=increment) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.read_bytes("counter") == b"100"


def test_as_plain_dotflow_storage_a_failed_task_leaves_no_checkpoint(store):
    @action
    def ok_step():
        return {"done": True}

    @action
    def failing_step():
        raise RuntimeError("nope")

    flow = DotFlow(config=Config(storage=store), workflow_id="0b6a2f4e-6d55-4a5e-8d2e-0d7e1d0c9a11")
    flow.task.add(step=[ok_step, failing_step])
    flow.start()
    tasks = flow.result_task()
    assert store.get(store.key(tasks[0])).storage == {"done": True}
    assert store.get(store.key(tasks[1])).storage is None
    assert store.list_keys("dotflow/0b6a2f4e-6d55-4a5e-8d2e-0d7e1d0c9a11/") == [store.key(tasks[0])]


def test_list_and_delete_prefix_use_string_prefixes_like_dotflow_and_s3(store):
    for key in ("wf/a", "wf/ab", "wf/b", "wfx/a"):
        store.post(key, Context(storage=key))
    assert store.list_keys("wf/a") == ["wf/a", "wf/ab"]
    assert store.list_keys("wf/") == ["wf/a", "wf/ab", "wf/b"]
    assert store.delete_prefix("wf/a") == 2
    assert store.list_keys("") == ["wf/b", "wfx/a"]


# -- clear: dotflow's flat keys too, never another workflow's -------------------------------------


def test_clear_of_a_uuid_workflow_removes_dotflows_flat_keys_and_its_folder(store):
    mine = [f"{WORKFLOW}-1", f"{WORKFLOW}-_input_fp", f"dotflow/{WORKFLOW}/1"]
    others = [f"{OTHER_WORKFLOW}-1", f"dotflow/{OTHER_WORKFLOW}/1", f"workflows/{WORKFLOW}/ledger.json"]
    for key in mine + others:
        store.post(key, Context(storage=key))
    store.clear(WORKFLOW)
    assert store.list_keys("") == sorted(others)


def test_clear_of_a_non_uuid_workflow_spares_workflows_that_extend_its_id(store):
    # dotflow accepts any string id; "nightly-" is also how "nightly-eu"'s keys start.
    mine = ["nightly-1", "nightly-_input_fp"]
    others = ["nightly-eu-_input_fp", "nightly-eu-1", "nightlyx-1", "workflows/nightly/ledger.json"]
    for key in mine + others:
        store.post(key, Context(storage=key))
    store.clear("nightly")
    assert store.list_keys("") == sorted(others)


def test_clear_of_a_non_uuid_workflow_never_touches_uuid_workflows(store):
    uuid_key = "12345678-1234-4234-8234-123456789abc-1"
    store.post(uuid_key, Context(storage=1))
    store.clear("12345678")
    assert store.get(uuid_key).storage == 1


def test_clear_refuses_a_workflow_id_that_is_not_one_segment(store):
    store.post("dotflow/a/b/1", Context(storage=1))
    with pytest.raises(ValueError, match="one key segment"):
        store.clear("a/b")
    assert store.get("dotflow/a/b/1").storage == 1


def test_plain_dotflow_reset_on_input_change_clears_that_workflows_checkpoints(store):
    @action
    def step(initial_context):
        return {"seen": initial_context.storage}

    store.post(f"dotflow/{OTHER_WORKFLOW}/1", Context(storage="other"))

    def run(payload, **options):
        flow = DotFlow(config=Config(storage=store), workflow_id=WORKFLOW)
        flow.task.add(step=step, initial_context=payload)
        flow.start(resume=True, **options)
        return flow.result_task()[0]

    first = run({"n": 1})
    fingerprint = store.get(f"{WORKFLOW}-_input_fp").storage  # dotflow's own flat key
    assert store.list_keys(f"dotflow/{WORKFLOW}/") == [store.key(first)]
    second = run({"n": 2}, on_input_change="reset")  # dotflow calls clear(), then runs again
    assert store.list_keys(f"dotflow/{WORKFLOW}/") == [store.key(second)]
    assert store.get(store.key(second)).storage == {"seen": {"n": 2}}
    assert store.get(f"{WORKFLOW}-_input_fp").storage not in (None, fingerprint)
    assert store.get(f"dotflow/{OTHER_WORKFLOW}/1").storage == "other"
    with pytest.raises(InputChangedError):
        run({"n": 3}, on_input_change="raise")


# -- TTL --------------------------------------------------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    """A controllable wall clock for expiry (``clock.now += 10`` moves time on)."""

    class Clock:
        now = 1_700_000_000.0

    monkeypatch.setattr(stores_module, "_wall_clock", lambda: Clock.now)
    return Clock


def test_a_key_posted_with_ttl_reads_absent_and_is_unlisted_after_it_expires(store, clock):
    store.post("t/short", Context(storage="x"), ttl=5)
    store.post("t/kept", Context(storage="y"))
    assert store.get("t/short").storage == "x"
    assert store.list_keys("t/") == ["t/kept", "t/short"]
    clock.now += 5
    assert store.get("t/short").storage is None
    assert not store.exists("t/short")
    assert store.read_versioned("t/short") == (None, None)
    assert store.list_keys("t/") == ["t/kept"]
    assert store.get("t/kept").storage == "y"


def test_keys_written_without_ttl_never_expire(store, clock):
    store.write_bytes("workflows/w/ledger.json", b'{"format": 1}')
    store.post("workflows/w/checkpoints/f/step", Context(storage=1))
    clock.now += 10**9
    assert store.read_bytes("workflows/w/ledger.json") == b'{"format": 1}'
    assert store.get("workflows/w/checkpoints/f/step").storage == 1
    # ... and stay exactly the bytes earlier versions wrote (no header).
    assert stored_bytes(store, "workflows/w/ledger.json") == b'{"format": 1}'
    assert stored_bytes(store, "workflows/w/checkpoints/f/step") == pickle.dumps(1, protocol=5)


def test_values_written_by_earlier_versions_still_read(store):
    plant(store, "old/checkpoint", pickle.dumps({"a": 1}))
    plant(store, "old/ledger.json", b"{}")
    assert store.get("old/checkpoint").storage == {"a": 1}
    assert store.read_bytes("old/ledger.json") == b"{}"
    assert store.list_keys("old/") == ["old/checkpoint", "old/ledger.json"]


def test_a_value_that_looks_like_a_ttl_header_round_trips(store, clock):
    tricky = stores_module._TTL_MAGIC + (0.0).hex().encode() + b"\x00" * 16
    store.write_bytes("tricky", tricky)
    clock.now += 10**9
    assert store.read_bytes("tricky") == tricky
    assert store.list_keys("tricky") == ["tricky"]


def test_overwriting_without_ttl_drops_the_expiry_and_with_ttl_sets_it(store, clock):
    store.post("k", Context(storage=1), ttl=5)
    store.post("k", Context(storage=2))
    clock.now += 10
    assert store.get("k").storage == 2
    assert store.atomic_swap("k", 2, 3, ttl=5)
    clock.now += 4
    assert store.get("k").storage == 3
    clock.now += 1
    assert store.get("k").storage is None


def test_an_expired_key_counts_as_absent_for_compare_and_swap(store, clock):
    store.post("k", Context(storage="old"), ttl=1)
    _, old_version = store.read_versioned("k")
    clock.now += 1
    assert not store.write_bytes_if("k", b"x", expected_version=old_version)
    assert not store.atomic_swap("k", "old", "new")
    assert store.atomic_swap("k", None, "new")
    assert store.get("k").storage == "new"
    assert not store.write_bytes_if("k", b"x", expected_version=None)  # live again


def test_an_expired_key_is_recreated_by_a_create_if_absent_write(store, clock):
    store.write_bytes("k", b"old", ttl=1)
    assert not store.write_bytes_if("k", b"new", expected_version=None)
    clock.now += 1
    assert store.write_bytes_if("k", b"new", expected_version=None)
    assert store.read_bytes("k") == b"new"


def test_deleting_expired_keys_removes_their_files(store, clock):
    store.post("a/x", Context(storage=1), ttl=1)
    store.post("a/y", Context(storage=2), ttl=1)
    store.post("a/z", Context(storage=3))
    clock.now += 1
    assert store.delete("a/x") is False  # it no longer held a value...
    assert stored_bytes(store, "a/x") is None  # ...but its file is gone
    assert store.delete_prefix("a/") == 1  # a/z; a/y was expired
    if isinstance(store, LocalStore):
        assert not (store.root / "a").exists()
    else:
        assert stored_names(store, "a") == []


def test_copy_prefix_keeps_expiry(store, clock):
    store.post("src/a", Context(storage=1), ttl=5)
    store.post("src/b", Context(storage=2))
    assert store.copy_prefix("src/", "dst/") == 2
    clock.now += 5
    assert store.list_keys("dst/") == ["dst/b"]


@pytest.mark.parametrize("ttl", [0, -1, math.nan, math.inf, True, "5"])
def test_invalid_ttls_are_refused(store, ttl):
    with pytest.raises(ValueError, match="ttl must be"):
        store.post("k", Context(storage=1), ttl=ttl)
    with pytest.raises(ValueError, match="ttl must be"):
        store.atomic_swap("k", None, 1, ttl=ttl)
    assert not store.exists("k")


# -- OS failures are StoreErrors naming the store, the key and the reason ---------------------------


def _assert_store_error(error: pytest.ExceptionInfo, store: LocalStore, *words: str) -> None:
    message = str(error.value)
    assert store.location in message
    for word in words:
        assert word in message, message
    assert isinstance(error.value.__cause__, OSError)


@pytest.fixture
def file_root(tmp_path) -> LocalStore:
    root = tmp_path / "not-a-directory"
    root.write_text("a regular file")
    return LocalStore(root)


@pytest.mark.parametrize(
    "operation",
    [
        lambda store: store.post("a/b", Context(storage=1)),
        lambda store: store.write_bytes("a", b"x"),
        lambda store: store.write_bytes_if("a", b"x", expected_version=None),
        lambda store: store.write_bytes_if("a", b"x", expected_version="v"),
        lambda store: store.get("a/b"),
        lambda store: store.read_versioned("a"),
        lambda store: store.exists("a"),
        lambda store: store.delete("a"),
        lambda store: store.list_keys(""),
        lambda store: store.list_keys("a/"),
        lambda store: store.delete_prefix("a/"),
        lambda store: store.clear(WORKFLOW),
        lambda store: store.run_lock(WORKFLOW).__enter__(),
    ],
    ids=[
        "post", "write_bytes", "create", "cas", "get", "read_versioned", "exists", "delete",
        "list_keys", "list_folder", "delete_prefix", "clear", "run_lock",
    ],
)
def test_a_root_that_is_a_regular_file_raises_store_error(file_root, operation):
    with pytest.raises(StoreError) as error:
        operation(file_root)
    _assert_store_error(error, file_root, "Not a directory", "ENOTDIR")


def test_a_root_under_a_regular_file_raises_store_error(file_root):
    store = LocalStore(file_root.root / "store")
    with pytest.raises(StoreError) as error:
        store.post("a", Context(storage=1))
    _assert_store_error(error, store, "cannot write key 'a'", "ENOTDIR", str(file_root.root))
    with pytest.raises(StoreError) as error:
        store.get("a")
    _assert_store_error(error, store, "cannot read key 'a'", "ENOTDIR")


@local_only("a key blocking a folder is a filesystem limit (on S3 'a' and 'a/b' coexist)")
def test_a_key_under_another_key_cannot_be_written_and_reads_absent(store):
    store.post("a", Context(storage=1))
    with pytest.raises(StoreError) as error:
        store.post("a/b", Context(storage=2))
    _assert_store_error(error, store, "cannot write key 'a/b'", "ENOTDIR", str(store.root / "a"))
    assert store.get("a/b").storage is None
    assert store.delete("a/b") is False
    assert store.list_keys("a/") == []
    assert store.get("a").storage == 1


@local_only("a folder blocking a key is a filesystem limit (on S3 'a' and 'a/b' coexist)")
def test_a_key_that_is_a_folder_of_keys_cannot_be_written_and_reads_absent(store):
    store.post("a/b", Context(storage=1))
    with pytest.raises(StoreError) as error:
        store.post("a", Context(storage=2))
    _assert_store_error(error, store, "cannot write key 'a'", "Is a directory", "EISDIR")
    assert store.get("a").storage is None
    assert store.delete("a") is False
    # Absent to readers, yet no compare-and-swap can ever create it: refused at once, not retried.
    started = time.monotonic()
    for write in (lambda: store.write_bytes_if("a", b"x", expected_version=None),
                  lambda: store.update("a", lambda current: b"x")):
        with pytest.raises(StoreError) as error:
            write()
        _assert_store_error(error, store, "cannot write key 'a'", "a folder is in the way of the key", "EISDIR")
    assert time.monotonic() - started < 1.0
    assert store.get("a/b").storage == 1


@local_only("a folder blocking a key is a filesystem limit (on S3 'a' and 'a/b' coexist)")
def test_an_empty_folder_where_a_key_belongs_fails_every_read_and_write_at_once(store):
    store.post("workflows/w/payloads/kept.pickle", Context(storage=1))
    (store.root / "workflows" / "w" / "ledger.json").mkdir()
    (store.root / "workflows" / "w" / "ledger.json" / "#ledger.lock").touch()  # internal files are no keys
    started = time.monotonic()
    for name, operation in [
        ("read", lambda: store.read_versioned("workflows/w/ledger.json")),
        ("read", lambda: store.exists("workflows/w/ledger.json")),
        ("delete", lambda: store.delete("workflows/w/ledger.json")),
        ("write", lambda: store.write_bytes_if("workflows/w/ledger.json", b"{}", expected_version=None)),
        ("read", lambda: store.write_bytes_if("workflows/w/ledger.json", b"{}", expected_version="v1")),
        ("read", lambda: store.update("workflows/w/ledger.json", lambda current: b"{}")),  # reads first
    ]:
        with pytest.raises(StoreError) as error:
            operation()
        _assert_store_error(error, store, f"cannot {name} key 'workflows/w/ledger.json'", "EISDIR",
                            str(store.root / "workflows" / "w" / "ledger.json"))
        assert "a folder" in str(error.value) and "in the way of the key" in str(error.value)
    assert time.monotonic() - started < 1.0  # never 50 compare-and-swap attempts
    assert store.get("workflows/w/payloads/kept.pickle").storage == 1


@local_only("a symlink loop is an OS error of local files")
def test_an_unreadable_key_raises_store_error_rather_than_reading_absent(store):
    # A symlink loop fails to open even for root (who ignores permission bits).
    store.post("a/ok", Context(storage=1))
    os.symlink("loop", store.root / "a/loop")
    for operation in (lambda: store.get("a/loop"), lambda: store.delete("a/loop"), lambda: store.list_keys("a/")):
        with pytest.raises(StoreError) as error:
            operation()
        _assert_store_error(error, store, "key 'a/loop'", "ELOOP")


@pytest.fixture
def unwritable_workflows(tmp_path):
    """A store whose ``workflows/`` folder (ledgers, run locks) cannot be written in.

    A read-only directory (0o500) where that blocks writes; as root (CI), where permission bits
    do not, ``workflows`` is a regular file instead, which fails for every user.
    """
    store = LocalStore(tmp_path / "store")
    store.post("workflows/existing", Context(storage=1))
    folder = store.root / "workflows"
    folder.chmod(0o500)
    if not os.access(folder, os.W_OK):
        yield store
        folder.chmod(0o700)
        return
    folder.chmod(0o700)
    store.delete_prefix("workflows/")
    folder.write_text("in the way")
    yield store


def test_an_unwritable_folder_raises_store_error(unwritable_workflows):
    store = unwritable_workflows
    for operation, what in [
        (lambda: store.post("workflows/w/new", Context(storage=1)), "cannot write key 'workflows/w/new'"),
        (lambda: store.write_bytes_if("workflows/w/new", b"x", expected_version=None), "cannot write key"),
        (lambda: store.update("workflows/w/ledger.json", lambda _: b"{}"), "cannot write key"),
        (lambda: store.run_lock("w").__enter__(), "cannot take the run lock of workflow 'w'"),
    ]:
        with pytest.raises(StoreError) as error:
            operation()
        _assert_store_error(error, store, what, str(store.root / "workflows"))
    assert store.get("workflows/w/new").storage is None


def test_a_read_only_key_cannot_be_deleted(tmp_path):
    store = LocalStore(tmp_path / "store")
    store.post("locked/existing", Context(storage=1))
    (store.root / "locked").chmod(0o500)
    try:
        if os.access(store.root / "locked", os.W_OK):
            pytest.skip("permission bits do not bind this user (root)")
        with pytest.raises(StoreError) as error:
            store.delete("locked/existing")
        _assert_store_error(error, store, "cannot delete key 'locked/existing'", "EACCES")
    finally:
        (store.root / "locked").chmod(0o700)


def test_an_os_error_inside_the_run_lock_block_is_not_the_stores(store):
    with pytest.raises(PermissionError):
        with store.run_lock(WORKFLOW):
            raise PermissionError(errno.EACCES, "the caller's own failure")


# -- durability ---------------------------------------------------------------------------------------


@pytest.fixture
def os_calls(monkeypatch) -> list[tuple[str, str]]:
    """Record renames, links, unlinks, mkdirs and fsyncs (of files and of directories) in order."""
    calls: list[tuple[str, str]] = []
    real = {name: getattr(os, name) for name in ("fsync", "replace", "link", "unlink", "mkdir")}

    def fsync(fd):
        kind = "fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file"
        calls.append((kind, os.readlink(f"/proc/self/fd/{fd}")))
        return real["fsync"](fd)

    def recorder(name):
        def call(path, *args, **kwargs):
            result = real[name](path, *args, **kwargs)
            calls.append((name, os.fspath(args[0]) if name in ("replace", "link") else os.fspath(path)))
            return result

        return call

    monkeypatch.setattr(os, "fsync", fsync)
    for name in ("replace", "link", "unlink", "mkdir"):
        monkeypatch.setattr(os, name, recorder(name))
    return calls


def _after(calls: list[tuple[str, str]], event: tuple[str, str]) -> list[tuple[str, str]]:
    assert event in calls, calls
    return calls[calls.index(event) + 1 :]


@local_only("fsyncs of files and folders are how LocalStore makes writes durable")
def test_a_write_fsyncs_the_directory_after_the_rename(store, os_calls):
    store.post("a/b", Context(storage=1))
    os_calls.clear()
    store.post("a/b", Context(storage=2))
    target = store.root / "a/b"
    assert os_calls[0][0] == "fsync-file"  # the temporary file's data, before the rename
    assert ("fsync-dir", str(target.parent)) in _after(os_calls, ("replace", str(target)))


@local_only("fsyncs of files and folders are how LocalStore makes writes durable")
def test_a_create_if_absent_fsyncs_the_directory_after_the_link(store, os_calls):
    store.write_bytes_if("a/b", b"x", expected_version=None)
    target = store.root / "a/b"
    assert ("fsync-dir", str(target.parent)) in _after(os_calls, ("link", str(target)))


@local_only("fsyncs of files and folders are how LocalStore makes writes durable")
def test_new_folders_are_fsynced_into_their_parents(store, os_calls):
    store.post("a/b/c", Context(storage=1))
    for folder in (store.root, store.root / "a", store.root / "a/b"):
        assert ("fsync-dir", str(folder.parent)) in _after(os_calls, ("mkdir", str(folder)))


@local_only("fsyncs of files and folders are how LocalStore makes writes durable")
def test_a_delete_fsyncs_the_directory_after_the_unlink(store, os_calls):
    store.post("a/b", Context(storage=1))
    store.post("a/c", Context(storage=1))
    store.delete("a/b")
    assert ("fsync-dir", str(store.root / "a")) in _after(os_calls, ("unlink", str(store.root / "a/b")))
    store.delete_prefix("a/c")
    assert ("fsync-dir", str(store.root / "a")) in _after(os_calls, ("unlink", str(store.root / "a/c")))


# -- the run lock -------------------------------------------------------------------------------------


HOLDER = """
import sys
from tests.support.cli import open_store
with open_store(sys.argv[1]).run_lock(sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes stdin
"""


@pytest.fixture
def held_by_another_process(store):
    """Hold ``WORKFLOW``'s run lock in a subprocess; yields its pid; releases at teardown."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, store_spec(store), WORKFLOW],
        cwd=ROOT, env=subprocess_env(**store_env(store)), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout.readline().strip() == "held"
        yield process.pid
    finally:
        process.stdin.close()
        process.wait(timeout=30)


def test_a_second_open_in_the_same_process_conflicts(store):
    with store.run_lock(WORKFLOW):
        with pytest.raises(RunInProgressError, match=f"held by pid {os.getpid()} on "):
            with store.run_lock(WORKFLOW):
                pass
    with store.run_lock(WORKFLOW):  # released with its block
        pass


def test_without_waiting_a_held_lock_fails_fast_naming_the_holder(store, held_by_another_process):
    started = time.monotonic()
    with pytest.raises(RunInProgressError) as error:
        with store.run_lock(WORKFLOW):
            pass
    assert time.monotonic() - started < 1
    assert error.value.workflow_id == WORKFLOW
    assert error.value.holder.startswith(f"pid {held_by_another_process} on ")


def test_a_waiting_lock_times_out_with_run_in_progress(store, held_by_another_process):
    waits = []
    started = time.monotonic()
    with pytest.raises(RunInProgressError) as error:
        with store.run_lock(WORKFLOW, wait_seconds=0.6, on_wait=waits.append):
            pass
    waited = time.monotonic() - started
    assert 0.6 <= waited < 2
    assert f"pid {held_by_another_process} on " in str(error.value)
    assert re.search(r"gave up after waiting (0\.[6-9]|1\.[0-9]) s", str(error.value)), str(error.value)
    assert len(waits) == 1 and waits[0].startswith(f"pid {held_by_another_process} on ")


def test_a_waiting_lock_is_acquired_when_the_holder_releases(store):
    waits = []
    held, release = threading.Event(), threading.Event()

    def hold():
        with store.run_lock(WORKFLOW):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    threading.Timer(0.5, release.set).start()
    started = time.monotonic()
    with store.run_lock(WORKFLOW, wait_seconds=20, on_wait=waits.append):
        acquired_after = time.monotonic() - started
        if isinstance(store, LocalStore):
            holder_text = (store.root / f"workflows/{WORKFLOW}/#run.lock").read_text()
        else:
            holder_text = json.loads(raw_object(store, f"workflows/{WORKFLOW}/#run.lease"))["owner"]
        assert holder_text.startswith(f"pid {os.getpid()} on ")
    holder.join(10)
    assert 0.4 <= acquired_after < 3
    assert len(waits) == 1 and waits[0].startswith(f"pid {os.getpid()} on ")


def test_on_wait_is_called_again_while_the_wait_goes_on(store, held_by_another_process, monkeypatch):
    monkeypatch.setattr(base_module, "_WAIT_REPORT_SECONDS", 0.3)  # both stores wait through base
    waits = []
    with pytest.raises(RunInProgressError):
        with store.run_lock(WORKFLOW, wait_seconds=1.5, on_wait=waits.append):
            pass
    assert 3 <= len(waits) <= 6  # at the start, then every 0.3 s (at the next poll, <= 0.25 s later)
    assert all(text.startswith(f"pid {held_by_another_process} on ") for text in waits)


@pytest.mark.parametrize("wait_seconds", [-1, math.nan, "5"])
def test_invalid_wait_seconds_are_refused(store, wait_seconds):
    with pytest.raises(ValueError, match="wait_seconds"):
        with store.run_lock(WORKFLOW, wait_seconds=wait_seconds):
            pass
