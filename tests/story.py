"""Run the example project's CLI story once into a fresh DAGSTER_HOME (shared by CLI and UI tests)."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def dagster_process(home: Path, *args: str) -> Iterator[subprocess.Popen]:
    """Run a long-lived dagster command (webserver, daemon) against ``home``; stop it afterwards."""
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / args[0]), *args[1:]],
        cwd=ROOT, env=dagster_env(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, so its code servers stop with it
    )
    try:
        yield process
    finally:
        stop_process_group(process)


def stop_process_group(process: subprocess.Popen) -> None:
    """Stop a process started with ``start_new_session=True`` and everything it started.

    The daemon and the webserver start code servers (``dagster api grpc``) of their own; stopping
    only the parent left them running long after the test.
    """
    group = process.pid
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    process.wait(timeout=10)


@contextmanager
def webserver(home: Path) -> Iterator[str]:
    """A real dagster-webserver on a free loopback port, serving workspace.yaml; yields its URL."""
    port = free_port()
    with dagster_process(home, "dagster-webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)) as process:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stderr.read()
            try:
                if requests.get(f"{url}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "dagster-webserver did not come up"
            time.sleep(0.5)
        yield url


def graphql(url: str, query: str, **variables: object) -> dict:
    response = requests.post(f"{url}/graphql", json={"query": query, "variables": variables}, timeout=60)
    response.raise_for_status()
    body = response.json()
    assert "errors" not in body, body
    return body["data"]
