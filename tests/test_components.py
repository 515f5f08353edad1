"""``DotflowComponent``: workflows declared in ``defs.yaml``, loaded as dg loads them, and the real ``dg`` CLI."""

import json
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster import AssetKey, DagsterInstance, DefaultSensorStatus, DynamicPartitionsDefinition
from dagster.components.testing import DefsFolderSandbox, create_defs_folder_sandbox

from dotflow_dagster import DotflowResource
from dotflow_dagster.components import DotflowComponent, DotflowStoreSpec
from tests.conftest import ROOT, subprocess_env

COMPONENT_TYPE = "dotflow_dagster.components.DotflowComponent"
EXAMPLE = ROOT / "examples" / "dg_project"
DG = str(Path(sys.executable).parent / "dg")

# The sandbox project's own workflows module, as a team would write it next to its defs/ folder.
WORKFLOWS = textwrap.dedent(
    """
    from dotflow import action

    from dotflow_dagster import DotflowWorkflow


    @action
    def echo(initial_context):
        return initial_context.storage


    @action
    def count(initial_context):
        return len(initial_context.storage)


    alpha = DotflowWorkflow("alpha", steps=[echo])
    beta = DotflowWorkflow("beta-flow", steps=[count], on_input_change="reuse")
    not_a_workflow = 42
    """
)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[DefsFolderSandbox]:
    with create_defs_folder_sandbox() as sandbox:
        (sandbox.defs_folder_path.parent / "workflows.py").write_text(WORKFLOWS)
        (sandbox.defs_folder_path.parent / "broken.py").write_text("raise RuntimeError('bad config at import')\n")
        yield sandbox


def declare(sandbox: DefsFolderSandbox, name: str, **attributes: object) -> Path:
    """Write ``defs/<name>/defs.yaml`` declaring a DotflowComponent; ``module`` defaults to the sandbox's."""
    attributes.setdefault("module", f"{sandbox.project_name}.workflows")
    return sandbox.scaffold_component(
        component_cls=DotflowComponent,
        defs_path=name,
        defs_yaml_contents={"type": COMPONENT_TYPE, "attributes": attributes},
    )


def store_in(tmp_path: Path) -> dict[str, str]:
    return {"base_dir": str(tmp_path / "store")}


def error_chain(error: BaseException) -> str:
    """Every message in an exception's chain: dagster wraps a component's error in its own."""
    messages = []
    while error is not None:
        messages.append(f"{type(error).__name__}: {error}")
        error = error.__cause__ or error.__context__
    return "\n".join(messages)


# --- building definitions ------------------------------------------------------------------------


def test_a_declared_workflow_builds_its_asset_submit_job_and_resource(sandbox, tmp_path):
    path = declare(sandbox, "alpha", attribute="alpha", group_name="ingest", store=store_in(tmp_path))
    with sandbox.load_component_and_build_defs(defs_path=path) as (component, defs):
        assert isinstance(component, DotflowComponent)
        asset_def = defs.resolve_assets_def("alpha")
        assert isinstance(asset_def.partitions_def, DynamicPartitionsDefinition)
        assert asset_def.partitions_def.name == "alpha_fingerprints"
        assert asset_def.specs_by_key[AssetKey("alpha")].group_name == "ingest"
        assert "dotflow" in asset_def.required_resource_keys
        assert defs.resolve_job_def("alpha_submit").name == "alpha_submit"
        resource = defs.resources["dotflow"]
        assert isinstance(resource, DotflowResource)
        assert resource.base_dir == str(tmp_path / "store")


def test_the_store_defaults_to_the_resources_default_directory():
    component = DotflowComponent(module="example_project.orders", attribute="orders_workflow")
    assert component.store == DotflowStoreSpec()
    defs = dg.build_defs_for_component(component)
    assert defs.resources["dotflow"].base_dir == DotflowResource().base_dir


def test_submit_job_false_builds_the_asset_alone():
    component = DotflowComponent(module="example_project.orders", attribute="orders_workflow", submit_job=False)
    defs = dg.build_defs_for_component(component)
    assert [asset.key for asset in defs.assets] == [AssetKey("orders_demo")]
    assert not list(defs.jobs or [])


