"""``DotflowComponent``: declare a dotflow workflow in a ``dg`` project's ``defs.yaml``.

A team on ``dg`` writes YAML, not Python glue::

    type: dotflow_dagster.components.DotflowComponent
    attributes:
      module: my_project.workflows      # where the DotflowWorkflow is defined
      attribute: orders_workflow        # its name in that module
      group_name: ingest
      store:
        base_dir: dotflow_store         # relative to $DAGSTER_HOME
        signing_key_env: DOTFLOW_SIGNING_KEY  # optional: sign every stored object
      on_input_change: raise            # optional: overrides the workflow's own policy
      submit_job: true                  # build <asset>_submit (the default)
      sensor:                           # optional: run <workflow_id>.json files arriving here
        directory: inbox/orders         # relative to the project root

The component builds what the Python API builds by hand: ``dotflow_asset(workflow)``,
``dotflow_submit_job(workflow)`` unless ``submit_job: false``, ``payload_change_sensor`` if a
``sensor`` block is given, and a ``DotflowResource`` bound under the key ``dotflow``.

``dg`` finds this module through the entry point ``dagster_dg_cli.registry_modules`` and
imports it for ``dg list components``, in every project of the environment. So importing it
loads no user code and none of the package's Dagster builders: the workflow's module is
imported when the component is loaded, and a broken one fails that component alone, naming
the module and the attribute.

The same component built in Python (tests, or a project without YAML):

    >>> import dagster as dg
    >>> component = DotflowComponent(module="example_project.orders", attribute="orders_workflow",
    ...                              group_name="ingest", store=DotflowStoreSpec(base_dir="dotflow_store"))
    >>> defs = dg.build_defs_for_component(component)
    >>> defs.resolve_assets_def("orders_demo").group_names_by_key[dg.AssetKey("orders_demo")]
    'ingest'
    >>> defs.resolve_job_def("orders_demo_submit").name
    'orders_demo_submit'
"""

import copy
import functools
import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import dagster as dg
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from dotflow_dagster.resource import DotflowResource
    from dotflow_dagster.workflow import DotflowWorkflow

# Only DotflowComponent may be a Component here: dg registers every concrete Component subclass
# visible in this module as `dotflow_dagster.components.<ClassName>`.
__all__ = [
    "DotflowComponent",
    "DotflowComponentScaffolder",
    "DotflowScaffoldParams",
    "DotflowSensorSpec",
    "DotflowStoreSpec",
]


def _described(description: str, *, examples: list[object] | None = None) -> dg.Resolver:
    # Dagster derives the YAML schema from the annotation's Resolver: a pydantic Field's
    # description is dropped there for fields with a default, so `dg` would not show it.
    return dg.Resolver.default(description=description, examples=examples)


class DotflowStoreSpec(dg.Resolvable, dg.Model):
    """Where checkpoints, ledgers and payloads live: the ``store:`` block of a ``DotflowComponent``.

    Today a local directory (``base_dir``). Other stores (S3) will be added as further keys of
    this block, so a ``defs.yaml`` written now keeps its meaning.

    Every ``DotflowComponent`` of one code location binds the same resource key (``dotflow``),
    so they must all name the same store: components with equal ``store`` blocks share one
    resource object, and two different blocks make Dagster refuse the code location.

    ``signing_key_env`` names the environment variable holding the store's signing key (see
    ``DotflowResource.signing_key``); the key itself never goes in YAML, which Dagster shows.

    Example:
        >>> DotflowStoreSpec(base_dir="/var/lib/dotflow").base_dir
        '/var/lib/dotflow'
    """

    base_dir: Annotated[
        str,
        _described(
            "Directory of the local store. A relative path resolves against $DAGSTER_HOME when it is set "
            "(the store sits beside the instance that records its runs), else the working directory.",
            examples=["dotflow_store", "/var/lib/dotflow"],
        ),
    ] = "dotflow"
    signing_key_env: Annotated[
        str | None,
        _described(
            "Name of the environment variable holding the signing key (at least 16 bytes): every stored object "
            "is then signed with HMAC-SHA256 and checked before it is unpickled. Every process needs the "
            "variable. Unset: the store is unsigned.",
            examples=["DOTFLOW_SIGNING_KEY"],
        ),
    ] = None


