"""A throwaway PostgreSQL 15 server on loopback, from the machine's Debian packages.

PostgreSQL refuses to run as root, so when the tests run as root (CI does) the server runs as
the ``postgres`` user, in a directory that user owns.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _bin(name: str) -> str:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [shutil.which(name) or ""]
    path = candidates[-1]
    if not path or not os.path.exists(path):
        raise RuntimeError(f"PostgreSQL's {name} is not installed: apt-get install postgresql (see .ci/run)")
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_postgres() -> Iterator[str]:
    """Start a server, create database ``dagster``, yield its URL, stop and remove it afterwards."""
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    base = Path(tempfile.mkdtemp(prefix="dotflow-pg-"))
    data, sockets, log = base / "data", base / "sockets", base / "server.log"
    sockets.mkdir()
    if as_root:
        user = pwd.getpwnam("postgres")
        for path in (base, sockets):
            os.chown(path, user.pw_uid, user.pw_gid)
    port = _free_port()
    run = lambda *args: subprocess.run([*prefix, *args], check=True, capture_output=True, text=True, timeout=120)  # noqa: E731
    try:
        run(_bin("initdb"), "-D", str(data), "-U", "postgres", "-A", "trust", "--no-sync")
        run(
            _bin("pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "start",
            "-o", f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off",
        )
        run(_bin("createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "dagster")
        yield f"postgresql://postgres@127.0.0.1:{port}/dagster"
    finally:
        subprocess.run([*prefix, _bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def fresh_postgres_home(home: Path, url: str) -> Path:
    """A DAGSTER_HOME on ``url`` with empty tables and pools limited to 1 (the database is shared)."""
    import psycopg2

    home.mkdir(parents=True, exist_ok=True)
    with psycopg2.connect(url) as connection, connection.cursor() as cursor:
        cursor.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
    # SQLAlchemy 2.1 defaults postgresql:// to psycopg 3; dagster-postgres ships psycopg2.
    (home / "dagster.yaml").write_text(
        f"""\
storage:
  postgres:
    postgres_url: "{url.replace("postgresql://", "postgresql+psycopg2://")}"
concurrency:
  pools:
    default_limit: 1
telemetry:
  enabled: false
"""
    )
    return home
