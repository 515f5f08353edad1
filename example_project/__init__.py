"""Example project: the ``orders-demo`` dotflow workflow as a Dagster asset, submit job and sensor.

``defs`` loads on first use, so the queue worker and the Lambda handler, which import only the
workflow, never pay for importing Dagster. Dagster finds ``defs`` through ``dir()``/``getattr``.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dagster import Definitions

    defs: Definitions

__all__ = ["defs"]


def __getattr__(name: str) -> Any:
    if name == "defs":
        from example_project.definitions import defs

        globals()["defs"] = defs
        return defs
    raise AttributeError(f"module 'example_project' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "defs"})
