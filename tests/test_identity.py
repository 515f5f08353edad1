"""Caller-supplied identity (``fingerprint_fn``) and the values one identity must keep (``validate_paths``)."""

import dataclasses
import pickle

import pydantic
import pytest

from dotflow_dagster import FingerprintError, FingerprintMismatchError, InputChangedError, LocalStore
from dotflow_dagster.errors import ValidationConflictError
from tests.support.flow import make_workflow


def order_id(payload: dict) -> str:
    return f"order-{payload['id']}"


FIRST = {"id": 7, "v": 1, "amount": 10, "token": "SECRET-1", "note": "first delivery"}
AGAIN = {"id": 7, "v": 2, "amount": 10, "token": "SECRET-1", "note": "redelivered"}  # same identity


def identity_workflow(policy: str = "reset", **options):
    return make_workflow(policy, fingerprint_fn=order_id, **options)


def every_key(store: LocalStore) -> dict[str, bytes | None]:
    return {key: store.read_bytes(key) for key in store.list_keys("workflows/")}


def test_the_identity_is_the_fingerprint_the_ledger_key_and_the_checkpoint_folder(store, side_effects):
    workflow = identity_workflow()
    report = workflow.run(FIRST, store=store)
    assert report.decision == "new" and report.fingerprint == "order-7" == workflow.fingerprint(FIRST)
    assert workflow.state(store=store).current_fingerprint == "order-7"
    ledger = workflow.ledger(store=store)
    assert store.exists(ledger.payload_key("order-7"))
    assert {key.split("/")[3] for key in store.list_keys("workflows/orders-acme/checkpoints/")} == {"order-7"}
    other = workflow.run({**FIRST, "id": 8}, store=store)
    assert (other.fingerprint, other.decision, other.previous_fingerprint) == ("order-8", "reset", "order-7")


def test_ignore_paths_do_not_apply_to_a_callers_identity_but_still_to_diffs(store):
    workflow = identity_workflow(ignore_paths=["root['id']", "root['note']"])
    assert workflow.fingerprint(FIRST) == "order-7" and workflow.fingerprint({**FIRST, "id": 9}) == "order-9"
    workflow.run(FIRST, store=store)
    changed = workflow.run({**FIRST, "id": 9, "note": "x", "v": 5}, store=store)
    assert changed.changes == ("root['v']: 1 -> 5",)  # id and note ignored in the diff


class Opaque:
    """No canonical encoding: the canonical fingerprint refuses it."""


def test_payloads_no_canonical_fingerprint_accepts_can_have_a_callers_identity(store):
    with pytest.raises(FingerprintError):
        make_workflow().fingerprint({"handle": Opaque()})
    workflow = identity_workflow()
    report = workflow.run({**FIRST, "handle": Opaque()}, store=store)
    assert report.ok and report.fingerprint == "order-7"


@pytest.mark.parametrize(
    ("returned", "shown"),
    [
        ("order...7", "'order...7'"),  # Dagster refuses '...' in partition keys
        ("x" * 129, "'" + "x" * 129 + "'"),
        ("orders/7", "'orders/7'"),
        ("order 7", "'order 7'"),
        ("", "''"),
        (".", "'.'"),
        ("..", "'..'"),
        (7, "the int 7"),
        (None, "None"),
        (b"order-7", "the bytes b'order-7'"),
    ],
)
def test_an_invalid_identity_is_refused_naming_the_workflow_and_the_value(store, returned, shown):
    workflow = make_workflow(fingerprint_fn=lambda payload: returned)
    with pytest.raises(ValueError) as raised:
        workflow.run(FIRST, store=store)
    message = str(raised.value)
    assert "orders-acme" in message and f"fingerprint_fn returned {shown}," in message
    assert "first delivery" not in message and "SECRET" not in message
    assert store.list_keys("workflows/") == []  # nothing stored, nothing decided


def test_a_far_too_long_identity_is_named_shortened():
    workflow = make_workflow(fingerprint_fn=lambda payload: "y" * 5000)
    with pytest.raises(ValueError, match=r"orders-acme.*returned 'y{100}'\.\.\. \(5000 characters\)"):
        workflow.fingerprint(FIRST)


def test_a_container_returned_as_identity_is_named_by_type_only_never_shown():
    workflow = make_workflow(fingerprint_fn=lambda payload: payload)  # the whole payload, by mistake
    with pytest.raises(ValueError, match="orders-acme.*fingerprint_fn returned a dict, which is not") as raised:
        workflow.fingerprint(FIRST)
    assert "SECRET" not in str(raised.value) and "first delivery" not in str(raised.value)


