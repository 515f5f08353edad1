"""Every docstring example in the package runs as written (they are the first code users copy)."""

import doctest
import importlib
import pkgutil

import pytest

import dotflow_dagster

# Subpackages too (stores/, sources/): walk_packages imports packages to find their modules.
MODULES = sorted(
    module.name for module in pkgutil.walk_packages(dotflow_dagster.__path__, prefix="dotflow_dagster.")
)


@pytest.mark.parametrize("name", ["dotflow_dagster", *MODULES])
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may create stores relative to the working directory
    results = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert results.failed == 0
