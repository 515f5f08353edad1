"""dotflow's own storage contract (``dotflow.testing.StorageContract``), run against every store.

Each entry of ``STORES`` becomes one ``unittest.TestCase`` subclass running the whole contract,
TTL tests included. To cover another store (an S3 store, say), add an entry whose factory builds
it on a fresh, empty location, and skip it where its backend is unavailable.
"""

import tempfile
import unittest
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dotflow.testing import StorageContract

from dotflow_dagster.stores import DotflowStore, LocalStore
from tests.moto_server import new_s3_store, unavailable_reason


@dataclass(frozen=True)
class StoreUnderContract:
    """How to build one store for the contract.

    Attributes:
        name: the store's name, used in the test class's name.
        factory: builds the store in an empty scratch directory (a store that lives elsewhere,
            e.g. in a bucket, may use the directory only to pick a unique prefix).
        supports_ttl: whether the store expires keys (the contract skips its TTL tests if not).
        skip_reason: if set, the whole contract is skipped with this reason (backend unavailable).
    """

    name: str
    factory: Callable[[Path], DotflowStore]
    supports_ttl: bool = True
    skip_reason: str | None = None


STORES = (
    StoreUnderContract(name="LocalStore", factory=lambda scratch: LocalStore(scratch / "store")),
    # A fresh bucket of the session's moto server (a real S3 endpoint over HTTP), under a prefix.
    StoreUnderContract(
        name="S3Store", factory=lambda scratch: new_s3_store(prefix="contract/"), skip_reason=unavailable_reason()
    ),
)


def _contract_case(entry: StoreUnderContract) -> type[unittest.TestCase]:
    class Case(StorageContract, unittest.TestCase):
        supports_ttl = entry.supports_ttl

        def make_storage(self) -> DotflowStore:
            scratch = tempfile.TemporaryDirectory(prefix=f"contract-{entry.name}-")
            self.addCleanup(scratch.cleanup)
            return entry.factory(Path(scratch.name))

    name = f"Test{entry.name}StorageContract"
    Case.__name__ = Case.__qualname__ = name
    Case.__doc__ = f"dotflow's StorageContract against {entry.name}."
    if entry.skip_reason:
        Case = unittest.skip(entry.skip_reason)(Case)
    return Case


for _entry in STORES:
    _case = _contract_case(_entry)
    globals()[_case.__name__] = _case
del _entry, _case
