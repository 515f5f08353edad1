"""The demo workflow: monthly order files in, per-customer totals out, loaded into SQLite.

The payload names a CSV file under ``example_project/data/`` and how to filter it::

    {"orders_file": "orders_2026_11.csv", "region": "EU", "min_quantity": 1,
     "warehouse_table": "customer_totals",   # optional: the SQLite table load writes
     "received_at": "...",   # when the queue delivered it: ignored by the fingerprint
     "api_token": "..."}     # redacted everywhere it could be shown

Each step declares the payload keys it reads (``reads=``): it sees only those, and under the
``incremental`` policy a changed payload re-runs only the steps whose keys (or whose input from
the step before) changed. A new ``warehouse_table`` re-runs ``load`` alone.
"""

import csv
import os
import re
import sqlite3
from decimal import Decimal
from pathlib import Path

from dotflow import action

from dotflow_dagster import DotflowWorkflow

DATA_DIR = Path(__file__).resolve().parent / "data"


def warehouse_path() -> Path:
    """The SQLite file ``load`` writes: ``$ORDERS_DEMO_WAREHOUSE``, else beside the Dagster instance."""
    explicit = os.environ.get("ORDERS_DEMO_WAREHOUSE")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("DAGSTER_HOME") or os.getcwd()) / "orders_demo_warehouse.sqlite"


@action
def extract(initial_context):
    payload = initial_context.storage
    name = payload["orders_file"]
    source = DATA_DIR / name
    if Path(name).name != name or not source.is_file():
        raise FileNotFoundError(f"payload key 'orders_file': {name!r} is not a file in {DATA_DIR}")
    with source.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["region"] == payload["region"]]
    return {"source": name, "region": payload["region"], "orders": rows}


@action(retry=2, retry_delay=1)
def transform(initial_context, previous_context):
    minimum = int(initial_context.storage.get("min_quantity", 1))
    totals: dict[str, dict] = {}
    for order in previous_context.storage["orders"]:
        quantity = int(order["quantity"])
        if quantity < minimum:
            continue
        entry = totals.setdefault(order["customer"], {"orders": 0, "quantity": 0, "revenue": Decimal("0")})
        entry["orders"] += 1
        entry["quantity"] += quantity
        entry["revenue"] += quantity * Decimal(order["unit_price"])
    return [
        {"customer": customer, **entry, "revenue": str(entry["revenue"])}
        for customer, entry in sorted(totals.items())
    ]


@action
def load(initial_context, previous_context):
    payload = initial_context.storage
    batch = f"{payload['orders_file']}:{payload['region']}:{payload.get('min_quantity', 1)}"
    table = payload.get("warehouse_table", "customer_totals")
    if not isinstance(table, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", table):
        raise ValueError(f"payload key 'warehouse_table': {table!r} is not a plain SQL table name")
    path = warehouse_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {table} "
            "(batch TEXT, customer TEXT, orders INTEGER, quantity INTEGER, revenue TEXT, PRIMARY KEY (batch, customer))"
        )
        # Idempotent: a re-run of the same batch replaces its rows instead of duplicating them.
        connection.execute(f"DELETE FROM {table} WHERE batch = ?", (batch,))
        connection.executemany(
            f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?)",
            [(batch, r["customer"], r["orders"], r["quantity"], r["revenue"]) for r in previous_context.storage],
        )
    return len(previous_context.storage)


orders_workflow = DotflowWorkflow(
    "orders-demo",
    steps=[extract, transform, load],
    on_input_change="reset",
    ignore_paths=["root['received_at']"],
    redact_paths=["root['api_token']"],
    reads={
        "extract": ["root['orders_file']", "root['region']"],
        "transform": ["root['min_quantity']"],
        "load": ["root['orders_file']", "root['region']", "root['min_quantity']", "root['warehouse_table']"],
    },
    description="Monthly orders: extract a CSV, total per customer, load into SQLite. Partitions are input fingerprints.",
)
