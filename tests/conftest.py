import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import Phase, settings

from dotflow_dagster import LocalStore

# Property tests generate the same examples on every machine (derandomize), so CI checks what
# was checked here and a red run can be replayed; no "explain" phase, whose line tracer made a
# shrinking failure run for minutes on Python 3.11 and outlast the per-test timeout.
settings.register_profile(
    "dotflow",
    derandomize=True,
    database=None,
    deadline=None,
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink),
)
settings.load_profile("dotflow")

ROOT = Path(__file__).resolve().parent.parent


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DOTFLOW_TEST_", "DAGSTER_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


@pytest.fixture
def side_effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], Counter]:
    """Count step executions (in this process and in subprocesses that inherit the variable)."""
    log = tmp_path / "side-effects.log"
    monkeypatch.setenv("DOTFLOW_TEST_LOG", str(log))

    def counts() -> Counter:
        return Counter(line.strip() for line in log.read_text().splitlines()) if log.exists() else Counter()

    return counts


@pytest.fixture
def run_in_process(tmp_path: Path) -> Callable[..., tuple[int, dict]]:
    """Run the test workflow in a fresh Python process, as a queue worker would."""

    def run(payload: dict, *, policy: str = "reset", **env: str) -> tuple[int, dict]:
        completed = subprocess.run(
            [sys.executable, "-m", "tests.support.cli", "--store", str(tmp_path / "store"),
             "--payload", json.dumps(payload), "--policy", policy],
            cwd=ROOT,
            env=subprocess_env(DOTFLOW_TEST_LOG=str(tmp_path / "side-effects.log"), **env),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert completed.stdout.strip(), completed.stderr
        return completed.returncode, json.loads(completed.stdout.strip().splitlines()[-1])

    return run


@pytest.fixture(scope="session")
def story(tmp_path_factory):
    """The example project's CLI story, run once: (DAGSTER_HOME, [CliRun, ...])."""
    from tests.story import run_story

    home = tmp_path_factory.mktemp("dagster_home")
    return home, run_story(home)


@pytest.fixture
def instance():
    """A persistent Dagster test instance (sensor and partition requests apply to it)."""
    from dagster import instance_for_test

    with instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture
def executions_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file test steps log each execution to (``DOTFLOW_TEST_LOG``), one line per execution."""
    log = tmp_path / "executions.log"
    monkeypatch.setenv("DOTFLOW_TEST_LOG", str(log))
    return log
