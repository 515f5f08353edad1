"""What plain dotflow 1.0.1 does where dotflow_dagster works around it.

Every test here runs dotflow alone (no dotflow_dagster code) and asserts dotflow's *current*,
defective behaviour. When a dotflow release fixes one of them, its test fails: that is the signal
to revisit the matching workaround (and docs/dotflow-1.0.1.md) rather than keep it by habit.

The whole module is offline: every ``Config`` gets an explicit no-op server provider, except in
the test of the default server provider, where the HTTP functions are replaced by a recorder.
"""

import hashlib
import importlib.metadata
import inspect
import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from dotflow import Config, DotFlow, action
from dotflow.abc.server import Server
from dotflow.core.action import Action
from dotflow.core.context import Context
from dotflow.core.fingerprint import fingerprint_of, fp_key, read_fingerprint, write_fingerprint
from dotflow.core.types import TypeStatus
from dotflow.core.workflow import Manager
from dotflow.providers import StorageDefault, StorageFile, StorageS3
from dotflow.providers import server_default as server_default_module
from dotflow.providers.server_default import ServerDefault

DOTFLOW_VERSION = importlib.metadata.version("dotflow")


def test_installed_dotflow_is_the_version_these_facts_were_checked_against():
    """Everything below was verified against dotflow 1.0.1.

    dotflow_dagster: on another version, rerun this module and reread docs/dotflow-1.0.1.md
    before trusting any workaround (or its absence).
    """
    assert DOTFLOW_VERSION == "1.0.1"


class _NoServer(Server):
    """A server provider that sends nothing anywhere (dotflow ships none)."""

    def create_workflow(self, workflow: Any) -> None:
        pass

    def update_workflow(self, workflow: Any, status: str = "") -> None:
        pass

    def create_task(self, task: Any) -> None:
        pass

    def update_task(self, task: Any) -> None:
        pass


def _config(storage) -> Config:
    return Config(storage=storage, server=_NoServer())


def _rerun(flow: DotFlow, **kwargs) -> Manager:
    """Run the *same* Task objects (same task ids) again, as a long-lived process could.

    ``DotFlow.start()`` ignores a second call with the same tasks, so go through ``Manager``,
    which is what ``start()`` itself constructs.
    """
    return Manager(tasks=flow.task.queue, workflow_id=flow.workflow_id, config=flow._config, **kwargs)


@pytest.fixture
def file_storage(tmp_path: Path) -> StorageFile:
    return StorageFile(path=str(tmp_path / "dotflow"))


def _stored_lists(storage: StorageFile) -> dict[str, list]:
    return {path.name: json.loads(path.read_text()) for path in sorted(storage.path.iterdir())}


# --- step identity ---------------------------------------------------------------------------


def test_resume_restores_nothing_in_a_new_process_because_task_ids_are_fresh_ulids(tmp_path):
    """dotflow: ``TaskBuilder.add`` gives every task a new ULID, and the checkpoint key is
    ``{workflow_id}-{task_id}``; a new ``DotFlow`` (a new process, a redelivered message) with the
    same ``workflow_id`` and the same storage directory therefore finds no checkpoint, and
    ``resume=True`` re-runs every step.

    dotflow_dagster: a step's identity is deterministic (position + qualified name, chained over
    the steps before it), so a new process resumes at the first step without a checkpoint.
    """
    calls: list[str] = []

    @action
    def extract(initial_context):
        calls.append("extract")
        return {"rows": 3}

    workflow_id = str(uuid.uuid4())
    task_ids = []
    for _process in range(2):  # two "processes": new DotFlow objects, same id, same directory
        flow = DotFlow(config=_config(StorageFile(path=str(tmp_path / "dotflow"))), workflow_id=workflow_id)
        flow.task.add(step=extract, initial_context={"day": "2026-01-01"})
        flow.start(resume=True)
        assert flow.result_task()[0].status == TypeStatus.COMPLETED
        task_ids.append(flow.task.queue[0].task_id)

    assert task_ids[0] != task_ids[1]
    assert calls == ["extract", "extract"]  # the second run restored nothing
    checkpoints = sorted(p.name for p in (tmp_path / "dotflow" / "tasks").iterdir() if "_input_fp" not in p.name)
    assert checkpoints == sorted(f"{workflow_id}-{task_id}.json" for task_id in task_ids)


