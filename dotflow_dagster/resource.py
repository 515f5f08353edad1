"""``DotflowResource``: where a Dagster deployment keeps checkpoints, ledgers and payloads."""

import os
from pathlib import Path

from dagster import ConfigurableResource
from pydantic import Field

from dotflow_dagster.stores import DotflowStore, LocalStore

__all__ = ["RESOURCE_KEY", "DotflowResource"]

# The resource key the asset and the submit job require.
RESOURCE_KEY = "dotflow"


class DotflowResource(ConfigurableResource):
    """Says where the dotflow store lives; assets and jobs use it under the resource key ``dotflow``.

    A relative ``base_dir`` is resolved against ``$DAGSTER_HOME`` when it is set (so the store
    sits beside the instance that records its runs), else against the working directory.

    At most one run per workflow_id executes at a time. Where ``dagster.yaml`` limits the
    asset's pool (``dotflow/<workflow_id>``) a second run queues before it starts; elsewhere it
    starts, then waits for the workflow's lock for up to ``lock_timeout_seconds``, logging that
    it waits, and fails (retryably) only after that.

    Example:
        >>> from dagster import Definitions
        >>> resources = {"dotflow": DotflowResource(base_dir="/var/lib/dotflow")}
        >>> DotflowResource(base_dir="/var/lib/dotflow").get_store()
        LocalStore('/var/lib/dotflow')
    """

    base_dir: str = Field(
        default="dotflow",
        description="Directory of the LocalStore; relative paths resolve against $DAGSTER_HOME or the working directory.",
    )
    lock_timeout_seconds: float = Field(
        default=3600.0,
        ge=0,
        description=(
            "How long a run waits for another run of the same workflow_id to finish before failing "
            "with RunInProgressError (retryable). Runs normally queue on the asset's pool first; this "
            "covers instances without a pool limit."
        ),
    )

    def resolved_base_dir(self) -> Path:
        path = Path(self.base_dir).expanduser()
        if path.is_absolute():
            return path
        anchor = os.environ.get("DAGSTER_HOME") or os.getcwd()
        return Path(anchor) / path

    def get_store(self) -> DotflowStore:
        """The store checkpoints, ledgers and payloads live in."""
        return LocalStore(self.resolved_base_dir())