def test_on_input_change_overrides_the_policy_on_a_copy_and_leaves_the_users_workflow_alone(sandbox, tmp_path):
    path = declare(sandbox, "beta", attribute="beta", on_input_change="raise", store=store_in(tmp_path))
    with sandbox.load_component_and_build_defs(defs_path=path) as (component, defs):
        workflow = component.load_workflow()
        original = sys.modules[f"{sandbox.project_name}.workflows"].beta
        assert (workflow.on_input_change, original.on_input_change) == ("raise", "reuse")
        assert workflow.workflow_id == original.workflow_id and workflow.steps == original.steps
        spec = defs.resolve_assets_def("beta_flow").specs_by_key[AssetKey("beta_flow")]
        assert spec.metadata["dotflow/default_on_input_change"] == "raise"


def test_an_unknown_policy_in_yaml_is_refused_naming_the_field(sandbox, tmp_path):
    path = declare(sandbox, "beta", attribute="beta", on_input_change="ignore", store=store_in(tmp_path))
    with pytest.raises(Exception) as raised:
        with sandbox.load_component_and_build_defs(defs_path=path):
            pass
    chain = error_chain(raised.value)
    assert "on_input_change" in chain and "'ignore'" in chain


def test_two_components_in_one_project_load_together_and_share_one_resource(sandbox, tmp_path, instance):
    declare(sandbox, "alpha", attribute="alpha", store=store_in(tmp_path))
    declare(sandbox, "beta", attribute="beta", store=store_in(tmp_path))
    with sandbox.build_all_defs() as defs:
        assert {asset.key for asset in defs.assets} == {AssetKey("alpha"), AssetKey("beta_flow")}
        assert {job.name for job in defs.jobs} == {"alpha_submit", "beta_flow_submit"}
        # Both submit jobs run against the one merged resource.
        for job_name, payload in (("alpha_submit", {"rows": [1, 2]}), ("beta_flow_submit", {"a": 1, "b": 2})):
            result = defs.resolve_job_def(job_name).execute_in_process(
                run_config={"ops": {job_name: {"config": {"payload": payload}}}}, instance=instance
            )
            assert result.success, job_name
    counts = instance.fetch_materializations(AssetKey("beta_flow"), limit=5).records
    assert [record.asset_materialization.metadata["dotflow/decision"].value for record in counts] == ["new"]
    assert instance.get_dynamic_partitions("alpha_fingerprints") and instance.get_dynamic_partitions(
        "beta_flow_fingerprints"
    )


def test_components_naming_different_stores_cannot_share_a_code_location(sandbox, tmp_path):
    # The asset and the submit job require the one resource key `dotflow`: a code location has one store.
    declare(sandbox, "alpha", attribute="alpha", store={"base_dir": str(tmp_path / "one")})
    declare(sandbox, "beta", attribute="beta", store={"base_dir": str(tmp_path / "two")})
    with pytest.raises(Exception) as raised:
        with sandbox.build_all_defs():
            pass
    assert "different resources with same key 'dotflow'" in error_chain(raised.value)


def test_a_sensor_block_builds_a_payload_sensor_per_workflow_watching_a_directory_under_the_project(sandbox, tmp_path):
    declare(sandbox, "alpha", attribute="alpha", store=store_in(tmp_path), sensor={"directory": "inbox/alpha"})
    declare(sandbox, "beta", attribute="beta", store=store_in(tmp_path),
            sensor={"directory": str(tmp_path / "beta_inbox"), "name": "beta_arrivals", "default_status": "running",
                    "minimum_interval_seconds": 5})
    with sandbox.build_all_defs() as defs:
        sensors = {sensor.name: sensor for sensor in defs.sensors}
    alpha_sensor, beta_sensor = sensors["alpha_payload_sensor"], sensors["beta_arrivals"]
    assert alpha_sensor.required_resource_keys == {"dotflow"}
    assert alpha_sensor.default_status == DefaultSensorStatus.STOPPED
    assert (beta_sensor.default_status, beta_sensor.minimum_interval_seconds) == (DefaultSensorStatus.RUNNING, 5)
    # A relative directory is the project's, wherever the process started; an absolute one is kept.
    assert f"directory:{(sandbox.project_root / 'inbox' / 'alpha').resolve()} for payloads of alpha;" in (
        alpha_sensor.description
    )
    assert f"directory:{(tmp_path / 'beta_inbox').resolve()} " in beta_sensor.description