# --- workflow ids ----------------------------------------------------------------------------


def test_workflow_id_must_parse_as_a_uuid_and_a_name_fails_only_at_start():
    """dotflow: ``DotFlow(workflow_id="my-job")`` and ``task.add`` accept a human name; ``start()``
    then fails with ``ValueError`` because ``Context.workflow_id`` insists on a UUID.

    dotflow_dagster: workflow ids are human names validated up front (``[A-Za-z0-9._-]{1,128}``)
    and mapped to the UUID dotflow needs with ``uuid5`` under a fixed, documented namespace.
    """
    calls: list[str] = []

    @action
    def extract(initial_context):
        calls.append("extract")

    flow = DotFlow(config=_config(StorageDefault()), workflow_id="my-job")
    flow.task.add(step=extract, initial_context={})  # accepted
    with pytest.raises(ValueError, match="not a valid UUID"):
        flow.start()
    assert calls == []


def test_a_non_uuid_workflow_id_fails_silently_in_background_mode(monkeypatch):
    """dotflow: in ``background`` mode the same ``ValueError`` is raised inside dotflow's thread;
    ``start()`` returns normally, no step runs, and the workflow's ``on_success`` callback fires.

    dotflow_dagster: refuses a bad id before anything runs, whatever the mode.
    """
    thread_errors: list[BaseException] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: thread_errors.append(args.exc_value))
    calls: list[str] = []
    succeeded = threading.Event()

    @action
    def extract(initial_context):
        calls.append("extract")

    flow = DotFlow(config=_config(StorageDefault()), workflow_id="my-job")
    flow.task.add(step=extract, initial_context={})
    manager = flow.start(mode="background", on_success=lambda tasks: succeeded.set())  # no exception
    manager.thread.join(5)

    assert succeeded.wait(5), "dotflow reported the workflow as successful"
    assert calls == []
    assert flow.result_task()[0].status == TypeStatus.NOT_STARTED
    assert [type(error) for error in thread_errors] == [ValueError]


# --- StorageFile -----------------------------------------------------------------------------


def test_storage_file_post_appends_to_the_key_instead_of_overwriting(file_storage):
    """dotflow: ``StorageFile.post`` appends to a JSON list per key; once a key holds two entries,
    ``get`` returns a ``Context`` whose ``storage`` is a *list* of Contexts, not the value.

    dotflow_dagster: its stores overwrite, atomically (temporary file, fsync, rename).
    """
    file_storage.post(key="wf-task.json", context=Context(storage={"n": 1}))
    assert file_storage.get("wf-task.json").storage == {"n": 1}

    file_storage.post(key="wf-task.json", context=Context(storage={"n": 2}))
    read_back = file_storage.get("wf-task.json").storage
    assert isinstance(read_back, list)
    assert [item.storage for item in read_back] == [{"n": 1}, {"n": 2}]


def test_a_failed_task_stores_none_and_a_retried_step_reads_back_a_list(file_storage):
    """dotflow: a failed task still posts its context, ``None`` (stored as ``"null"``), under its
    key; running the same tasks again appends the successful result after it, so the step's
    checkpoint reads back as a list ``[None, result]`` and the next step receives that list.

    dotflow_dagster: a failed step writes no checkpoint at all, and a retry replaces nothing
    but the missing checkpoint.
    """
    attempts: list[int] = []
    received: list[Any] = []

    @action
    def flaky(initial_context):
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    @action
    def after(previous_context):
        received.append(previous_context.storage)

    flow = DotFlow(config=_config(file_storage), workflow_id=str(uuid.uuid4()))
    flow.task.add(step=flaky, initial_context={})
    flow.task.add(step=after, initial_context={})
    flow.start(resume=True)

    key = f"{flow.workflow_id}-{flow.task.queue[0].task_id}.json"
    assert flow.task.queue[0].status == TypeStatus.FAILED
    assert _stored_lists(file_storage)[key] == ["null"]

    _rerun(flow, resume=True)
    assert _stored_lists(file_storage)[key] == ["null", '"ok"']
    read_back = file_storage.get(key).storage
    assert [item.storage for item in read_back] == [None, "ok"]
    assert [[item.storage for item in value] for value in received] == [[None, "ok"]]