def test_a_raising_fingerprint_fn_is_a_value_error_naming_the_workflow_not_the_payload(store):
    workflow = make_workflow(fingerprint_fn=lambda payload: payload["order"]["id"])
    with pytest.raises(ValueError) as raised:
        workflow.run(FIRST, store=store)
    message = str(raised.value)
    assert "orders-acme" in message and "fingerprint_fn raised KeyError: 'order'" in message
    assert "SECRET" not in message and "first delivery" not in message
    assert isinstance(raised.value.__cause__, KeyError)


def test_fingerprint_fn_must_be_callable():
    with pytest.raises(TypeError, match="orders-acme.*fingerprint_fn must be a callable"):
        make_workflow(fingerprint_fn="order-{id}")


def test_the_same_identity_is_unchanged_and_a_run_by_key_uses_the_first_stored_payload(store, side_effects):
    workflow = identity_workflow()
    first = workflow.run(FIRST, store=store)
    again = workflow.run(AGAIN, store=store)
    assert again.decision == "unchanged" and again.executed == [] and again.fingerprint == first.fingerprint
    assert workflow.ledger(store=store).get_payload("order-7") == FIRST  # the first is kept
    by_key = workflow.run_fingerprint("order-7", store=store)
    assert by_key.decision == "unchanged" and by_key.payload["note"] == "first delivery"
    assert sum(side_effects().values()) == 3


def test_a_failed_identity_resumes_by_key_with_the_first_payload(store, side_effects, monkeypatch):
    workflow = identity_workflow()
    monkeypatch.setenv("DOTFLOW_TEST_FAIL", "load")
    assert workflow.run(FIRST, store=store).failed_step == "load"
    monkeypatch.delenv("DOTFLOW_TEST_FAIL")
    workflow.put_payload(AGAIN, store=store)  # same identity: stores nothing
    resumed = workflow.run_fingerprint("order-7", store=store)
    assert resumed.executed == ["load"] and side_effects()["load v=1"] == 2 and "load v=2" not in side_effects()


def test_a_run_by_key_checks_the_stored_payload_against_fingerprint_fn(store):
    identity_workflow().put_payload(FIRST, store=store)
    renamed = make_workflow(fingerprint_fn=lambda payload: f"ORD-{payload['id']}")
    with pytest.raises(FingerprintMismatchError, match=r"order-7 now fingerprints to ORD-7 \(did fingerprint_fn change\?\)"):
        renamed.run_fingerprint("order-7", store=store)


# --- validate_paths --------------------------------------------------------------------------------


def validating_workflow(policy: str = "reset"):
    return identity_workflow(
        policy, validate_paths=["root['amount']", "root['token']"], redact_paths=["root['token']"]
    )


def test_a_payload_differing_at_validate_paths_is_refused_naming_the_paths_with_secrets_redacted(store, side_effects):
    workflow = validating_workflow()
    workflow.run(FIRST, store=store)
    before = every_key(store)
    with pytest.raises(ValidationConflictError) as raised:
        workflow.run({**FIRST, "amount": 12, "token": "SECRET-2"}, store=store)
    error = raised.value
    assert isinstance(error, InputChangedError)
    assert (error.workflow_id, error.fingerprint, error.paths) == ("orders-acme", "order-7", ("root['amount']", "root['token']"))
    message = str(error)
    assert "'orders-acme'" in message and "order-7" in message
    assert "root['amount']: 10 -> 12" in message
    assert "root['token']: *** -> *** (redacted value changed)" in message
    assert "SECRET" not in message and "SECRET" not in repr(error.diff_text)
    assert every_key(store) == before  # nothing executed, stored, deleted; the ledger did not move
    assert sum(side_effects().values()) == 3
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is ValidationConflictError and copy.paths == error.paths and str(copy) == message


def test_values_outside_validate_paths_may_differ(store, side_effects):
    workflow = validating_workflow()
    workflow.run(FIRST, store=store)
    assert workflow.run(AGAIN, store=store).decision == "unchanged"


