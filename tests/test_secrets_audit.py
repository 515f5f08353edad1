"""A secret under redact_paths, followed through a whole demo-like life of example_project.

One story, run once for the module in a process of its own (``python -m tests.test_secrets_audit
<DAGSTER_HOME>``, everything it prints captured) on a real DagsterInstance: a temporary
DAGSTER_HOME with SQLite storage and the local compute log manager, the example project's own
``defs`` (store, submit job, asset, arrivals job, inbox sensor). It does what the demo does
(v1, v1 redelivered, v2, v2 under ``incremental``), refuses a changed payload under ``raise``
through the real CLI (the asset run is tagged ``dotflow/on_input_change=raise``) and in a
direct worker call, re-materializes v1's partition as a backfill would, lets the inbox sensor
see a changed payload and executes the reset run it requests, and runs a second workflow whose
secret sits in a dataclass field (``redact_paths=["root['c'].token"]``) through new, raise,
reset and a replay of the first input after retention pruned it (an observation). Every payload
carries a distinctive token.

Then every place a secret could leak is read back whole: every event record of every run,
serialized; the compute log files; all materialization, observation and failure metadata; the
store's ledgers and its other files; every error message and everything the processes printed.
The tokens appear there 0 times. The stored payloads are the documented exception: the tokens
must be in them, which also proves they really flowed through the story, until retention prunes
them. The submit job's run config is documented too: Dagster keeps the config a run was
launched with.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterEventType, DagsterInstance
from dagster._serdes import serialize_value

from tests.conftest import ROOT, subprocess_env
from tests.support.bad_inputs_payloads import Creds

TOKENS = {
    "v1": "sk-audit-v1-7f3a9c21e5b0",
    "v2": "sk-audit-v2-b84d0e6f12aa",
    "v3": "sk-audit-v3-c5e1a0d9f4cc",
    "inbox": "sk-audit-inbox-2e9b7c3a81",
    "dataclass": "sk-audit-dc1-d4f60b1e93",
    "dataclass changed": "sk-audit-dc2-0a77e3c5b2",
}
ORDERS_TOKENS = ("v1", "v2", "v3", "inbox")
VAULT = "vault-sync"
DAGSTER = str(Path(sys.executable).parent / "dagster")

pytestmark = pytest.mark.integration  # the story runs in a subprocess and calls the dagster CLI


def _submit_config(payload: dict, policy: str | None = None) -> dict:
    config: dict[str, Any] = {"payload": payload}
    if policy:
        config["on_input_change"] = policy
    return {"ops": {"orders_demo_submit": {"config": config}}}


def _orders(token: str, **fields: Any) -> dict:
    return {"orders_file": "orders_2026_11.csv", "region": "EU", "min_quantity": 1, **fields, "api_token": token}


V1 = _orders(TOKENS["v1"])
V1_AGAIN = dict(reversed(list({**V1, "received_at": "2026-11-26T09:45:12Z"}.items())))
V2 = _orders(TOKENS["v2"], orders_file="orders_2026_12.csv")
V2_NEW_TABLE = {**V2, "warehouse_table": "customer_totals_v2"}
V3 = _orders(TOKENS["v3"], orders_file="orders_2026_12.csv", region="US", min_quantity=3)
INBOX = _orders(TOKENS["inbox"], region="US")


# -- the story (run in its own process) ------------------------------------------------------------------


def _failure_texts(result: Any) -> list[str]:
    texts = []
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE":
            data = event.event_specific_data
            if data.user_failure_data is not None:
                texts.append(data.user_failure_data.description or "")
            if data.error is not None:
                texts.append(data.error.to_string())
    return texts


def run_story(home: Path) -> dict[str, Any]:
    """Drive example_project through the story on the instance at ``home``; return what happened."""
    from dagster import (
        AddDynamicPartitionsRequest,
        AssetKey,
        Definitions,
        build_sensor_context,
        materialize,
    )
    from dotflow import action

    from dotflow_dagster import DotflowWorkflow, InputChangedError, dotflow_asset
    from example_project.definitions import defs
    from example_project.orders import orders_workflow

    instance = DagsterInstance.get()
    resource = defs.resources["dotflow"]
    store = resource.get_store()
    submit = defs.get_job_def("orders_demo_submit")
    asset = defs.get_assets_def(AssetKey("orders_demo"))
    outcome: dict[str, Any] = {"errors": [], "runs": {}}

    def remember(name: str, result: Any) -> None:
        outcome["runs"][name] = result.success
        outcome["errors"].extend(_failure_texts(result))

    for name, payload, policy in [("v1", V1, None), ("v1 again", V1_AGAIN, None), ("v2", V2, None),
                                  ("v2 incremental", V2_NEW_TABLE, "incremental")]:
        remember(name, submit.execute_in_process(run_config=_submit_config(payload, policy), instance=instance,
                                                 raise_on_error=False))

    # The raise through the real CLI, as the demo does it; the asset run gets dotflow/on_input_change=raise.
    config = home / "v3_raise.yaml"
    config.write_text(json.dumps(_submit_config(V3, "raise")))  # JSON is YAML
    completed = subprocess.run([DAGSTER, "job", "execute", "-m", "example_project", "-j", "orders_demo_submit",
                                "-c", str(config)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    config.unlink()
    sys.stdout.write(completed.stdout + completed.stderr)
    outcome["runs"]["v3 raise (CLI)"] = completed.returncode == 0
    try:
        orders_workflow.run(V3, store=store, on_input_change="raise")
    except InputChangedError as error:  # a queue worker's refusal, in every form a handler may log
        outcome["errors"] += [str(error), repr(error), error.diff_text]
    remember("v1 backfill", materialize([asset], partition_key=orders_workflow.fingerprint(V1), instance=instance,
                                        resources={"dotflow": resource}, raise_on_error=False))

    # The inbox sensor sees a changed payload; the run it requests is executed as the daemon would.
    inbox = Path(os.environ["ORDERS_DEMO_INBOX"])
    temporary = inbox / ".orders-demo.json.tmp"
    temporary.write_text(json.dumps(INBOX))
    os.replace(temporary, inbox / "orders-demo.json")
    sensor = defs.get_sensor_def("orders_demo_inbox")
    with build_sensor_context(instance=instance, resources={"dotflow": resource}) as context:
        tick = sensor(context)
    for request in tick.dynamic_partitions_requests or []:
        if isinstance(request, AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    outcome["sensor requests"] = len(tick.run_requests)
    for request in tick.run_requests:
        arrivals = defs.get_job_def(request.job_name)
        remember("inbox reset", arrivals.execute_in_process(instance=instance, partition_key=request.partition_key,
                                                            tags=request.tags, raise_on_error=False))

    # A secret in a dataclass field: new, refused under raise, then reset on purpose.
    @action
    def sync(initial_context):
        return {"vault": initial_context.storage["vault"], "user": initial_context.storage["c"].user}

    # retention=0: the reset prunes the first input, so its replay below is an observation.
    vault = DotflowWorkflow(VAULT, steps=[sync], redact_paths=["root['c'].token"], retention=0)
    vault_defs = Definitions(assets=[dotflow_asset(vault)], resources={"dotflow": resource})
    vault_asset = vault_defs.get_assets_def(AssetKey("vault_sync"))
    for name, token, tags in [("dataclass new", "dataclass", {"dotflow/arrival": "submit"}),
                              ("dataclass raise", "dataclass changed", {"dotflow/on_input_change": "raise"}),
                              ("dataclass reset", "dataclass changed", {"dotflow/on_input_change": "reset"}),
                              ("dataclass backfill", "dataclass", {})]:
        payload = {"vault": "eu", "c": Creds("ops", TOKENS[token])}
        fingerprint = vault.put_payload(payload, store=store) if tags else vault.fingerprint(payload)
        instance.add_dynamic_partitions("vault_sync_fingerprints", [fingerprint])
        remember(name, materialize([vault_asset], partition_key=fingerprint, instance=instance,
                                   resources={"dotflow": resource}, tags=tags, raise_on_error=False))
    return outcome


@pytest.fixture(scope="module")
def story(tmp_path_factory) -> dict[str, Any]:
    """Run the story once in its own process; return its outcome, its output and the paths it used."""
    home = tmp_path_factory.mktemp("secrets_home")
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    inbox = home / "inbox"
    inbox.mkdir()
    env = subprocess_env(DAGSTER_HOME=str(home), ORDERS_DEMO_INBOX=str(inbox),
                         ORDERS_DEMO_WAREHOUSE=str(home / "warehouse.sqlite"))
    completed = subprocess.run([sys.executable, "-m", "tests.test_secrets_audit", str(home)], cwd=ROOT, env=env,
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-5000:]
    outcome = json.loads((home / "outcome.json").read_text())
    return {**outcome, "home": home, "store": home / "dotflow_store", "printed": completed.stdout + completed.stderr}


@pytest.fixture(scope="module")
def instance(story) -> DagsterInstance:
    with DagsterInstance.from_config(str(story["home"])) as opened:
        yield opened


def _events(instance: DagsterInstance) -> list[Any]:
    return [entry for run in instance.get_runs() for entry in instance.all_logs(run.run_id)]


def _count(text: str | bytes) -> dict[str, int]:
    """How often each token occurs in ``text``; only the non-zero counts."""
    counts = {}
    for name, token in TOKENS.items():
        found = text.count(token.encode() if isinstance(text, bytes) else token)
        if found:
            counts[name] = found
    return counts


# -- the story happened as told ---------------------------------------------------------------------------


def test_the_story_ran_every_path_a_secret_can_take(story, instance):
    assert story["runs"] == {
        "v1": True, "v1 again": True, "v2": True, "v2 incremental": True, "v3 raise (CLI)": False,
        "v1 backfill": True, "inbox reset": True,
        "dataclass new": True, "dataclass raise": False, "dataclass reset": True, "dataclass backfill": True,
    }
    assert story["sensor requests"] == 1
    decisions = [entry.asset_materialization.metadata["dotflow/decision"].value
                 for entry in _events(instance) if entry.dagster_event and entry.dagster_event.event_type
                 == DagsterEventType.ASSET_MATERIALIZATION]
    for decision in ("new", "unchanged", "reset", "incremental", "skipped"):
        assert decision in decisions, decisions
    refusals = [text for text in story["errors"] if "on_input_change='raise'" in text]
    assert any("root['api_token']: *** -> ***" in text for text in refusals), refusals
    assert any("root['c'].token: *** -> ***" in text for text in refusals), refusals
    assert "root['api_token']: *** -> ***" in story["printed"]  # the CLI printed the refusal, redacted
    arrivals = [run for run in instance.get_runs() if run.tags.get("dotflow/arrival") == "sensor"]
    assert len(arrivals) == 1 and instance.get_run_by_id(arrivals[0].run_id).is_success


# -- where the secret never appears ----------------------------------------------------------------------


def test_the_event_log_of_every_run_holds_no_secret(instance):
    entries = _events(instance)
    assert len(entries) > 100
    assert _count("\n".join(serialize_value(entry) for entry in entries)) == {}


def test_the_compute_logs_hold_no_secret(story):
    files = [path for path in (story["home"] / "storage").rglob("*")
             if path.is_file() and path.suffix in (".out", ".err", ".complete")]
    captured = b"".join(path.read_bytes() for path in files)
    assert b"decision" in captured, "no compute log captured the runs"
    assert {path.name: _count(path.read_bytes()) for path in files if _count(path.read_bytes())} == {}


def test_no_materialization_observation_or_failure_metadata_holds_a_secret(instance):
    metadata = []
    for entry in _events(instance):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            metadata.append(entry.asset_materialization.metadata)
        elif event.event_type == DagsterEventType.ASSET_OBSERVATION:
            metadata.append(event.event_specific_data.asset_observation.metadata)
        elif event.event_type == DagsterEventType.STEP_FAILURE and event.step_failure_data.user_failure_data:
            metadata.append(event.step_failure_data.user_failure_data.metadata)
    kinds = {event.dagster_event.event_type for event in _events(instance) if event.dagster_event}
    assert {DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_OBSERVATION} <= kinds
    shown = "\n".join(serialize_value(values) for values in metadata)
    assert '"api_token": "***"' in shown and '"token": "***"' in shown  # redacted, not left out
    assert "dotflow/diff" in shown
    assert _count(shown) == {}


def test_the_ledgers_and_every_other_stored_file_hold_no_secret(story):
    files = [path for path in story["store"].rglob("*") if path.is_file()]
    ledgers = [path for path in files if path.name == "ledger.json"]
    assert {path.parent.name for path in ledgers} == {"orders-demo", VAULT}
    others = [path for path in files if "/payloads/" not in path.as_posix()]
    assert {path.relative_to(story["store"]).as_posix(): _count(path.read_bytes())
            for path in others if _count(path.read_bytes())} == {}


def test_no_error_message_or_printed_line_holds_a_secret(story):
    assert len(story["errors"]) >= 4
    assert _count("\n".join(story["errors"])) == {}
    assert _count(story["printed"]) == {}


# -- where it does, as documented -----------------------------------------------------------------------


def test_the_stored_payloads_hold_every_secret_that_flowed_through_until_retention_prunes_them(story):
    payloads = b"".join(path.read_bytes() for path in story["store"].rglob("payloads/*.pickle"))
    assert set(_count(payloads)) == set(TOKENS) - {"dataclass"}  # the vault's first input: pruned (retention=0)
    assert len(list((story["store"] / "workflows" / VAULT / "payloads").iterdir())) == 1


def test_the_submit_jobs_run_config_holds_the_payload_as_submitted(instance):
    submitted = [run for run in instance.get_runs() if run.job_name == "orders_demo_submit"]
    assert len(submitted) == 5
    assert set(_count(json.dumps([run.run_config for run in submitted]))) == {"v1", "v2", "v3"}
    others = [run for run in instance.get_runs() if run.job_name != "orders_demo_submit"]
    assert _count(json.dumps([run.run_config for run in others]) + json.dumps([run.tags for run in others])) == {}


if __name__ == "__main__":
    target = Path(sys.argv[1])
    result = run_story(target)
    (target / "outcome.json").write_text(json.dumps(result))