def test_restoring_a_checkpoint_posts_it_again_and_dotflow_retries_do_not(file_storage):
    """dotflow: restoring a checkpoint assigns it to the task again, which posts it again, so every
    resume lengthens the key's list; by contrast ``@action(retry=...)`` posts once per run (a
    failed attempt that is retried posts nothing), so within one run a step's key holds one entry.

    dotflow_dagster: restoring reads a checkpoint and writes nothing; any write replaces.
    """
    attempts: list[int] = []

    @action(retry=2, retry_delay=0)
    def extract(initial_context):
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("first attempt fails")
        return "rows"

    flow = DotFlow(config=_config(file_storage), workflow_id=str(uuid.uuid4()))
    flow.task.add(step=extract, initial_context={})
    flow.start(resume=True)
    key = file_storage.key(flow.task.queue[0])
    assert len(attempts) == 2
    assert _stored_lists(file_storage)[key] == ['"rows"']

    _rerun(flow, resume=True)  # restored, not run
    assert len(attempts) == 2
    assert _stored_lists(file_storage)[key] == ['"rows"', '"rows"']


def test_a_step_that_failed_twice_is_restored_as_completed(file_storage):
    """dotflow: after two failed runs the key holds ``["null", "null"]``; ``get`` returns a list
    (not ``None``), so the next ``resume=True`` marks the failed step COMPLETED without running it
    and hands ``[None, None]`` to the next step.

    dotflow_dagster: never stores a failed step, so a failed step always runs again.
    """
    attempts: list[int] = []

    @action
    def always_fails(initial_context):
        attempts.append(1)
        raise RuntimeError("boom")

    flow = DotFlow(config=_config(file_storage), workflow_id=str(uuid.uuid4()))
    flow.task.add(step=always_fails, initial_context={})
    flow.start(resume=True)
    _rerun(flow, resume=True)
    assert len(attempts) == 2

    manager = _rerun(flow, resume=True)
    assert len(attempts) == 2  # not run a third time
    assert manager.tasks[0].status == TypeStatus.COMPLETED


# --- fingerprints ----------------------------------------------------------------------------


def test_fingerprint_equates_int_and_str_dict_keys_and_tuples_with_lists():
    """dotflow: ``on_input_change`` compares ``fingerprint_of`` (sha256 of
    ``json.dumps(sort_keys=True)``), which turns ``{1: x}`` into ``{"1": x}`` and a tuple into a
    list, so these different inputs count as unchanged.

    dotflow_dagster: its canonical encoding keeps them apart (``{1: x}`` != ``{"1": x}``,
    tuple != list, ``1`` != ``True`` != ``1.0``).
    """
    assert fingerprint_of([{1: "x"}]) == fingerprint_of([{"1": "x"}])
    assert fingerprint_of([(1, 2)]) == fingerprint_of([[1, 2]])
    assert fingerprint_of([{"ids": (1, 2)}]) == fingerprint_of([{"ids": [1, 2]}])


def test_fingerprint_falls_back_to_repr_for_sets_and_plain_objects():
    """dotflow: anything ``json.dumps`` refuses is hashed through ``repr``: a plain object's repr
    holds its memory address (two equal objects differ), and a set of strings is ordered by
    the process's string hash (``PYTHONHASHSEED``), so the same input gets another fingerprint in
    another process and ``on_input_change`` sees a change that is not there.

    dotflow_dagster: never uses ``repr``; sets are encoded sorted, and an unsupported type raises
    ``FingerprintError`` naming its path and type.
    """

    class Order:
        def __init__(self, number: int) -> None:
            self.number = number

    payload = [{"tags": {"a", "b"}}]
    assert fingerprint_of(payload) == hashlib.sha256(repr(payload).encode()).hexdigest()
    assert fingerprint_of([Order(1)]) != fingerprint_of([Order(1)])

    script = "from dotflow.core.fingerprint import fingerprint_of; print(fingerprint_of([set('abcdefgh')]))"
    seen = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={"PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()
        for seed in (1, 2, 3)
    }
    assert len(seen) > 1


