"""``DotflowResource``: where a Dagster deployment keeps checkpoints, ledgers and payloads."""

import os
from pathlib import Path

from dagster import ConfigurableResource
from dagster_aws.s3 import S3Resource
from pydantic import Field

from dotflow_dagster.stores import DotflowStore, LocalStore, S3Store

__all__ = ["RESOURCE_KEY", "DotflowResource"]

# The resource key the asset and the submit job require.
RESOURCE_KEY = "dotflow"


class DotflowResource(ConfigurableResource):
    """Says where the dotflow store lives; assets and jobs use it under the resource key ``dotflow``.

    Two stores:

    - **local** (the embedded default): a ``LocalStore`` in ``base_dir``. A relative ``base_dir``
      is resolved against ``$DAGSTER_HOME`` when it is set (so the store sits beside the
      instance that records its runs), else against the working directory.
    - **S3** (when the webserver, the daemon and the run workers are on different hosts): set
      ``s3_bucket`` (and ``s3_prefix``); the client comes from the nested dagster-aws
      ``S3Resource`` in ``s3`` (``endpoint_url``, region, credentials), and the run lock is a
      lease of ``lease_seconds`` renewed while the run goes on. ``base_dir`` is then unused.

    **Signing** (recommended wherever others can write to the store): set ``signing_key``, from
    the environment with ``dagster.EnvVar("DOTFLOW_SIGNING_KEY")``. Every object the store
    writes is then signed with HMAC-SHA256, and an object that was changed, copied under another
    key, or written without the key is refused before it is unpickled. The key is a secret:
    Dagster shows resource configuration in its UI, and an ``EnvVar`` is shown by its name
    only, so never pass the key as a literal string. It never appears in this resource's
    ``repr()``, in messages or in metadata. Every process (webserver, daemon, run workers,
    queue workers) needs the same key.

    At most one run per workflow_id executes at a time. Where ``dagster.yaml`` limits the
    asset's pool (``dotflow/<workflow_id>``) a second run queues before it starts; elsewhere it
    starts, then waits for the workflow's lock for up to ``lock_timeout_seconds``, logging that
    it waits, and fails (retryably) only after that.

    Example:
        >>> from dagster import Definitions
        >>> resources = {"dotflow": DotflowResource(base_dir="/var/lib/dotflow")}
        >>> DotflowResource(base_dir="/var/lib/dotflow").get_store()
        LocalStore('/var/lib/dotflow')

        Signed, with the key from the environment (resolved when a run starts):

        >>> from dagster import EnvVar
        >>> signed = DotflowResource(base_dir="/var/lib/dotflow", signing_key=EnvVar("DOTFLOW_SIGNING_KEY"))
    """

    base_dir: str = Field(
        default="dotflow",
        description="Directory of the LocalStore; relative paths resolve against $DAGSTER_HOME or the working directory.",
    )
    s3_bucket: str | None = Field(
        default=None,
        description="Keep the store in this S3 bucket instead of base_dir (an S3Store).",
    )
    s3_prefix: str = Field(
        default="",
        description="Key prefix inside s3_bucket: empty, or ending with '/' (e.g. 'dotflow/').",
    )
    s3: S3Resource | None = Field(
        default=None,
        description=(
            "The dagster-aws S3Resource that gives the S3 client (endpoint_url, region, credentials); "
            "unset: boto3's default configuration."
        ),
    )
    lease_seconds: float = Field(
        default=60.0,
        ge=1,
        description="S3 only: how long a crashed run can block its workflow before its lease expires.",
    )
    signing_key: str | None = Field(
        default=None,
        repr=False,
        description=(
            "SECRET. Sign every stored object with this key (HMAC-SHA256, at least 16 bytes) and refuse "
            "unsigned or altered ones before unpickling. Set it with EnvVar('DOTFLOW_SIGNING_KEY'), never "
            "as a literal: resource config is shown in the Dagster UI. Unset: the store is unsigned."
        ),
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
        """The store checkpoints, ledgers and payloads live in: S3 if ``s3_bucket`` is set, else local.

        Raises:
            ValueError: ``signing_key`` is shorter than 16 bytes (the message does not show it).
        """
        if self.s3_bucket:
            return S3Store(
                self.s3_bucket,
                self.s3_prefix,
                s3=self.s3 or S3Resource(),
                lease_seconds=self.lease_seconds,
                signing_key=self.signing_key,
            )
        return LocalStore(self.resolved_base_dir(), signing_key=self.signing_key)