class DotflowSensorSpec(dg.Resolvable, dg.Model):
    """The ``sensor:`` block of a ``DotflowComponent``: payloads arriving in a directory become runs.

    Builds ``payload_change_sensor([workflow], source=DirectorySource(directory))``: each
    ``<workflow_id>.json`` file that appears or changes in ``directory`` is fingerprinted, and a
    fingerprint new to the workflow is registered as a partition and run as an arrival. Writers
    should write a file under a temporary name (``.orders.json.tmp``) and rename it.

    The sensor feeds this component's workflow only: a file for another workflow_id in the same
    directory is skipped with a warning (once per version of the file), so give each
    component's sensor a directory of its own.

    Example:
        >>> DotflowSensorSpec(directory="inbox/orders").default_status
        'stopped'
    """

    directory: Annotated[
        str,
        _described(
            "Directory where payloads arrive as <workflow_id>.json files (write under a temporary name, then "
            "rename). A relative path resolves against the project root. It must exist when the sensor ticks.",
            examples=["inbox/orders"],
        ),
    ]
    name: Annotated[
        str | None,
        _described("The sensor's name; unset: <asset>_payload_sensor, unique per workflow."),
    ] = None
    minimum_interval_seconds: Annotated[
        int | None,
        _described("Seconds between ticks; unset: payload_change_sensor's default."),
    ] = None
    default_status: Annotated[
        Literal["running", "stopped"],
        _described(
            "Whether the sensor runs as soon as the code location loads (running), or waits to be started in "
            "the UI or with `dagster sensor start` (stopped)."
        ),
    ] = "stopped"


class DotflowScaffoldParams(BaseModel):
    """What ``dg scaffold defs dotflow_dagster.components.DotflowComponent NAME`` accepts.

    Each field is a command-line option (``--module``, ``--attribute``, ``--group-name``).
    """

    module: str | None = Field(default=None, description="Python module that defines the DotflowWorkflow.")
    attribute: str | None = Field(default=None, description="Name of the DotflowWorkflow in that module.")
    group_name: str | None = Field(default=None, description="Dagster asset group of the workflow's asset.")


class DotflowComponentScaffolder(dg.Scaffolder[DotflowScaffoldParams]):
    """Writes ``defs.yaml`` for a ``DotflowComponent``; placeholders where no option was given.

    Example:
        >>> DotflowComponentScaffolder.get_scaffold_params().__name__
        'DotflowScaffoldParams'
    """

    @classmethod
    def get_scaffold_params(cls) -> type[DotflowScaffoldParams]:
        return DotflowScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[DotflowScaffoldParams]) -> None:
        # Python scaffolding (component.py) is dagster's generic one; only YAML needs our fields.
        from dagster.components.component_scaffolding import scaffold_component

        params = request.params
        attributes: dict[str, object] = {
            # Placeholders fail loudly at load time, naming themselves, rather than loading nothing.
            "module": params.module or "my_project.workflows",
            "attribute": params.attribute or "my_workflow",
        }
        if params.group_name:
            attributes["group_name"] = params.group_name
        attributes["store"] = {"base_dir": "dotflow_store"}
        scaffold_component(request, attributes)


