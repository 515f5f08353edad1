"""``python -m dotflow_dagster``: tools for a store, from the command line.

``verify`` checks every ledger, payload and checkpoint of a store (see ``verify.py``)::

    python -m dotflow_dagster verify --store /var/lib/dotflow
    python -m dotflow_dagster verify --store s3://my-bucket/dotflow/ --workflow-id orders
    DOTFLOW_SIGNING_KEY=... python -m dotflow_dagster verify --store s3://my-bucket/dotflow/

It prints one line per problem (naming the workflow and the key) and a summary, and exits 0
when the store is clean, 1 when something is wrong, 2 when it cannot verify (a bad
``--store`` or ``--workflow-id``, a missing signing key variable, a store it cannot list).

The signing key is read from the environment variable ``--signing-key-env`` names (default:
``DOTFLOW_SIGNING_KEY``, when it is set), never from the command line, where ``ps`` and shell
histories would show it. S3 is reached as boto3 is configured by the environment
(``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3``, ``AWS_PROFILE``, ``AWS_*`` credentials).
"""

import argparse
import os
import sys

from dotflow_dagster.errors import StoreError

__all__ = ["main"]

DEFAULT_SIGNING_KEY_ENV = "DOTFLOW_SIGNING_KEY"

EXIT_CLEAN = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dotflow_dagster", description="Tools for a dotflow_dagster store.")
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser(
        "verify",
        help="check every ledger, payload and checkpoint of a store",
        description=(
            "Check every ledger, payload, checkpoint and decided marker of a store, and leftover temporary "
            "files. Exit 0: clean; 1: problems found; 2: cannot verify (bad arguments, store unreachable)."
        ),
    )
    verify.add_argument("--store", required=True, help="a directory, or s3://bucket/prefix")
    verify.add_argument("--workflow-id", help="check only this workflow")
    verify.add_argument(
        "--signing-key-env",
        metavar="VAR",
        help=(
            f"environment variable holding the store's signing key (default: {DEFAULT_SIGNING_KEY_ENV}, if set); "
            "with a key every signature is checked before anything is unpickled"
        ),
    )
    return parser


def _signing_key(variable: str | None) -> str | None:
    if variable is None:
        return os.environ.get(DEFAULT_SIGNING_KEY_ENV) or None
    value = os.environ.get(variable)
    if not value:
        raise ValueError(f"--signing-key-env {variable}: the environment variable {variable} is not set")
    return value


def _verify(args: argparse.Namespace) -> int:
    from dotflow_dagster.verify import _check_workflow_id, open_store, verify_store

    try:
        _check_workflow_id(args.workflow_id)
        store = open_store(args.store, signing_key=_signing_key(args.signing_key_env))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if store.signed:
        print(f"verifying {store.location}: signed store, every signature is checked before anything is unpickled")
    else:
        print(
            f"verifying {store.location}: no signing key, so unsigned objects are unpickled to check them "
            "(unpickling runs code named in the data: verify only a store you trust, or give the signing key)"
        )
    try:
        report = verify_store(store, workflow_id=args.workflow_id)
    except StoreError as error:
        print(f"error: cannot verify {store.location}: {error}", file=sys.stderr)
        return EXIT_USAGE
    for problem in report.problems:
        print(f"PROBLEM {problem}")
    print(report.summary())
    return EXIT_CLEAN if report.ok else EXIT_PROBLEMS


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "verify":
        return _verify(args)
    return EXIT_USAGE  # argparse refuses unknown commands before this


if __name__ == "__main__":
    sys.exit(main())
