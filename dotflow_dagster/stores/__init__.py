"""Where checkpoints, ledgers and payloads live: dotflow's ``Storage`` ABC, done right.

``DotflowStore`` (``stores/base.py``) is the interface and everything derived from a few
byte-level primitives; ``LocalStore`` (``stores/local.py``) is the embedded default.
"""

from dotflow_dagster.stores.base import DotflowStore, validate_key
from dotflow_dagster.stores.local import LocalStore

__all__ = ["DotflowStore", "LocalStore", "validate_key"]