@dg.scaffold_with(DotflowComponentScaffolder)
class DotflowComponent(dg.Component, dg.Resolvable, dg.Model):
    """A dotflow workflow as an asset partitioned by input fingerprint, with its submit job.

    Loads the DotflowWorkflow named by `module` and `attribute`, and builds its asset (named
    after the workflow_id, with - and . turned into _), its submit job <asset>_submit (unless
    `submit_job: false`), with a `sensor` block a payload_change_sensor <asset>_payload_sensor
    watching a directory, and a DotflowResource under the resource key `dotflow`. The module is
    imported when the component is loaded, never when dg lists components.

    Every DotflowComponent of one code location must name the same `store`: they share one
    resource object, which is what lets Dagster merge their definitions.

    Example:
        A defs.yaml::

            type: dotflow_dagster.components.DotflowComponent
            attributes:
              module: my_project.workflows
              attribute: orders_workflow
              group_name: ingest
              store:
                base_dir: dotflow_store
              on_input_change: raise
              sensor:
                directory: inbox/orders
    """

    module: Annotated[
        str,
        _described(
            "Python module that defines the DotflowWorkflow. Imported when the component is loaded.",
            examples=["my_project.workflows"],
        ),
    ]
    attribute: Annotated[
        str,
        _described("Name of the DotflowWorkflow in that module.", examples=["orders_workflow"]),
    ]
    group_name: Annotated[
        str | None,
        _described("Dagster asset group of the workflow's asset (Dagster's 'default' group if unset).",
                   examples=["ingest"]),
    ] = None
    store: Annotated[
        DotflowStoreSpec,
        _described(
            "Where checkpoints, ledgers and payloads live: base_dir, a local directory (default 'dotflow'). "
            "Every DotflowComponent of a code location must name the same store."
        ),
    ] = Field(default_factory=DotflowStoreSpec)
    on_input_change: Annotated[
        Literal["reset", "reuse", "raise", "incremental"] | None,
        _described(
            "Overrides the workflow's own policy for a changed input: reset (run every step again), reuse "
            "(resume from the previous input's completed steps), raise (refuse it, showing the diff) or "
            "incremental (re-run only the steps whose declared reads or input changed). "
            "Unset: the workflow's own policy."
        ),
    ] = None
    submit_job: Annotated[
        bool,
        _described(
            "Build the submit job <asset>_submit: it takes a payload in run config, registers its fingerprint "
            "as a partition and runs it."
        ),
    ] = True
    sensor: Annotated[
        DotflowSensorSpec | None,
        _described(
            "Build a sensor that runs payloads arriving as <workflow_id>.json files in a directory "
            "(directory, name, minimum_interval_seconds, default_status). Unset: no sensor."
        ),
    ] = None

    @classmethod
    def get_spec(cls) -> dg.ComponentTypeSpec:
        return dg.ComponentTypeSpec(tags=["dotflow"], produces=["asset", "job", "sensor", "resource"])

    def load_workflow(self) -> "DotflowWorkflow":
        """Import ``module``, read ``attribute`` and apply ``on_input_change``.

        Raises:
            ImportError: the module cannot be imported (whatever it raised), or lacks the attribute.
            TypeError: the attribute is not a ``DotflowWorkflow``.
        """
        from dotflow_dagster.policy import validate_policy
        from dotflow_dagster.workflow import DotflowWorkflow

        where = f"DotflowComponent: module {self.module!r}, attribute {self.attribute!r}"
        try:
            module = importlib.import_module(self.module)
        except Exception as error:
            # Any error of the user's module (missing, syntax, an exception at import) fails this
            # component alone, saying which of the project's components it is.
            raise ImportError(f"{where}: cannot import the module: {type(error).__name__}: {error}") from error
        try:
            workflow = getattr(module, self.attribute)
        except AttributeError:
            available = sorted(name for name, value in vars(module).items() if isinstance(value, DotflowWorkflow))
            hint = f"; its DotflowWorkflows: {', '.join(available)}" if available else "; it defines no DotflowWorkflow"
            raise ImportError(f"{where}: the module has no attribute {self.attribute!r}{hint}") from None
        if not isinstance(workflow, DotflowWorkflow):
            raise TypeError(f"{where}: expected a DotflowWorkflow, found a {type(workflow).__name__}")
        if self.on_input_change is None or self.on_input_change == workflow.on_input_change:
            return workflow
        # A shallow copy: steps, paths and retention are the workflow's own (immutable after
        # __init__); only the policy differs, so the user's object is left as it was.
        overridden = copy.copy(workflow)
        overridden.on_input_change = validate_policy(self.on_input_change, workflow_id=workflow.workflow_id)
        return overridden

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        from dotflow_dagster.assets import dotflow_asset
        from dotflow_dagster.jobs import dotflow_submit_job
        from dotflow_dagster.resource import RESOURCE_KEY

        workflow = self.load_workflow()
        asset_def = dotflow_asset(workflow, group_name=self.group_name)
        return dg.Definitions(
            assets=[asset_def],
            jobs=[dotflow_submit_job(workflow)] if self.submit_job else [],
            sensors=[self._build_sensor(workflow, asset_name=asset_def.key.path[-1], context=context)]
            if self.sensor is not None
            else [],
            resources={
                RESOURCE_KEY: _shared_resource(base_dir=self.store.base_dir, signing_key_env=self.store.signing_key_env)
            },
        )

    def _build_sensor(
        self, workflow: "DotflowWorkflow", *, asset_name: str, context: dg.ComponentLoadContext
    ) -> dg.SensorDefinition:
        from dotflow_dagster.sensor import payload_change_sensor
        from dotflow_dagster.sources import DirectorySource

        spec = self.sensor
        assert spec is not None
        directory = Path(spec.directory).expanduser()
        if not directory.is_absolute():
            # The project root, not the working directory: `dg dev`, `dagster dev -w` and the
            # code server may each start elsewhere.
            directory = Path(context.project_root) / directory
        # Unset options are not passed: the sensor's own defaults stay the only ones.
        options = {}
        if spec.minimum_interval_seconds is not None:
            options["minimum_interval_seconds"] = spec.minimum_interval_seconds
        return payload_change_sensor(
            [workflow],
            source=DirectorySource(directory),
            # The sensor's own default name is one per code location; ours is one per workflow.
            name=spec.name or f"{asset_name}_payload_sensor",
            default_status=dg.DefaultSensorStatus.RUNNING
            if spec.default_status == "running"
            else dg.DefaultSensorStatus.STOPPED,
            **options,
        )


@functools.cache
def _shared_resource(*, base_dir: str, signing_key_env: str | None = None) -> "DotflowResource":
    """One resource object per store configuration, for the whole process.

    Dagster merges the definitions of a project's components and refuses two resources under
    one key unless they are the same object (equal fields are not enough), so every component
    naming this store must hand over this very instance.
    """
    from dotflow_dagster.resource import DotflowResource

    # An EnvVar, so Dagster resolves the key when a run starts and shows only the variable's name.
    signing_key = None if signing_key_env is None else dg.EnvVar(signing_key_env)
    return DotflowResource(base_dir=base_dir, signing_key=signing_key)

