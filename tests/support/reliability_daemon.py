"""The real deployment the reliability scenarios run on: PostgreSQL, a generated instance, the daemon.

``instance_yaml`` starts from ``deploy/dagster.yaml`` (pools limited to 1, one run per
``dotflow/workflow_id`` out of the queue, ``run_retries: {enabled: true, max_retries: 2}``,
run monitoring) and shortens its intervals for a test:

- ``run_monitoring`` with ``free_slots_after_run_end_seconds`` (10 s in the template, 1 s here): a run worker killed while its
  step holds the pool ``dotflow/<workflow_id>`` never gives that slot back, and with a pool
  limit of 1 every later run of the workflow, its retry included, would wait for it forever.
  The monitoring daemon frees the slots of finished runs. (A dead worker itself is noticed by
  the code server that launched it: ``DefaultRunLauncher`` runs each run in a process of the
  code server, whose cleanup thread reports a process that exited before its run finished as
  ``RUN_FAILURE``; run monitoring's own worker health check is for launchers that support it.)
- a one-second run queue, so serialized runs follow each other quickly in a test.

``Deployment`` writes that ``dagster.yaml`` and a workspace into a fresh ``$DAGSTER_HOME`` on a
shared PostgreSQL database, runs ``dagster-daemon run -w workspace.yaml`` as a subprocess and
reads the instance back.

Example:
    >>> config = instance_yaml("postgresql://postgres@127.0.0.1:5432/dagster")
    >>> config["run_retries"], config["run_monitoring"]["enabled"]
    ({'enabled': True, 'max_retries': 2}, True)
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tests.conftest import ROOT, subprocess_env

__all__ = ["FINISHED", "Deployment", "Location", "instance_yaml", "run_group", "wait_until"]

FINISHED = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
T = TypeVar("T")


def instance_yaml(postgres_url: str) -> dict[str, Any]:
    """``deploy/dagster.yaml`` on ``postgres_url``, with run monitoring and a fast run queue."""
    config = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    config["storage"] = {"postgres": {"postgres_url": postgres_url.replace("postgresql://", "postgresql+psycopg2://")}}
    config["run_coordinator"]["config"] = {"dequeue_interval_seconds": 1}
    config["run_monitoring"] = {
        "enabled": True,
        "poll_interval_seconds": 1,
        "free_slots_after_run_end_seconds": 1,
    }
    return config


def wait_until(condition: Callable[[], T | None], *, what: str, timeout: float, poll: float = 0.5,
               alive: Callable[[], None] | None = None) -> T:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = condition()
        if found:
            return found
        if alive is not None:
            alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout:.0f} s")
        time.sleep(poll)


class Location:
    """One code location of the workspace: ``attribute`` of ``module``, named ``name``."""

    def __init__(self, *, module: str, attribute: str, name: str) -> None:
        self.module, self.attribute, self.name = module, attribute, name

    def entry(self) -> dict[str, Any]:
        return {
            "python_module": {
                "module_name": self.module,
                "attribute": self.attribute,
                "location_name": self.name,
                "working_directory": str(ROOT),
            }
        }


class Deployment:
    """A ``$DAGSTER_HOME`` on a freshly emptied PostgreSQL database, and the daemon serving it.

    Args:
        root: a directory of the test's own.
        postgres_url: the database (emptied: one deployment at a time per database).
        locations: the workspace's code locations.
        env: extra environment of the daemon, its code servers and run workers.
    """

    def __init__(self, *, root: Path, postgres_url: str, locations: Sequence[Location], env: Mapping[str, str]) -> None:
        import psycopg2

        self.root = root
        self.home = root / "dagster_home"
        self.home.mkdir(parents=True, exist_ok=True)
        with psycopg2.connect(postgres_url) as connection, connection.cursor() as cursor:
            cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        (self.home / "dagster.yaml").write_text(yaml.safe_dump(instance_yaml(postgres_url), sort_keys=False))
        self.workspace = root / "workspace.yaml"
        self.workspace.write_text(yaml.safe_dump({"load_from": [location.entry() for location in locations]}))
        self.log = root / "daemon.log"
        self.env = subprocess_env(
            DAGSTER_HOME=str(self.home),
            # Retries are launched by the event log consumer, every 5 s unless told otherwise.
            DAGSTER_EVENT_LOG_CONSUMER_DAEMON_INTERVAL_SECONDS="1",
            **env,
        )
        self.daemon: subprocess.Popen | None = None
        self.instance: Any = None

    @contextmanager
    def running(self) -> Iterator["Deployment"]:
        """Run ``dagster-daemon run -w workspace.yaml``; stop it, its code servers and run workers after."""
        from dagster import DagsterInstance

        with self.log.open("w") as log_file:
            self.daemon = subprocess.Popen(
                [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(self.workspace)],
                cwd=ROOT,
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as one below
            )
        try:
            with DagsterInstance.from_config(str(self.home)) as self.instance:
                yield self
        finally:
            self.stop()

    def stop(self) -> None:
        if self.daemon is None or self.daemon.poll() is not None:
            return
        group = os.getpgid(self.daemon.pid)
        os.killpg(group, signal.SIGTERM)
        try:
            self.daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        # Code servers and run workers share the daemon's process group (only ours).
        try:
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.daemon.wait(timeout=10)

    def alive(self) -> None:
        """Fail with the daemon's log if it exited."""
        if self.daemon is not None and self.daemon.poll() is not None:
            raise AssertionError(f"dagster-daemon exited with {self.daemon.returncode}:\n{self.log_tail()}")

    def log_tail(self, size: int = 6000) -> str:
        return self.log.read_text()[-size:] if self.log.exists() else ""

    def records(self, **tags: str) -> list:
        """Run records carrying ``tags``, oldest first."""
        from dagster import RunsFilter

        return list(self.instance.get_run_records(RunsFilter(tags=tags), ascending=True))

    def wait_until(self, condition: Callable[[], T | None], *, what: str, timeout: float, poll: float = 0.5) -> T:
        try:
            return wait_until(condition, what=what, timeout=timeout, poll=poll, alive=self.alive)
        except AssertionError as error:
            raise AssertionError(f"{error}\ndaemon log tail:\n{self.log_tail()}") from None

    def ticks(self, sensor_name: str) -> list:
        """The sensor's ticks so far, oldest first (none before its first tick is stored)."""
        from dagster._core.definitions.run_request import InstigatorType

        states = [
            state
            for state in self.instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
            if state.instigator_name == sensor_name
        ]
        ticks = [
            tick
            for state in states
            for tick in self.instance.get_ticks(state.instigator_origin_id, state.selector_id)
        ]
        return sorted(ticks, key=lambda tick: tick.timestamp)

    def tick_after(self, sensor_name: str, moment: float, *, timeout: float = 60) -> Any:
        """Wait for a tick of the sensor that started after ``moment`` (epoch seconds) and ended."""
        from dagster._core.scheduler.instigation import TickStatus

        return self.wait_until(
            lambda: next(
                (
                    tick
                    for tick in self.ticks(sensor_name)
                    if tick.timestamp > moment and tick.status != TickStatus.STARTED
                ),
                None,
            ),
            what=f"no finished tick of sensor {sensor_name} after {moment:.1f}",
            timeout=timeout,
            poll=0.2,
        )

    def engine_messages(self, run_id: str) -> list[str]:
        from dagster import DagsterEventType

        return [
            entry.message or ""
            for entry in self.instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT)
        ]

    def failure_message(self, run_id: str) -> str:
        """What the run's failure events say (the step's and the run's), joined."""
        from dagster import DagsterEventType

        texts = []
        for entry in self.instance.all_logs(run_id, of_type={DagsterEventType.STEP_FAILURE, DagsterEventType.RUN_FAILURE}):
            event = entry.dagster_event
            data = getattr(event, "event_specific_data", None)
            user = getattr(data, "user_failure_data", None)
            texts.append(entry.message or "")
            if user is not None and user.description:
                texts.append(user.description)
            error = getattr(data, "error", None)
            if error is not None:
                texts.append(error.to_string())
        return "\n".join(texts)


def run_group(records: Sequence[Any], root_run_id: str) -> list[Any]:
    """The run ``root_run_id`` and every retry of it among ``records``, oldest first."""
    group = [
        record
        for record in records
        if record.dagster_run.run_id == root_run_id or record.dagster_run.tags.get("dagster/root_run_id") == root_run_id
    ]
    return sorted(group, key=lambda record: record.create_timestamp)