def test_no_sensor_block_no_sensor(sandbox, tmp_path):
    path = declare(sandbox, "alpha", attribute="alpha", store=store_in(tmp_path))
    with sandbox.load_component_and_build_defs(defs_path=path) as (_, defs):
        assert not list(defs.sensors or [])


# --- errors name the module and the attribute ----------------------------------------------------


@pytest.mark.parametrize(
    ("module", "attribute", "expected"),
    [
        ("no_such_project.workflows", "alpha", "cannot import the module: ModuleNotFoundError"),
        ("{project}.workflows", "alhpa", "has no attribute 'alhpa'; its DotflowWorkflows: alpha, beta"),
        ("{project}.workflows", "not_a_workflow", "expected a DotflowWorkflow, found a int"),
        ("{project}.broken", "alpha", "cannot import the module: RuntimeError: bad config at import"),
    ],
)
def test_a_wrong_module_or_attribute_fails_naming_both(sandbox, tmp_path, module, attribute, expected):
    module = module.format(project=sandbox.project_name)
    path = declare(sandbox, "wrong", module=module, attribute=attribute, store=store_in(tmp_path))
    with pytest.raises(Exception) as raised:
        with sandbox.load_component_and_build_defs(defs_path=path):
            pass
    chain = error_chain(raised.value)
    assert f"DotflowComponent: module {module!r}, attribute {attribute!r}: " in chain
    assert expected in chain


def test_a_broken_workflow_module_fails_only_its_own_component(sandbox, tmp_path):
    declare(sandbox, "alpha", attribute="alpha", store=store_in(tmp_path))
    broken = declare(
        sandbox, "broken", module=f"{sandbox.project_name}.broken", attribute="x", store=store_in(tmp_path)
    )
    with sandbox.build_component_tree() as tree:
        alpha = tree.build_defs(sandbox.defs_folder_path / "alpha")
        assert [asset.key for asset in alpha.assets] == [AssetKey("alpha")]
        with pytest.raises(Exception) as raised:
            tree.build_defs(broken)
    assert f"module '{sandbox.project_name}.broken', attribute 'x'" in error_chain(raised.value)


