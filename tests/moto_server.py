"""A real local S3 endpoint over HTTP for the tests: moto's server in a process of its own.

One server serves the whole test session (started on first use, stopped at the end of the
session or of the process); every test gets a fresh bucket. Clients reach it with
``endpoint_url`` (or, in subprocesses, ``AWS_ENDPOINT_URL_S3`` from ``MotoServer.env()``) and
the dummy credentials moto accepts. Nothing leaves the loopback interface.

Use the fixtures (``moto_server``, ``s3_store_factory``) by importing them into a test module::

    from tests.moto_server import moto_server_fixture, s3_store_factory_fixture  # noqa: F401

(``moto_server_fixture`` provides the fixture ``moto_server`` without shadowing warnings in
the tests that take it; importing ``moto_server`` itself works too.) The server serves every
service moto has, SQS included, on its one endpoint.
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def moto_server_command() -> list[str] | None:
    """How to start moto's server here (its console script beside this Python), or ``None``."""
    script = Path(sys.executable).with_name("moto_server")
    if script.exists():
        return [str(script)]
    found = shutil.which("moto_server")
    if found:
        return [found]
    try:
        import moto.server  # noqa: F401
    except ImportError:
        return None
    return [sys.executable, "-m", "moto.server"]


def unavailable_reason() -> str | None:
    """Why S3 tests cannot run here (moto[server] missing), or ``None``."""
    return None if moto_server_command() else "moto[server] is not installed (pip install 'moto[server]')"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:
    # Linux: the server gets SIGTERM if the test process dies, even by kill -9.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class MotoServer:
    """moto's S3 server on a free loopback port, as a separate process."""

    def __init__(self) -> None:
        command = moto_server_command()
        if command is None:
            raise RuntimeError(unavailable_reason())
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [*command, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **CREDENTIALS},
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self._wait_until_up(timeout=30)
        self._clients: dict[str, Any] = {}

    def _wait_until_up(self, *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self.process.returncode} before answering")
            try:
                with urllib.request.urlopen(self.endpoint + "/", timeout=1):
                    return
            except urllib.error.HTTPError:
                return  # it answered
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server did not answer on {self.endpoint} within {timeout} s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def env(self) -> dict[str, str]:
        """Environment for a subprocess whose ``boto3.client("s3")`` must reach this server."""
        return {**CREDENTIALS, "AWS_ENDPOINT_URL_S3": self.endpoint}

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client of this server (``config``: botocore ``Config`` options)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            config=Config(**config) if config else None,
        )

    def resource(self) -> Any:
        """A dagster-aws ``S3Resource`` of this server."""
        from dagster_aws.s3 import S3Resource

        return S3Resource(
            endpoint_url=self.endpoint,
            region_name=CREDENTIALS["AWS_DEFAULT_REGION"],
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def shared_client(self, via: str = "resource") -> Any:
        """One client for many stores (boto3 clients are thread-safe; building one takes ~0.1 s).

        ``via="resource"``: made by a dagster-aws ``S3Resource``'s ``get_client()``, as Dagster
        deployments make theirs; ``via="boto3"``: a plain boto3 client.
        """
        if via not in self._clients:
            self._clients[via] = self.resource().get_client() if via == "resource" else self.client()
        return self._clients[via]

    def new_bucket(self) -> str:
        """Create a fresh bucket (a valid S3 name: lowercase, no underscores) and return its name."""
        name = f"dotflow-test-{uuid.uuid4().hex[:20]}"
        self.shared_client("boto3").create_bucket(Bucket=name)
        return name


_shared: MotoServer | None = None
_shared_lock = threading.Lock()


def shared_server() -> MotoServer:
    """The session's server, started on first use and stopped when the process exits."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.process.poll() is not None:
            _shared = MotoServer()
            atexit.register(_shared.stop)
        return _shared


def new_s3_store(*, prefix: str = "", lease_seconds: float = 60.0, s3: Any = None) -> Any:
    """An ``S3Store`` on a fresh bucket of the shared server.

    ``s3`` defaults to the server's shared client made by an ``S3Resource``; pass an
    ``S3Resource`` or another client to test those.
    """
    from dotflow_dagster.stores import S3Store

    server = shared_server()
    s3 = server.shared_client() if s3 is None else s3
    return S3Store(server.new_bucket(), prefix, s3=s3, lease_seconds=lease_seconds)


def store_spec(store: Any) -> str:
    """How ``tests.support.cli`` names ``store`` on its command line (a directory or ``s3://bucket/prefix``)."""
    from dotflow_dagster.stores import LocalStore

    return str(store.root) if isinstance(store, LocalStore) else store.location


def store_env(store: Any, **extra: str) -> dict[str, str]:
    """Environment a subprocess needs to open ``store`` (the S3 endpoint for an ``S3Store``)."""
    from dotflow_dagster.stores import LocalStore

    env = {} if isinstance(store, LocalStore) else shared_server().env()
    return {**env, **extra}


def raw_object(store: Any, key: str) -> bytes | None:
    """The bytes an ``S3Store`` keeps for ``key``, header included, or ``None``."""
    try:
        return store.client.get_object(Bucket=store.bucket, Key=store.prefix + key)["Body"].read()
    except store.client.exceptions.NoSuchKey:
        return None


@pytest.fixture(scope="session", name="moto_server")
def moto_server_fixture() -> MotoServer:
    """The session's moto server. moto[server] is a test dependency: missing, it fails the test
    (a skip would let the whole cloud path go untested without anyone noticing)."""
    reason = unavailable_reason()
    if reason:
        pytest.fail(reason)
    server = shared_server()
    yield server
    server.stop()


# The same fixture under its own name, for modules that import it as ``moto_server``.
moto_server = moto_server_fixture


@pytest.fixture(name="s3_store_factory")
def s3_store_factory_fixture(moto_server) -> Callable[..., Any]:
    """Build ``S3Store``s on fresh buckets: ``s3_store_factory(prefix="", lease_seconds=60.0, s3=None)``."""

    def build(*, prefix: str = "", lease_seconds: float = 60.0, s3: Any = None) -> Any:
        return new_s3_store(prefix=prefix, lease_seconds=lease_seconds, s3=s3)

    return build
