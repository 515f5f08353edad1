"""Where checkpoints, ledgers and payloads live: dotflow's ``Storage`` ABC, done right.

``DotflowStore`` (``stores/base.py``) is the interface and everything derived from a few
byte-level primitives; ``LocalStore`` (``stores/local.py``) is the embedded default;
``S3Store`` (``stores/s3.py``) keeps everything in an S3 bucket, with a leased run lock. Both
sign every object when given a ``signing_key`` (``stores/signing.py``).
"""

from dotflow_dagster.stores.base import DotflowStore, validate_key
from dotflow_dagster.stores.local import LocalStore
from dotflow_dagster.stores.s3 import Lease, LeaseLostError, S3Store
from dotflow_dagster.stores.signing import UntrustedObjectError

__all__ = [
    "DotflowStore",
    "Lease",
    "LeaseLostError",
    "LocalStore",
    "S3Store",
    "UntrustedObjectError",
    "validate_key",
]
