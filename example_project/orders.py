"""The demo workflow: monthly order files in, per-customer totals out, loaded into SQLite.

The payload names a CSV file under ``example_project/data/`` and how to filter it::

    {"orders_file": "orders_2026_11.csv", "region": "EU", "min_quantity": 1,
     "received_at": "...",   # when the queue delivered it: ignored by the fingerprint
     "api_token": "..."}     # redacted everywhere it could be shown
"""

import csv
import os
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
    path = warehouse_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS customer_totals "
            "(batch TEXT, customer TEXT, orders INTEGER, quantity INTEGER, revenue TEXT, PRIMARY KEY (batch, customer))"
        )
        # Idempotent: a re-run of the same batch replaces its rows instead of duplicating them.
        connection.execute("DELETE FROM customer_totals WHERE batch = ?", (batch,))
        connection.executemany(
            "INSERT INTO customer_totals VALUES (?, ?, ?, ?, ?)",
            [(batch, r["customer"], r["orders"], r["quantity"], r["revenue"]) for r in previous_context.storage],
        )
    return len(previous_context.storage)


orders_workflow = DotflowWorkflow(
    "orders-demo",
    steps=[extract, transform, load],
    on_input_change="reset",
    ignore_paths=["root['received_at']"],
    redact_paths=["root['api_token']"],
    description="Monthly orders: extract a CSV, total per customer, load into SQLite. Partitions are input fingerprints.",
)