@pytest.mark.parametrize(
    ("candidate", "line"),
    [
        ({key: value for key, value in FIRST.items() if key != "amount"}, "root['amount']: removed 10"),
        ({**FIRST, "amount": 10.0}, "root['amount']: 10 -> 10.0"),  # 1 is not 1.0, as in fingerprints
        ({**FIRST, "amount": {"value": 10}}, "root['amount']: 10 -> {'value': 10}"),
    ],
)
def test_a_missing_value_or_another_type_is_a_conflict(store, candidate, line):
    workflow = validating_workflow()
    workflow.put_payload(FIRST, store=store)
    assert workflow.validation_conflicts(candidate, store=store) == ("root['amount']",)
    with pytest.raises(ValidationConflictError) as raised:
        workflow.put_payload(candidate, store=store)
    assert line in str(raised.value)


def test_validation_conflicts_reads_only_and_is_empty_when_nothing_is_stored_or_nothing_differs(store):
    workflow = validating_workflow()
    assert workflow.validation_conflicts(FIRST, store=store) == ()
    assert store.list_keys("workflows/") == []
    workflow.put_payload(FIRST, store=store)
    before = every_key(store)
    assert workflow.validation_conflicts(AGAIN, store=store) == ()
    assert workflow.validation_conflicts({**FIRST, "token": "SECRET-9"}, store=store) == ("root['token']",)
    assert workflow.validation_conflicts({**FIRST, "amount": 1, "token": "x"}, store=store) == (
        "root['amount']",
        "root['token']",
    )
    assert workflow.validation_conflicts({**FIRST, "id": 8, "amount": 1}, store=store) == ()  # another identity
    assert every_key(store) == before
    assert identity_workflow().validation_conflicts({**FIRST, "amount": 1}, store=store) == ()  # no validate_paths


@dataclasses.dataclass(frozen=True)
class Line:
    sku: str
    qty: int


class Customer(pydantic.BaseModel):
    name: str
    vip: bool


def test_validate_paths_reach_into_lists_dataclasses_and_models(store):
    workflow = identity_workflow(
        validate_paths=["root['lines'][-1].qty", "root['customer']['vip']", "root['lines'][0]"]
    )
    payload = {"id": 1, "v": 1, "lines": [Line("a", 1), Line("b", 2)], "customer": Customer(name="ada", vip=False)}
    workflow.put_payload(payload, store=store)
    renamed = {**payload, "customer": Customer(name="bob", vip=False)}
    assert workflow.validation_conflicts(renamed, store=store) == ()
    changed = {**payload, "lines": [Line("a", 1), Line("b", 3)], "customer": Customer(name="ada", vip=True)}
    assert workflow.validation_conflicts(changed, store=store) == ("root['lines'][-1].qty", "root['customer']['vip']")
    shorter = {**payload, "lines": [Line("a", 1)]}  # [-1] is now another line
    with pytest.raises(ValidationConflictError) as raised:
        workflow.put_payload(shorter, store=store)
    assert raised.value.paths == ("root['lines'][-1].qty",)
    assert "root['lines'][-1].qty: 2 -> 1" in str(raised.value)


def test_a_secret_inside_a_validated_value_is_never_shown(store):
    workflow = identity_workflow(validate_paths=["root['auth']"], redact_paths=["root['auth']['token']"])
    workflow.put_payload({"id": 1, "v": 1, "auth": {"user": "ada", "token": "SECRET-1"}}, store=store)
    with pytest.raises(ValidationConflictError) as only_secret:
        workflow.put_payload({"id": 1, "v": 1, "auth": {"user": "ada", "token": "SECRET-2"}}, store=store)
    assert "root['auth']: only redacted values inside it differ" in str(only_secret.value)
    with pytest.raises(ValidationConflictError) as both:
        workflow.put_payload({"id": 1, "v": 1, "auth": {"user": "bob", "token": "SECRET-2"}}, store=store)
    assert "root['auth']['user']: 'ada' -> 'bob'" in str(both.value)
    assert "SECRET" not in str(only_secret.value) + str(both.value)


def test_validate_paths_need_fingerprint_fn_and_are_parsed_like_ignore_paths():
    with pytest.raises(ValueError, match="orders-acme.*validate_paths need a fingerprint_fn"):
        make_workflow(validate_paths=["root['amount']"])
    with pytest.raises(TypeError, match="single string"):
        identity_workflow(validate_paths="root['amount']")
    with pytest.raises(ValueError, match=r"root\['amount'"):
        identity_workflow(validate_paths=["root['amount'"])
    assert identity_workflow(validate_paths=(path for path in ["root['amount']"])).validate_paths == ("root['amount']",)
