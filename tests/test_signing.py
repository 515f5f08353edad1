"""Signed stores: what someone who can write to the directory or bucket, but has no key, can do.

Every store test runs on LocalStore and on S3Store against the moto server over HTTP. An
attacker plants bytes directly (a file, a ``PutObject``), never through the store. Whether
anything was unpickled is proven by a pickle whose ``__reduce__`` writes a marker file.
"""

import pickle
import unittest
from pathlib import Path

import pytest
from dagster import AssetKey, EnvVar, materialize
from dotflow.core.context import Context
from dotflow.testing import StorageContract

from dotflow_dagster import DotflowResource, LocalStore, StoreError, dotflow_asset
from dotflow_dagster.stores import DotflowStore, S3Store, UntrustedObjectError
from dotflow_dagster.stores import local as local_module
from tests.moto_server import (  # noqa: F401 - moto_server_fixture provides the fixture moto_server
    moto_server_fixture,
    new_s3_store,
    raw_object,
    unavailable_reason,
)
from tests.support.flow import make_workflow

SECRET = "test-signing-key-7c1d9e0f5a2b"
OTHER_SECRET = "another-signing-key-33e8a1b04f"
CHECKPOINT = "workflows/orders/checkpoints/f1/000-extract"


# -- helpers --------------------------------------------------------------------------------------


def _write_marker(path: str) -> str:
    Path(path).write_text("unpickled")
    return "attacker's value"


