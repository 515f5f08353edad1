"""Run the example project's CLI story once into a fresh DAGSTER_HOME (shared by CLI and UI tests)."""

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT, subprocess_env

PAYLOADS = ROOT / "example_project" / "payloads"
DAGSTER = str(Path(sys.executable).parent / "dagster")


@dataclass
class CliRun:
    payload_file: str
    returncode: int
    output: str


def dagster_env(home: Path) -> dict[str, str]:
    return subprocess_env(DAGSTER_HOME=str(home), ORDERS_DEMO_WAREHOUSE=str(home / "warehouse.sqlite"))


def dagster_job_execute(home: Path, config: Path | str) -> CliRun:
    completed = subprocess.run(
        [DAGSTER, "job", "execute", "-m", "example_project", "-j", "orders_demo_submit", "-c", str(config)],
        cwd=ROOT, env=dagster_env(home), capture_output=True, text=True, timeout=300,
    )
    return CliRun(Path(config).name, completed.returncode, completed.stdout + completed.stderr)


def run_story(home: Path) -> list[CliRun]:
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return [
        dagster_job_execute(home, PAYLOADS / name)
        for name in ("orders_v1.yaml", "orders_v1_again.yaml", "orders_v2.yaml", "orders_v3_raise.yaml")
    ]
