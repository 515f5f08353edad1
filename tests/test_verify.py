"""``python -m dotflow_dagster verify``: a clean store passes, each kind of damage is named.

The command runs as a subprocess, as an operator runs it, on LocalStore and on S3Store
against the moto server over HTTP (reached through boto3's standard environment). Finer
checks call ``verify_store`` in process.
"""

import math
import os
import pickle
import re
import subprocess
import sys
import time

import pytest

from dotflow_dagster import DotflowWorkflow, LocalStore
from dotflow_dagster.sensor_state import RequestedRun, SensorState
from dotflow_dagster.stores import DotflowStore, S3Store
from dotflow_dagster.stores import local as local_module
from dotflow_dagster.verify import open_store, verify_store
from tests.conftest import ROOT, subprocess_env
from tests.moto_server import moto_server_fixture, new_s3_store, store_env, store_spec  # noqa: F401
from tests.support.flow import extract, load, make_workflow, transform
from tests.test_signing import booby_pickle, plant, same_place, stored

SECRET = "verify-signing-key-51d0c2e7a9"
OTHER_WORKFLOW = "orders-beta"


def run_verify(store: DotflowStore, *extra: str, signing_key: str | None = None) -> subprocess.CompletedProcess:
    env = subprocess_env(**store_env(store))
    env.pop("DOTFLOW_SIGNING_KEY", None)
    if signing_key is not None:
        env["DOTFLOW_SIGNING_KEY"] = signing_key
    return subprocess.run(
        [sys.executable, "-m", "dotflow_dagster", "verify", "--store", store_spec(store), *extra],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def problem_lines(completed: subprocess.CompletedProcess) -> list[str]:
    return [line for line in completed.stdout.splitlines() if line.startswith("PROBLEM ")]


def summary(completed: subprocess.CompletedProcess) -> dict[str, int]:
    last = completed.stdout.strip().splitlines()[-1]
    counts = re.match(r"(\d+) workflows, (\d+) payloads, (\d+) checkpoints, (\d+) problems", last)
    assert counts, completed.stdout + completed.stderr
    return dict(zip(("workflows", "payloads", "checkpoints", "problems"), map(int, counts.groups()), strict=True))


@pytest.fixture(params=["LocalStore", "S3Store"])
def make_store(request, tmp_path):
    """``make_store(signing_key=None)``: a fresh, empty store of the parametrized kind."""
    if request.param == "S3Store":
        request.getfixturevalue("moto_server")

    def build(*, signing_key: str | None = None) -> DotflowStore:
        if request.param == "LocalStore":
            (tmp_path / "store").mkdir(exist_ok=True)
            return LocalStore(tmp_path / "store", signing_key=signing_key)
        plain = new_s3_store(prefix="verify/")
        return S3Store(plain.bucket, plain.prefix, s3=plain.client, signing_key=signing_key)

    return build


def populate(store: DotflowStore) -> dict[str, int]:
    """Two workflows' worth of runs (a change of input, a failed step); what a verify should count."""
    make_workflow().run({"v": 1}, store=store)
    make_workflow().run({"v": 2}, store=store)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DOTFLOW_TEST_FAIL", "load")
        DotflowWorkflow(OTHER_WORKFLOW, steps=[extract, transform, load]).run({"v": 3}, store=store)
    keys = store.list_keys("workflows/")
    return {
        "workflows": len({key.split("/")[1] for key in keys}),
        "payloads": sum("/payloads/" in key for key in keys),
        "checkpoints": sum("/checkpoints/" in key for key in keys),
    }


def checkpoint_keys(store: DotflowStore, workflow_id: str) -> list[str]:
    return store.list_keys(f"workflows/{workflow_id}/checkpoints/")


# -- the command line -----------------------------------------------------------------------------


@pytest.mark.parametrize("signing_key", [None, SECRET], ids=["unsigned", "signed"])
def test_a_clean_store_exits_0_with_its_counts(make_store, signing_key):
    store = make_store(signing_key=signing_key)
    expected = populate(store)
    completed = run_verify(store, signing_key=signing_key)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert problem_lines(completed) == []
    assert summary(completed) == {**expected, "problems": 0}
    assert expected["workflows"] == 2 and expected["payloads"] >= 3 and expected["checkpoints"] >= 5
    if signing_key is None:
        assert "unsigned objects are unpickled to check them" in completed.stdout
    else:
        assert "signature is checked before anything is unpickled" in completed.stdout


def test_a_truncated_checkpoint_and_a_corrupt_ledger_exit_1_naming_workflow_and_key(make_store):
    store = make_store()
    expected = populate(store)
    truncated = checkpoint_keys(store, "orders-acme")[0]
    plant(store, truncated, stored(store, truncated)[:20])
    ledger = f"workflows/{OTHER_WORKFLOW}/ledger.json"
    plant(store, ledger, b'{"format": 1, "workflow_id": "orders-beta", "hist')
    completed = run_verify(store)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    problems = problem_lines(completed)
    assert len(problems) == 2, completed.stdout
    assert any(f"workflow 'orders-acme' key {truncated}: checkpoint cannot be unpickled" in line for line in problems)
    assert any(f"workflow '{OTHER_WORKFLOW}' key {ledger}:" in line and "unreadable" in line for line in problems)
    assert summary(completed) == {**expected, "problems": 2}


def test_a_tampered_signed_store_exits_1_and_unpickles_nothing(make_store, tmp_path):
    store = make_store(signing_key=SECRET)
    populate(store)
    marker = tmp_path / "unpickled.marker"
    planted = checkpoint_keys(store, "orders-acme")[0]
    plant(store, planted, booby_pickle(marker))
    truncated = checkpoint_keys(store, "orders-acme")[1]
    plant(store, truncated, stored(store, truncated)[:30])
    payload = store.list_keys(f"workflows/{OTHER_WORKFLOW}/payloads/")[0]
    changed = bytearray(stored(store, payload))
    changed[-3] ^= 0x40
    plant(store, payload, bytes(changed))
    completed = run_verify(store, signing_key=SECRET)
    assert completed.returncode == 1, completed.stdout + completed.stderr
    problems = problem_lines(completed)
    assert any(f"workflow 'orders-acme' key {planted}: refused" in line and "not signed" in line for line in problems)
    assert any(f"workflow 'orders-acme' key {truncated}: refused" in line and "truncated" in line for line in problems)
    assert any(
        f"workflow '{OTHER_WORKFLOW}' key {payload}: refused" in line and "signature does not match" in line
        for line in problems
    )
    assert not marker.exists()
    assert SECRET not in completed.stdout + completed.stderr
    # Without the key the same store is all refusals (signed objects cannot be checked), not a crash.
    unkeyed = run_verify(store, "--workflow-id", OTHER_WORKFLOW)
    assert unkeyed.returncode == 1 and "has no signing_key" in unkeyed.stdout
    assert not marker.exists()


def test_workflow_id_limits_the_check_to_one_workflow(make_store):
    store = make_store()
    populate(store)
    truncated = checkpoint_keys(store, "orders-acme")[0]
    plant(store, truncated, stored(store, truncated)[:20])
    only_other = run_verify(store, "--workflow-id", OTHER_WORKFLOW)
    assert only_other.returncode == 0, only_other.stdout
    assert summary(only_other)["workflows"] == 1
    assert run_verify(store, "--workflow-id", "orders-acme").returncode == 1


def test_usage_errors_exit_2(tmp_path, moto_server):
    store = LocalStore(tmp_path / "missing")
    completed = run_verify(store)
    assert completed.returncode == 2 and "no such directory" in completed.stderr
    (tmp_path / "empty").mkdir()
    empty = LocalStore(tmp_path / "empty")
    assert run_verify(empty, "--workflow-id", "not/one").returncode == 2
    assert run_verify(empty, "--signing-key-env", "DOTFLOW_TEST_NO_SUCH_VARIABLE").returncode == 2
    short = run_verify(empty, signing_key="too-short")
    assert short.returncode == 2 and "at least 16 bytes" in short.stderr and "too-short" not in short.stderr
    missing_bucket = S3Store("dotflow-no-such-bucket", "p/", s3=moto_server.shared_client())
    unreachable = run_verify(missing_bucket)
    assert unreachable.returncode == 2 and "dotflow-no-such-bucket" in unreachable.stderr
    assert run_verify(empty).returncode == 0  # and an empty store is clean


# -- finer checks, in process ---------------------------------------------------------------------


@pytest.fixture
def local(tmp_path) -> LocalStore:
    store = LocalStore(tmp_path / "store")
    populate(store)
    assert verify_store(store).ok
    return store


def messages(store: DotflowStore, **options) -> list[str]:
    return [str(problem) for problem in verify_store(store, **options).problems]


def test_a_missing_current_payload_and_decided_marker_are_named(local):
    ledger = make_workflow().ledger(store=local)
    current = ledger.read().current_fingerprint
    local.delete(ledger.payload_key(current))
    local.delete(ledger.decided_key(current))
    found = messages(local)
    assert any(f"current fingerprint {current} has no stored payload" in line for line in found)
    assert any(f"fingerprint {current} was decided" in line and "no decided marker" in line for line in found)
    assert all(line.startswith("workflow 'orders-acme' key workflows/orders-acme/ledger.json") for line in found)


def test_a_checkpoint_under_another_steps_key_and_a_bad_marker_are_named(local):
    first, second = checkpoint_keys(local, "orders-acme")[:2]
    local.write_bytes(second, local.read_bytes(first))  # an unsigned store cannot tell: verify can
    marker = local.list_keys("workflows/orders-acme/decided/")[0]
    local.write_bytes(marker, b"\x80not a time")
    found = messages(local)
    step = second.rsplit("/", 1)[1]
    assert any(second in line and f"not to {step!r}" in line for line in found)
    assert any(marker in line and "not the time of the decision" in line for line in found)


def test_a_broken_expiry_header_is_named(local):
    key = checkpoint_keys(local, "orders-acme")[0]
    nan_header = local_module._TTL_MAGIC + local_module._TTL_EXPIRY.pack(math.nan)
    plant(local, key, nan_header + stored(local, key))
    truncated = checkpoint_keys(local, "orders-acme")[1]
    plant(local, truncated, local_module._TTL_MAGIC + b"\x00\x01")
    found = messages(local)
    assert any(key in line and "NaN" in line for line in found)
    assert any(truncated in line and "truncated expiry header" in line for line in found)


def test_only_stale_temporary_files_are_named(local):
    folder = local.root / "workflows" / "orders-acme" / "checkpoints"
    stale = folder / f"{local_module._TEMPORARY_PREFIX}crashed"
    stale.write_bytes(pickle.dumps("half written"))
    old = time.time() - 3600
    os.utime(stale, (old, old))
    (folder / f"{local_module._TEMPORARY_PREFIX}in-flight").write_bytes(b"being written")
    found = messages(local)
    assert found == [f"workflow 'orders-acme' key {stale}: temporary file of a write that never finished "
                     "(its writer died); safe to delete"]
    assert messages(local, workflow_id=OTHER_WORKFLOW) == []


def test_folders_where_a_keys_file_belongs_are_named(local):
    # Such a folder is invisible to listings; every read and write of its key fails (StoreError).
    ledger = local.root / "workflows" / "orders-acme" / "ledger.json"
    ledger.unlink()
    ledger.mkdir()
    checkpoint = local.root / checkpoint_keys(local, "orders-acme")[0]
    checkpoint.unlink()
    (checkpoint / "left-behind").mkdir(parents=True)
    (local.root / "workflows" / "orders-acme" / "payloads" / "planted.pickle").mkdir()
    (local.root / "sensors" / "orders_inbox" / "state.json").mkdir(parents=True)
    (local.root / "workflows" / "orders-acme" / "ledger.json.d").mkdir()  # not a key's place: no problem
    found = messages(local)
    because = ("a folder stands where this key's file belongs: every read and write of the key fails (StoreError) "
               "until it is removed")
    expected = [
        f"workflow 'orders-acme' key {checkpoint.relative_to(local.root).as_posix()}: {because}",
        f"workflow 'orders-acme' key workflows/orders-acme/ledger.json: {because}",
        f"workflow 'orders-acme' key workflows/orders-acme/payloads/planted.pickle: {because}",
    ]
    assert sorted(found) == sorted([*expected, f"key sensors/orders_inbox/state.json: {because}"])
    assert messages(local, workflow_id="orders-acme") == sorted(expected)
    assert messages(local, workflow_id=OTHER_WORKFLOW) == []


def test_a_sensor_state_that_does_not_load_is_named(local):
    healthy = SensorState(versions={"/srv/inbox/a.json": "1:2:3"}, requested={"a": RequestedRun("f" * 64, 1, 1)})
    local.write_bytes("sensors/healthy/state.json", healthy.to_bytes())
    local.write_bytes("sensors/truncated/state.json", healthy.to_bytes()[:12])
    local.write_bytes("sensors/wrong/state.json", b'{"format": 1, "pending": "orders-acme"}')
    report = verify_store(local)
    then = "at its next tick the sensor logs an error and starts from an empty state, reading every item of its source"
    assert [str(problem) for problem in report.problems] == [
        f"key sensors/truncated/state.json: sensor state cannot be read (not JSON: unexpected end of data: line 1 "
        f"column 13 (char 12)): {then} again once",
        f"key sensors/wrong/state.json: sensor state cannot be read (pending is not a list of strings): {then} "
        "again once",
    ]
    assert report.others == 3
    assert messages(local, workflow_id="orders-acme") == []  # one workflow's check leaves sensors alone


def test_a_store_made_signed_afterwards_reports_every_object_unsigned(local):
    signed = same_place(local, signing_key=SECRET)
    report = verify_store(signed)
    assert report.signed and not report.ok
    listed = [key for key in local.list_keys("") if key.startswith("workflows/")]
    assert sorted(problem.key for problem in report.problems) == sorted(listed)
    assert all("not signed" in problem.message for problem in report.problems)


def test_open_store_names_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="no such directory"):
        open_store(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="no other scheme"):
        open_store("gs://bucket/prefix")
    with pytest.raises(ValueError, match="bucket must be"):
        open_store("s3://", s3_client=object())
    assert open_store(str(tmp_path), signing_key=SECRET).signed
    assert isinstance(open_store("s3://bucket/prefix", s3_client=_FakeClient()), S3Store)
    assert open_store("s3://bucket/prefix", s3_client=_FakeClient()).prefix == "prefix/"


class _FakeClient:
    """Just enough of a boto3 client for ``S3Store.__init__`` (no request is made)."""

    def get_object(self, **_):
        raise AssertionError("no request expected")

    put_object = get_paginator = get_object
