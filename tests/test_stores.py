"""LocalStore as dotflow's Storage: overwrite, atomic, no failed checkpoints, no prefix clashes."""

import threading

import pytest
from dotflow import Config, DotFlow, action
from dotflow.core.context import Context

from dotflow_dagster import LocalStore


def test_post_overwrites_instead_of_appending(store):
    store.post("a/b", Context(storage={"n": 1}))
    store.post("a/b", Context(storage={"n": 2}))
    assert store.get("a/b").storage == {"n": 2}


def test_missing_key_reads_as_an_empty_context(store):
    assert store.get("nothing/here").storage is None


def test_writes_leave_no_temporary_files(store):
    for index in range(20):
        store.post("k/v", Context(storage=index))
    assert [path.name for path in (store.root / "k").iterdir()] == ["v"]


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


def test_ttl_is_refused_rather_than_silently_ignored(store):
    with pytest.raises(ValueError, match="does not expire"):
        store.post("k", Context(storage=1), ttl=10)


def test_as_plain_dotflow_storage_a_failed_task_leaves_no_checkpoint(tmp_path):
    @action
    def ok_step():
        return {"done": True}

    @action
    def failing_step():
        raise RuntimeError("nope")

    store = LocalStore(tmp_path / "plain")
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
