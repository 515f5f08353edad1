"""Example project: the ``orders-demo`` dotflow workflow as a Dagster asset and submit job."""

from example_project.definitions import defs

__all__ = ["defs"]