def test_importing_the_components_module_loads_no_user_code_and_no_dagster_builders():
    # `dg list components` imports this module in every project of the environment.
    script = (
        "import json, sys\n"
        "import dotflow_dagster.components\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    loaded = set(json.loads(completed.stdout))
    assert not {name for name in loaded if name.startswith(("example_project", "dotflow_dg_example"))}
    builders = {"dotflow_dagster.assets", "dotflow_dagster.jobs", "dotflow_dagster.resource", "dotflow_dagster.sensor"}
    assert not loaded & builders


# --- scaffolding ------------------------------------------------------------------------------------


def test_the_scaffolder_writes_a_defs_yaml_that_loads(sandbox, tmp_path):
    path = sandbox.scaffold_component(
        component_cls=DotflowComponent,
        defs_path="alpha",
        scaffold_params={"module": f"{sandbox.project_name}.workflows", "attribute": "alpha", "group_name": "ingest"},
    )
    written = yaml.safe_load((path / "defs.yaml").read_text())
    assert written == {
        "type": COMPONENT_TYPE,
        "attributes": {
            "module": f"{sandbox.project_name}.workflows",
            "attribute": "alpha",
            "group_name": "ingest",
            "store": {"base_dir": "dotflow_store"},
        },
    }
    with sandbox.load_component_and_build_defs(defs_path=path) as (_, defs):
        assert defs.resolve_job_def("alpha_submit").name == "alpha_submit"


def test_scaffolding_without_options_writes_placeholders_that_fail_by_name(sandbox):
    path = sandbox.scaffold_component(component_cls=DotflowComponent, defs_path="todo")
    attributes = yaml.safe_load((path / "defs.yaml").read_text())["attributes"]
    assert (attributes["module"], attributes["attribute"]) == ("my_project.workflows", "my_workflow")
    with pytest.raises(Exception) as raised:
        with sandbox.load_component_and_build_defs(defs_path=path):
            pass
    assert "module 'my_project.workflows', attribute 'my_workflow'" in error_chain(raised.value)


# --- the real dg CLI on examples/dg_project ----------------------------------------------------------


def dg_cli(project: Path, home: Path, *args: str) -> subprocess.CompletedProcess:
    completed = subprocess.run(
        [DG, *args], cwd=project, env=subprocess_env(DAGSTER_HOME=str(home)),
        capture_output=True, text=True, timeout=300,
    )
    completed.output = completed.stdout + completed.stderr
    return completed


@pytest.mark.integration
def test_dg_lists_checks_scaffolds_and_launches_the_example_project(tmp_path):
    project = tmp_path / "dg_project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__"))
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")

    listed = dg_cli(project, home, "list", "components", "--json")
    assert listed.returncode == 0, listed.output
    summaries = {item["key"]: item["summary"] for item in json.loads(listed.stdout)["items"]}
    assert summaries[COMPONENT_TYPE] == DotflowComponent.__doc__.splitlines()[0]

    # Scaffold one of the example's two components anew, as a user would start one.
    shutil.rmtree(project / "dotflow_dg_example" / "defs" / "greetings")
    scaffolded = dg_cli(project, home, "scaffold", "defs", COMPONENT_TYPE, "greetings",
                        "--module", "dotflow_dg_example.workflows", "--attribute", "greetings_workflow")
    assert scaffolded.returncode == 0, scaffolded.output

    checked = dg_cli(project, home, "check", "defs")
    assert checked.returncode == 0, checked.output
    assert "All definitions loaded successfully" in checked.output

    listed_defs = dg_cli(project, home, "list", "defs", "--json")
    assert listed_defs.returncode == 0, listed_defs.output
    found = json.loads(listed_defs.stdout)
    assert {(a["asset_key"], a["group_name"]) for a in found["assets"]} == {
        ("daily_totals", "dotflow_example"), ("greetings", "default"),  # the scaffolded one names no group
    }
    assert {"daily_totals_submit", "greetings_submit"} <= {job["name"] for job in found["jobs"]}
    assert [sensor["name"] for sensor in found["sensors"]] == ["daily_totals_payload_sensor"]
    assert [resource["name"] for resource in found["resources"]] == ["dotflow"]

    submitted = dg_cli(
        project, home, "launch", "--job", "daily_totals_submit", "--config", "payloads/daily_totals.yaml"
    )
    assert submitted.returncode == 0, submitted.output[-3000:]

    payload = yaml.safe_load((project / "payloads" / "daily_totals.yaml").read_text())
    payload = payload["ops"]["daily_totals_submit"]["config"]["payload"]
    sys.path.insert(0, str(project))
    try:
        from dotflow_dg_example.workflows import daily_totals_workflow

        fingerprint = daily_totals_workflow.fingerprint(payload)
    finally:
        sys.path.remove(str(project))
        for name in [name for name in sys.modules if name.startswith("dotflow_dg_example")]:
            del sys.modules[name]

    # The submit job registered the partition, so the asset's partition can be launched by key.
    relaunched = dg_cli(project, home, "launch", "--assets", "daily_totals", "--partition", fingerprint)
    assert relaunched.returncode == 0, relaunched.output[-3000:]

    with DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_dynamic_partitions("daily_totals_fingerprints") == [fingerprint]
        records = instance.fetch_materializations(AssetKey("daily_totals"), limit=10, ascending=True).records
    materializations = [record.asset_materialization for record in records]
    assert [(m.partition, m.metadata["dotflow/decision"].value) for m in materializations] == [
        (fingerprint, "new"), (fingerprint, "unchanged"),
    ]
    assert materializations[0].metadata["dotflow/steps_executed"].value == ["parse", "total"]
    assert (home / "dotflow_store").is_dir()  # the relative base_dir resolved against DAGSTER_HOME

    # A misspelled key is reported with its file and line: by `dg check yaml` before anything is
    # loaded, and by `dg check defs` when the component is loaded. `dg check yaml` is given the
    # component's folder: dg 1.13.27 checks only one defs.yaml per component type when given none.
    defs_yaml = project / "dotflow_dg_example" / "defs" / "daily_totals" / "defs.yaml"
    defs_yaml.write_text(defs_yaml.read_text().replace("group_name:", "group_nme:"))
    misspelled = dg_cli(project, home, "check", "yaml", str(defs_yaml.parent))
    assert misspelled.returncode != 0
    assert f"{defs_yaml}:6" in misspelled.output and "'group_nme' was unexpected" in misspelled.output
    refused = dg_cli(project, home, "check", "defs")
    assert refused.returncode != 0
    assert f"attributes.group_nme at {defs_yaml}:6" in refused.output