def test_a_fingerprint_key_written_twice_disables_the_input_change_policy_for_good(file_storage):
    """dotflow: the stored fingerprint is read, compared and written without any lock across
    processes; two first runs that race both write it, and ``StorageFile`` appends, so the key
    holds two entries. ``read_fingerprint`` then returns ``None`` (a list is not a str) on every
    later run: ``on_input_change="raise"`` never raises again, and each run appends one more entry.

    dotflow_dagster: the ledger is updated by compare-and-swap under a per-workflow run lock.
    """
    workflow_id = str(uuid.uuid4())
    # What two concurrent first runs each do after both read "no fingerprint yet":
    write_fingerprint(file_storage, workflow_id, fingerprint_of([{"v": 1}]))
    write_fingerprint(file_storage, workflow_id, fingerprint_of([{"v": 1}]))
    assert read_fingerprint(file_storage, workflow_id) is None

    calls: list[str] = []

    @action
    def load(initial_context):
        calls.append(initial_context.storage["v"])

    for _ in range(2):
        flow = DotFlow(config=_config(file_storage), workflow_id=workflow_id)
        flow.task.add(step=load, initial_context={"v": 2})  # a changed input
        flow.start(resume=True, on_input_change="raise")  # does not raise

    assert calls == [2, 2]
    assert len(_stored_lists(file_storage)[fp_key(workflow_id)]) == 4


# --- reset -----------------------------------------------------------------------------------


def test_reset_deletes_every_key_with_the_bare_prefix(file_storage):
    """dotflow: ``on_input_change="reset"`` calls ``storage.clear(workflow_id)``, which deletes
    every key starting with the bare string ``"{workflow_id}-"``, not only that workflow's task
    checkpoints; with human names, ``clear("orders")`` also empties workflow ``orders-acme``.

    dotflow_dagster: keys are ``/``-separated paths namespaced per (workflow, fingerprint), so a
    clear or a retention sweep touches exactly one workflow's checkpoints.
    """
    file_storage.post(key="orders-task1.json", context=Context(storage=1))
    file_storage.post(key="orders-acme-task1.json", context=Context(storage=2))
    file_storage.clear(workflow_id="orders")
    assert _stored_lists(file_storage) == {}

    workflow_id = str(uuid.uuid4())
    other_id = str(uuid.uuid4())
    file_storage.post(key=f"{workflow_id}-report.json", context=Context(storage="not a checkpoint"))
    file_storage.post(key=f"{other_id}-task.json", context=Context(storage="another workflow"))

    @action
    def extract(initial_context):
        return initial_context.storage

    for payload in ({"v": 1}, {"v": 2}):
        flow = DotFlow(config=_config(file_storage), workflow_id=workflow_id)
        flow.task.add(step=extract, initial_context=payload)
        flow.start(resume=True, on_input_change="reset")

    names = set(_stored_lists(file_storage))
    assert f"{workflow_id}-report.json" not in names  # gone with the reset
    assert f"{other_id}-task.json" in names


# --- execution modes -------------------------------------------------------------------------


def _counting_step(log: Path, *, fail: bool):
    """A step that records each execution in a file (steps run in forked processes here)."""

    @action
    def step(initial_context):
        with log.open("a") as handle:
            handle.write("ran\n")
        if fail:
            raise RuntimeError("boom")
        return "done"

    return step


