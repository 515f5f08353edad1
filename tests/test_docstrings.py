"""Every docstring example in the package runs as written (they are the first code users copy)."""

import doctest
import importlib
import pkgutil

import pytest

import dotflow_dagster

MODULES = sorted(module.name for module in pkgutil.iter_modules(dotflow_dagster.__path__))


@pytest.mark.parametrize("name", ["__init__", *MODULES])
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may create stores relative to the working directory
    module = dotflow_dagster if name == "__init__" else importlib.import_module(f"dotflow_dagster.{name}")
    results = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert results.failed == 0