class Booby:
    """Unpickling it writes ``path``: proof that a refused object was never unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return _write_marker, (self.path,)


def booby_pickle(marker: Path) -> bytes:
    return pickle.dumps(Booby(marker), protocol=pickle.HIGHEST_PROTOCOL)


def plant(store: DotflowStore, key: str, raw: bytes) -> None:
    """Write ``raw`` at ``key`` behind the store's back, as an attacker with write access would."""
    if isinstance(store, LocalStore):
        path = store.root.joinpath(*key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
    else:
        store.client.put_object(Bucket=store.bucket, Key=store.prefix + key, Body=raw)


def stored(store: DotflowStore, key: str) -> bytes:
    if isinstance(store, LocalStore):
        return store.root.joinpath(*key.split("/")).read_bytes()
    return raw_object(store, key)


def same_place(store: DotflowStore, *, signing_key: str | None) -> DotflowStore:
    """Another store object on the same directory or bucket, with another key (or none)."""
    if isinstance(store, LocalStore):
        return LocalStore(store.root, signing_key=signing_key)
    return S3Store(store.bucket, store.prefix, s3=store.client, signing_key=signing_key)


def assert_refused(error: pytest.ExceptionInfo, store: DotflowStore, key: str) -> None:
    message = str(error.value)
    assert isinstance(error.value, StoreError)
    assert store.location in message  # the directory, or s3://bucket/prefix
    if isinstance(store, S3Store):
        assert store.bucket in message
    assert repr(key) in message
    assert SECRET not in message and OTHER_SECRET not in message


@pytest.fixture(params=["LocalStore", "S3Store"])
def kind(request) -> str:
    if request.param == "S3Store":
        request.getfixturevalue("moto_server")
    return request.param


@pytest.fixture
def make_store(kind, tmp_path):
    """``make_store(signing_key=...)``: a fresh store of the parametrized kind."""

    def build(*, signing_key: str | None = SECRET) -> DotflowStore:
        if kind == "LocalStore":
            return LocalStore(tmp_path / "store", signing_key=signing_key)
        plain = new_s3_store(prefix="signed/")
        return S3Store(plain.bucket, plain.prefix, s3=plain.client, signing_key=signing_key)

    return build


@pytest.fixture
def signed(make_store) -> DotflowStore:
    return make_store()


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "unpickled.marker"


@pytest.fixture
def clock(monkeypatch):
    """A controllable wall clock for expiry (``clock.now += 10`` moves time on)."""

    class Clock:
        now = 1_700_000_000.0

    monkeypatch.setattr(local_module, "_wall_clock", lambda: Clock.now)
    return Clock


# -- round trips ----------------------------------------------------------------------------------


def test_everything_written_through_a_signed_store_reads_back(signed, clock):
    signed.post(CHECKPOINT, Context(storage={"rows": [1, 2]}))
    signed.write_bytes("workflows/orders/ledger.json", b'{"format": 1}')
    assert signed.write_bytes_if("workflows/orders/decided/f1", b"2025-01-01T00:00:00", expected_version=None)
    signed.post("dotflow/w/short", Context(storage="brief"), ttl=5)
    assert signed.get(CHECKPOINT).storage == {"rows": [1, 2]}
    assert signed.read_bytes("workflows/orders/ledger.json") == b'{"format": 1}'
    assert signed.read_bytes("workflows/orders/decided/f1") == b"2025-01-01T00:00:00"
    assert signed.get("dotflow/w/short").storage == "brief"
    # Compare-and-swap still sees versions and expiries.
    assert signed.atomic_swap(CHECKPOINT, {"rows": [1, 2]}, {"rows": [3]})
    assert not signed.atomic_swap(CHECKPOINT, {"rows": [1, 2]}, {"rows": [4]})
    _, version = signed.read_versioned("workflows/orders/ledger.json")
    assert signed.update("workflows/orders/ledger.json", lambda data: data + b" ") == b'{"format": 1} '
    assert not signed.write_bytes_if("workflows/orders/ledger.json", b"stale", expected_version=version)
    clock.now += 5
    assert signed.get("dotflow/w/short").storage is None
    assert signed.list_keys("dotflow/") == []
    # Each of them is signed: a store without the key cannot read a single one.
    unsigned = same_place(signed, signing_key=None)
    for key in signed.list_keys(""):
        with pytest.raises(UntrustedObjectError):
            unsigned.read_bytes(key)


def test_a_signed_store_copies_by_re_signing_for_the_new_key(signed, clock):
    source, destination = "workflows/orders/checkpoints/f1/", "workflows/orders/checkpoints/f2/"
    signed.post(source + "000-extract", Context(storage="e"))
    signed.post(source + "001-load", Context(storage="l"), ttl=60)
    assert signed.copy_prefix(source, destination) == 2
    assert signed.get(destination + "000-extract").storage == "e"
    assert signed.get(destination + "001-load").storage == "l"
    clock.now += 60  # the expiry was copied too (and it is signed: it cannot be moved)
    assert signed.list_keys(destination) == [destination + "000-extract"]


# -- refusals -------------------------------------------------------------------------------------


def test_an_unsigned_object_planted_in_a_signed_store_is_refused_unpickled_never(signed, marker):
    plant(signed, CHECKPOINT, booby_pickle(marker))
    with pytest.raises(UntrustedObjectError) as refused:
        signed.get(CHECKPOINT)
    assert_refused(refused, signed, CHECKPOINT)
    assert "not signed" in str(refused.value)
    assert not marker.exists()
    # The sanity check of the weapon: the same bytes, read by an unsigned store, do run.
    assert pickle.loads(booby_pickle(marker)) == "attacker's value" and marker.exists()


def test_a_changed_byte_is_refused(signed):
    signed.post(CHECKPOINT, Context(storage={"total": 6}))
    raw = bytearray(stored(signed, CHECKPOINT))
    raw[-2] ^= 0x01
    plant(signed, CHECKPOINT, bytes(raw))
    with pytest.raises(UntrustedObjectError) as refused:
        signed.get(CHECKPOINT)
    assert_refused(refused, signed, CHECKPOINT)
    assert "signature does not match" in str(refused.value)


def test_a_valid_signature_in_front_of_the_attackers_pickle_is_refused(signed, marker):
    signed.post(CHECKPOINT, Context(storage="honest"))
    honest = stored(signed, CHECKPOINT)
    honest_value = pickle.dumps("honest", protocol=pickle.HIGHEST_PROTOCOL)
    assert honest.endswith(honest_value)
    plant(signed, CHECKPOINT, honest[: -len(honest_value)] + booby_pickle(marker))
    with pytest.raises(UntrustedObjectError) as refused:
        signed.get(CHECKPOINT)
    assert_refused(refused, signed, CHECKPOINT)
    assert not marker.exists()


def test_an_object_copied_under_another_key_is_refused(signed):
    # Another fingerprint's checkpoint, copied byte for byte into this one's folder.
    elsewhere = "workflows/orders/checkpoints/f0/000-extract"
    signed.post(elsewhere, Context(storage="computed from another input"))
    plant(signed, CHECKPOINT, stored(signed, elsewhere))
    with pytest.raises(UntrustedObjectError) as refused:
        signed.get(CHECKPOINT)
    assert_refused(refused, signed, CHECKPOINT)
    assert signed.get(elsewhere).storage == "computed from another input"


def test_a_moved_expiry_is_refused(signed, clock):
    signed.post("dotflow/w/session", Context(storage="short-lived"), ttl=5)
    raw = stored(signed, "dotflow/w/session")
    header_size = local_module._TTL_HEADER_SIZE
    never = local_module._TTL_MAGIC + local_module._TTL_EXPIRY.pack(float("inf"))
    plant(signed, "dotflow/w/session", never + raw[header_size:])
    with pytest.raises(UntrustedObjectError) as refused:
        signed.get("dotflow/w/session")
    assert_refused(refused, signed, "dotflow/w/session")


def test_a_store_with_another_key_refuses_and_one_without_a_key_refuses_too(signed, marker):
    signed.write_bytes("workflows/orders/ledger.json", b'{"format": 1}')
    for reader in (same_place(signed, signing_key=OTHER_SECRET), same_place(signed, signing_key=None)):
        with pytest.raises(UntrustedObjectError) as refused:
            reader.read_bytes("workflows/orders/ledger.json")
        assert_refused(refused, reader, "workflows/orders/ledger.json")


def test_objects_written_before_signing_was_turned_on_are_refused(make_store):
    unsigned = make_store(signing_key=None)
    unsigned.post(CHECKPOINT, Context(storage=1))
    assert unsigned.get(CHECKPOINT).storage == 1  # unsigned stores read as they always did
    signed = same_place(unsigned, signing_key=SECRET)
    with pytest.raises(UntrustedObjectError) as refused:
        signed.get(CHECKPOINT)
    assert_refused(refused, signed, CHECKPOINT)


# -- the key itself -------------------------------------------------------------------------------


def test_a_key_shorter_than_16_bytes_is_refused_without_being_shown(tmp_path):
    with pytest.raises(ValueError, match="at least 16 bytes") as short:
        LocalStore(tmp_path, signing_key="fifteen-bytes!!")
    assert "fifteen" not in str(short.value)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        DotflowResource(base_dir=str(tmp_path), signing_key="fifteen-bytes!!").get_store()
    assert LocalStore(tmp_path, signing_key="sixteen-bytes!!!").signed


def test_the_key_appears_in_no_repr(tmp_path, moto_server):
    stores = [
        LocalStore(tmp_path, signing_key=SECRET),
        S3Store("some-bucket", "p/", s3=moto_server.shared_client(), signing_key=SECRET),
    ]
    resource = DotflowResource(base_dir=str(tmp_path), signing_key=SECRET)
    for shown in [*map(repr, stores), *map(str, stores), repr(resource), str(resource), repr(stores[0]._signer)]:
        assert SECRET not in shown
    assert "signing_key=<secret>" in repr(stores[0])


# -- whole runs -----------------------------------------------------------------------------------


def test_a_workflow_runs_resumes_and_reuses_on_a_signed_store(signed, side_effects, monkeypatch):
    workflow = make_workflow()
    monkeypatch.setenv("DOTFLOW_TEST_FAIL", "load")
    failed = workflow.run({"v": 1}, store=signed)
    assert failed.failed_step == "load"
    monkeypatch.delenv("DOTFLOW_TEST_FAIL")
    resumed = workflow.run({"v": 1}, store=signed)
    assert resumed.ok and resumed.resumed == ["extract", "transform"] and resumed.executed == ["load"]
    # reuse copies the previous input's checkpoints under the new fingerprint: re-signed, they resume.
    reused = make_workflow("reuse").run({"v": 2}, store=signed)
    assert reused.decision == "reuse" and reused.executed == [] and reused.ok
    assert side_effects() == {"extract v=1": 1, "transform v=1": 1, "load v=1": 2}
    unsigned = same_place(signed, signing_key=None)
    with pytest.raises(UntrustedObjectError):
        make_workflow().run({"v": 1}, store=unsigned)


def test_a_tampered_checkpoint_stops_the_run_and_is_never_unpickled(signed, side_effects, marker):
    workflow = make_workflow()
    first = workflow.run({"v": 1}, store=signed)
    extract_key = workflow.ledger(store=signed).checkpoint_prefix(first.fingerprint) + workflow.steps[0].key
    plant(signed, extract_key, booby_pickle(marker))
    with pytest.raises(UntrustedObjectError, match=extract_key):
        workflow.run({"v": 1}, store=signed)
    assert not marker.exists()
    # Nothing ran over the evidence: the planted object is still there for the operator to see.
    assert side_effects() == {"extract v=1": 1, "transform v=1": 1, "load v=1": 1}
    assert signed.read_raw(extract_key) is not None
    with pytest.raises(UntrustedObjectError):
        signed.get(extract_key)


def test_dagster_resolves_the_key_from_an_env_var_and_shows_it_nowhere(instance, tmp_path, monkeypatch):
    monkeypatch.setenv("DOTFLOW_SIGNING_KEY", SECRET)
    resource = DotflowResource(base_dir=str(tmp_path / "store"), signing_key=EnvVar("DOTFLOW_SIGNING_KEY"))
    workflow = make_workflow()
    asset_def = dotflow_asset(workflow)
    store = LocalStore(tmp_path / "store", signing_key=SECRET)
    fingerprint = workflow.put_payload({"v": 1}, store=store)
    instance.add_dynamic_partitions("orders_acme_fingerprints", [fingerprint])
    result = materialize([asset_def], partition_key=fingerprint, instance=instance, resources={"dotflow": resource})
    assert result.success
    assert workflow.ledger(store=store).read().current_fingerprint == fingerprint  # written signed
    with pytest.raises(UntrustedObjectError):
        workflow.ledger(store=LocalStore(tmp_path / "store")).read()
    records = instance.get_records_for_run(result.run_id).records
    assert records
    for record in records:
        assert SECRET not in repr(record.event_log_entry)
    materialization = instance.fetch_materializations(AssetKey("orders_acme"), limit=1).records[0]
    assert SECRET not in repr(materialization.asset_materialization.metadata)


# -- dotflow's own storage contract, signed --------------------------------------------------------


class TestSignedLocalStoreStorageContract(StorageContract, unittest.TestCase):
    """dotflow's StorageContract against a signed LocalStore."""

    supports_ttl = True

    def make_storage(self) -> DotflowStore:
        import tempfile

        scratch = tempfile.TemporaryDirectory(prefix="contract-signed-")
        self.addCleanup(scratch.cleanup)
        return LocalStore(Path(scratch.name) / "store", signing_key=SECRET)


@unittest.skipIf(unavailable_reason(), unavailable_reason() or "")
class TestSignedS3StoreStorageContract(StorageContract, unittest.TestCase):
    """dotflow's StorageContract against a signed S3Store on the moto server."""

    supports_ttl = True

    def make_storage(self) -> DotflowStore:
        plain = new_s3_store(prefix="contract/")
        return S3Store(plain.bucket, plain.prefix, s3=plain.client, signing_key=SECRET)