def _runs(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_parallel_mode_ignores_resume(file_storage, tmp_path):
    """dotflow: ``mode="parallel"`` never looks for a checkpoint: even the same tasks, with their
    checkpoints on disk, run again under ``resume=True`` (``sequential`` restores them).

    dotflow_dagster: refuses ``parallel`` until it can keep checkpoints.
    """
    log = tmp_path / "runs.log"
    flow = DotFlow(config=_config(file_storage), workflow_id=str(uuid.uuid4()))
    flow.task.add(step=_counting_step(log, fail=False), initial_context={})
    flow.start(mode="parallel", resume=True)
    assert _runs(log) == 1
    assert file_storage.get(file_storage.key(flow.task.queue[0])).storage is not None  # a checkpoint exists

    _rerun(flow, mode="parallel", resume=True)
    assert _runs(log) == 2

    _rerun(flow, mode="sequential", resume=True)
    assert _runs(log) == 2  # sequential does restore it


def test_sequential_group_marks_a_failed_step_completed_on_the_next_run(file_storage, tmp_path):
    """dotflow: in ``mode="sequential_group"`` a failed step's ``None`` is posted twice (by the
    worker process and again by the parent), so its key holds a two-entry list; the next
    ``resume=True`` run reads that list as a checkpoint and marks the step COMPLETED unrun.

    dotflow_dagster: refuses ``sequential_group``.
    """
    log = tmp_path / "runs.log"
    flow = DotFlow(config=_config(file_storage), workflow_id=str(uuid.uuid4()))
    flow.task.add(step=_counting_step(log, fail=True), initial_context={})
    flow.start(mode="sequential_group", resume=True)
    assert _runs(log) == 1
    assert flow.task.queue[0].status == TypeStatus.FAILED
    assert _stored_lists(file_storage)[file_storage.key(flow.task.queue[0])] == ["null", "null"]

    manager = _rerun(flow, mode="sequential_group", resume=True)
    assert _runs(log) == 1  # not retried
    assert manager.tasks[0].status == TypeStatus.COMPLETED


# --- None results ----------------------------------------------------------------------------


def test_a_step_returning_none_is_never_restored(file_storage):
    """dotflow: ``resume`` takes a stored ``None`` to mean "no checkpoint", so a completed step
    that returned ``None`` (a load, a notification) runs again on every resume, even with the very
    same task ids, while a step that returned a value is restored.

    dotflow_dagster: stores each result inside a checkpoint record, so a ``None`` result counts
    as completed.
    """
    calls: list[str] = []

    @action
    def transform(initial_context):
        calls.append("transform")
        return 42

    @action
    def load(previous_context):
        calls.append("load")
        return None

    flow = DotFlow(config=_config(file_storage), workflow_id=str(uuid.uuid4()))
    flow.task.add(step=[transform, load], initial_context={})
    flow.start(resume=True)
    _rerun(flow, resume=True)  # the same tasks, so the same checkpoint keys

    assert calls == ["transform", "load", "load"]


# --- step names ------------------------------------------------------------------------------


def test_action_objects_hide_the_step_name():
    """dotflow: a plain ``@action`` returns an ``Action`` instance without ``__name__``, and
    ``@action(retry=...)`` returns a closure named ``action`` for every step.

    dotflow_dagster: takes step names (and checkpoint identity) from the decorated function.
    """

    @action
    def extract(initial_context):
        return 1

    @action(retry=2)
    def transform(previous_context):
        return 2

    assert isinstance(extract, Action)
    assert not hasattr(extract, "__name__")
    assert transform.__name__ == "action"
    assert transform.__qualname__ == "Action.__call__.<locals>.action"


# --- StorageS3 -------------------------------------------------------------------------------


class _RecordingBoto3:
    """Stands in for ``boto3.client``: builds the real client offline, records its endpoint and
    returns a stub whose ``head_bucket`` makes no request."""

    def __init__(self, real_client) -> None:
        self.real_client = real_client
        self.calls: list[dict] = []

    def __call__(self, service: str, **kwargs):
        client = self.real_client(service, **kwargs)
        self.calls.append({"kwargs": kwargs, "endpoint_url": client.meta.endpoint_url})

        class _Stub:
            def head_bucket(self, **_kwargs):
                return {}

        return _Stub()


def test_storage_s3_ignores_an_endpoint_url_argument(monkeypatch, tmp_path):
    """dotflow: ``StorageS3(bucket=..., prefix=..., region=...)`` swallows any other keyword in
    ``**kwargs``; an ``endpoint_url`` is dropped without a word and boto3 talks to AWS. Only the
    ``AWS_ENDPOINT_URL_S3`` environment variable redirects it.

    dotflow_dagster: its S3 store takes a boto3 client (e.g. from dagster-aws ``S3Resource``),
    configured however the caller likes.
    """
    boto3 = pytest.importorskip("boto3")
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    recorder = _RecordingBoto3(boto3.client)
    monkeypatch.setattr(boto3, "client", recorder)

    assert "endpoint_url" not in inspect.signature(StorageS3.__init__).parameters
    StorageS3(bucket="dotflow", region="us-east-1", endpoint_url="http://127.0.0.1:9")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")
    StorageS3(bucket="dotflow", region="us-east-1")

    assert [call["kwargs"] for call in recorder.calls] == [{"region_name": "us-east-1"}] * 2
    assert recorder.calls[0]["endpoint_url"].endswith(".amazonaws.com")  # AWS, not the endpoint given
    assert recorder.calls[1]["endpoint_url"] == "http://127.0.0.1:9"


# --- default server provider -----------------------------------------------------------------


def test_config_default_server_sends_the_initial_context_when_the_environment_says_so(monkeypatch, tmp_path):
    """dotflow: ``Config()`` without ``server=`` builds ``ServerDefault``, which is inactive until
    ``SERVER_BASE_URL`` and ``SERVER_USER_TOKEN`` are set (or ``~/.dotflow/config.json`` holds
    cloud settings); then every task, ``initial_context`` included, is POSTed to that server.
    (Here the HTTP functions are replaced by a recorder: nothing leaves the process.)

    dotflow_dagster: passes every dotflow provider explicitly, with a server provider that sends
    nothing, so a stray environment variable cannot ship payloads anywhere.
    """
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.dotflow/config.json
    monkeypatch.delenv("SERVER_BASE_URL", raising=False)
    monkeypatch.delenv("SERVER_USER_TOKEN", raising=False)
    sent: list[tuple[str, str, dict]] = []
    monkeypatch.setattr(server_default_module, "post", lambda url, json, **kw: sent.append(("POST", url, json)))
    monkeypatch.setattr(server_default_module, "patch", lambda url, json, **kw: sent.append(("PATCH", url, json)))

    quiet = Config(storage=StorageDefault())
    assert isinstance(quiet.server, ServerDefault)
    assert quiet.server._managed is False

    monkeypatch.setenv("SERVER_BASE_URL", "http://dotflow-server.invalid")
    monkeypatch.setenv("SERVER_USER_TOKEN", "token")
    config = Config(storage=StorageDefault())
    assert config.server._managed is True

    @action
    def extract(initial_context):
        return "done"

    flow = DotFlow(config=config)
    flow.task.add(step=extract, initial_context={"api_token": "s3cr3t"})
    flow.start()

    assert sent, "ServerDefault sent nothing"
    assert all(url.startswith("http://dotflow-server.invalid/cli/workflows") for _, url, _ in sent)
    task_posts = [body for method, url, body in sent if method == "POST" and url.endswith("/tasks")]
    assert task_posts, "no task was registered with the server"
    # ServerDefault sends the task's serialized form; initial_context arrives as a JSON string.
    assert json.loads(task_posts[0]["initial_context"]) == {"api_token": "s3cr3t"}
    task_patches = [body for method, url, body in sent if method == "PATCH" and "/tasks/" in url]
    assert task_patches and task_patches[-1]["status"] == TypeStatus.COMPLETED


# --- timeouts --------------------------------------------------------------------------------


def test_a_timed_out_step_keeps_running_in_its_thread(file_storage):
    """dotflow: ``@action(timeout=...)`` runs the step in a worker thread and stops *waiting* for
    it; the task is marked FAILED (``TimeoutError``) and the workflow moves on, but the step keeps
    running and its side effects still happen afterwards (possibly while a retry runs it again).

    dotflow_dagster: refuses ``@action(timeout=...)`` when the workflow is defined rather than
    pretend the step was stopped; bound the work inside the step (a client timeout), or in Dagster
    the whole run with the ``dagster/max_runtime`` run tag.
    """
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    @action(timeout=0.2)
    def slow(initial_context):
        started.set()
        release.wait(10)
        finished.set()  # a side effect after dotflow gave up on the step
        return "late"

    flow = DotFlow(config=_config(file_storage), workflow_id=str(uuid.uuid4()))
    flow.task.add(step=slow, initial_context={})
    began = time.monotonic()
    flow.start()
    try:
        assert time.monotonic() - began < 5
        task = flow.result_task()[0]
        assert task.status == TypeStatus.FAILED
        assert task.errors[-1].exception == "TimeoutError"
        assert started.is_set() and not finished.is_set()  # still running
    finally:
        release.set()
    assert finished.wait(5)
