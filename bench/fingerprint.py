"""Benchmark dotflow_dagster.fingerprint against dotflow's fingerprint_of.

Run from the repository root:

    .venv/bin/python bench/fingerprint.py [--repeats N]

Builds a deterministic ~2.5 MB JSON payload and a ~250 KB payload with sets, datetimes and
Decimals, then reports the best of N timings (time.perf_counter) for each contender, with ratios
against the floors measured in the same run: (c) sha256 of the canonical bytes, (f) orjson's
sorted encoding plus sha256. For the large payload it also times the fast path's check stage by
stage and the alternatives that were measured and not used. Timings never fail the run; only a
wrong digest, a stage that disagrees with the module, or an import error exits non-zero.
"""

import argparse
import gc
import hashlib
import marshal
import math
import os
import platform
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import compress, repeat
from operator import is_
from pathlib import Path
from typing import Any

import orjson
from dotflow.core.fingerprint import fingerprint_of

# Runnable from a checkout without an install: the package lives one directory up.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dotflow_dagster.fingerprint import _FAST_OPTIONS, _only_plain_json, fingerprint  # noqa: E402

WORDS = (
    "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike november oscar papa "
    "quebec romeo sierra tango uniform victor whiskey xray yankee zulu express standard gift fragile"
).split()


def json_order(rng: random.Random, index: int) -> dict[str, Any]:
    return {
        "order_id": f"ORD-{index:08d}",
        "customer": {
            "id": rng.randrange(10**6),
            "name": " ".join(rng.choices(WORDS, k=2)).title(),
            "email": f"user{index}@example.com",
            "vip": rng.random() < 0.1,
            "address": {
                "street": f"{rng.randrange(1, 999)} {rng.choice(WORDS).title()} St",
                "city": rng.choice(WORDS).title(),
                "zip": f"{rng.randrange(10**5):05d}",
                "country": rng.choice(["US", "DE", "BR", "FR", "JP"]),
            },
        },
        "items": [
            {
                "sku": f"SKU-{rng.randrange(10**5):05d}",
                "name": " ".join(rng.choices(WORDS, k=3)),
                "qty": rng.randrange(1, 10),
                "unit_price": round(rng.uniform(1, 500), 2),
                "discount": None if rng.random() < 0.7 else round(rng.random(), 3),
                "tags": rng.sample(WORDS, k=rng.randrange(0, 4)),
            }
            for _ in range(rng.randrange(1, 8))
        ],
        "total": round(rng.uniform(10, 5000), 2),
        "paid": rng.random() < 0.8,
        "notes": None if rng.random() < 0.6 else " ".join(rng.choices(WORDS, k=rng.randrange(3, 20))),
        "created_at": f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:00:00Z",
    }


def json_payload(target_bytes: int) -> dict[str, Any]:
    rng = random.Random(20240601)
    orders: list[dict[str, Any]] = []
    payload = {"batch_id": "batch-0001", "received_at": "2024-06-01T10:00:00Z", "orders": orders}
    while len(orjson.dumps(payload)) < target_bytes:
        orders.extend(json_order(rng, len(orders) + n) for n in range(100))
    return payload


def exotic_payload(target_bytes: int) -> dict[str, Any]:
    rng = random.Random(7)
    base = datetime(2024, 6, 1, tzinfo=UTC)
    orders: list[dict[str, Any]] = []
    payload = {"batch_id": "batch-0002", "received_at": base, "orders": orders}
    while len(repr(payload)) < target_bytes:
        for _ in range(50):
            orders.append(
                {
                    "order_id": uuid.UUID(int=rng.getrandbits(128)),
                    "placed_at": base + timedelta(seconds=rng.randrange(10**7)),
                    "tags": set(rng.sample(WORDS, k=rng.randrange(1, 6))),
                    "lines": [
                        {
                            "sku": f"SKU-{rng.randrange(10**5):05d}",
                            "qty": rng.randrange(1, 9),
                            "price": Decimal(rng.randrange(100, 99999)) / 100,
                        }
                        for _ in range(rng.randrange(1, 5))
                    ],
                    "total": Decimal(rng.randrange(1000, 999999)) / 100,
                    "note": None if rng.random() < 0.5 else " ".join(rng.choices(WORDS, k=5)),
                }
            )
    return payload


# Stages of the fast path's check, rebuilt here to time each one alone. They assume a tree (the
# bench payload is one): without the sharing guard a cycle would multiply the levels.
PLAIN_TYPES = frozenset({dict, list, str, int, float, bool, type(None)})


def enumerate_values(payload: Any) -> int:
    """Every value of a tree listed level by level and none tested: the least a pre-check can pay."""
    level, count = [payload], 0
    while level:
        count += len(level)
        level = gc.get_referents(*level)
    return count


def exact_types(payload: Any) -> bool:
    """enumerate_values plus the cheapest test that sees every tuple, UUID and enum member."""
    level = [payload]
    while level:
        if not set(map(type, level)) <= PLAIN_TYPES:
            return False
        level = gc.get_referents(*level)
    return True


def exact_types_and_finite_floats(payload: Any) -> bool:
    level = [payload]
    while level:
        types = list(map(type, level))
        kinds = set(types)
        if not kinds <= PLAIN_TYPES:
            return False
        if float in kinds and not math.isfinite(sum(compress(level, map(is_, types, repeat(float))))):
            return False
        level = gc.get_referents(*level)
    return True


def containers_only(payload: Any) -> int:
    """The dicts and lists of each level picked out without testing the leaves' types."""
    level, containers = [payload], 0
    while level:
        containers += len(list(filter(gc.is_tracked, level)))
        level = gc.get_referents(*level)
    return containers


def marshal_check(payload: Any) -> bool:
    try:
        marshal.dumps(payload, 4)
    except ValueError:
        return False
    return True


def sha256_hex(*chunks: bytes) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def best_ms(function: Callable[[], object], repeats: int) -> float:
    function()  # warm caches (ignore-path parsing, allocator) outside the measurement
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def table(rows: list[tuple[str, float, str]], unit: str = "ms") -> str:
    width = max(len(name) for name, _, _ in rows)
    lines = [f"{'contender':<{width}}  {'best ' + unit:>9}  note", f"{'-' * width}  {'-' * 9}  ----"]
    lines += [f"{name:<{width}}  {value:>9.2f}  {note}".rstrip() for name, value, note in rows]
    return "\n".join(lines)


def exotic_digests_in_child(seed: str) -> tuple[str, str]:
    """(fingerprint_of, fingerprint) of the exotic payload in a fresh process with PYTHONHASHSEED=seed."""
    completed = subprocess.run(
        [sys.executable, __file__, "--exotic-digests"],
        env={**os.environ, "PYTHONHASHSEED": seed},
        capture_output=True,
        text=True,
        check=True,
    )
    dotflow_digest, ours_digest = completed.stdout.split()
    return dotflow_digest, ours_digest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--exotic-digests", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.exotic_digests:
        exotic = exotic_payload(250_000)
        print(fingerprint_of([exotic]), fingerprint(exotic))
        return 0
    repeats = args.repeats

    versions = f"python {platform.python_version()}, orjson {orjson.__version__}"
    print(f"{versions}, {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"best of {repeats} runs each (time.perf_counter)\n")

    payload = json_payload(2_500_000)
    canonical = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    if fingerprint(payload) != sha256_hex(b"J", canonical):
        print("ERROR: fingerprint of the JSON payload is not sha256(b'J' + canonical bytes)", file=sys.stderr)
        return 1
    ignore = ["root['received_at']"]
    # One non-JSON value anywhere sends the whole payload through the Python walk.
    with_tuple = {**payload, "orders": [*payload["orders"], ("one", "tuple")]}
    print(f"1) plain JSON payload: {len(payload['orders'])} orders, {len(canonical) / 1e6:.2f} MB canonical JSON")
    dotflow_ms = best_ms(lambda: fingerprint_of([payload]), repeats)
    ours_ms = best_ms(lambda: fingerprint(payload), repeats)
    floor_ms = best_ms(lambda: sha256_hex(b"J", canonical), repeats)
    ignore_ms = best_ms(lambda: fingerprint(payload, ignore_paths=ignore), repeats)
    slow_ms = best_ms(lambda: fingerprint(with_tuple), repeats)
    orjson_floor_ms = best_ms(lambda: sha256_hex(b"J", orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)), repeats)
    rows = [
        ("(a) dotflow fingerprint_of([payload])", dotflow_ms, "json.dumps(sort_keys=True) + sha256"),
        (
            "(b) fingerprint(payload)",
            ours_ms,
            f"{dotflow_ms / ours_ms:.1f}x faster than (a); {ours_ms / floor_ms:.1f}x (c); {ours_ms / orjson_floor_ms:.1f}x (f)",
        ),
        ("(c) sha256 of canonical bytes only", floor_ms, "floor: hashing alone, encoding already done"),
        ("(d) fingerprint(payload, ignore_paths=[1 path])", ignore_ms, f"{dotflow_ms / ignore_ms:.1f}x faster than (a)"),
        (
            "(e) fingerprint(payload + one tuple)",
            slow_ms,
            f"slow path for the whole payload: {slow_ms / dotflow_ms:.1f}x the time of (a)",
        ),
        ("(f) orjson.dumps(sort keys) + sha256", orjson_floor_ms, "floor: encoding and hashing, nothing checked"),
    ]
    print(table(rows))

    if not (exact_types(payload) and exact_types_and_finite_floats(payload) and _only_plain_json(payload, maybe_nan=True)):
        print("ERROR: a stage of the plain-JSON check refused the plain JSON payload", file=sys.stderr)
        return 1
    print("\n   where (b)'s time goes: the check's stages, each row including the ones above it")
    enumerate_ms = best_ms(lambda: enumerate_values(payload), repeats)
    types_ms = best_ms(lambda: exact_types(payload), repeats)
    floats_ms = best_ms(lambda: exact_types_and_finite_floats(payload), repeats)
    check_ms = best_ms(lambda: _only_plain_json(payload, maybe_nan=True), repeats)
    encode_ms = best_ms(lambda: orjson.dumps(payload, option=_FAST_OPTIONS), repeats)
    bound_ms = types_ms + encode_ms + floor_ms
    rows = [
        ("(g) gc.get_referents level by level", enumerate_ms, "every value listed, none tested: what any pre-check pays"),
        ("(h)   + exact types, one set per level", types_ms, "the cheapest test that sees tuples, UUIDs, enums"),
        ("(i)   + finite floats, one sum per level", floats_ms, "orjson writes NaN and inf as null, like None"),
        ("(j)   + sharing guard = the fast path's check", check_ms, "refcounts: a cycle must not multiply the levels"),
        ("(k) orjson.dumps(sort keys, passthrough)", encode_ms, "encode"),
        ("(c) sha256", floor_ms, "hash"),
        (
            "(h) + (k) + (c), no float or sharing check",
            bound_ms,
            f"lower bound of a per-value check: {dotflow_ms / bound_ms:.1f}x faster than (a), {bound_ms / floor_ms:.1f}x (c)",
        ),
    ]
    print(table(rows))

    print("\n   ideas measured and not used (each would stand in for part of (j)):")
    marshal_ms = best_ms(lambda: marshal_check(payload), repeats)
    containers_ms = best_ms(lambda: containers_only(payload), repeats)
    nulls_ms = best_ms(lambda: canonical.count(b"null"), repeats)
    decode_ms = best_ms(lambda: orjson.loads(canonical) == payload, repeats)
    rows = [
        ("marshal.dumps(payload, 4)", marshal_ms, "exact types at C speed, but tuples, NaN and cycles pass"),
        (
            "containers only: filter(gc.is_tracked) + (g)",
            containers_ms,
            "leaves untested: blind to tuples of atoms, Fragment, NaN",
        ),
        ("canonical.count(b'null')", nulls_ms, "floats via the bytes: every None must still be counted"),
        ("orjson.loads(bytes) == payload", decode_ms, "the obvious check; misses str/int enum members"),
    ]
    print(table(rows))

    exotic = exotic_payload(250_000)
    size = f"{len(exotic['orders'])} orders, {len(repr(exotic)) / 1e3:.0f} KB as repr"
    print(f"\n2) payload with sets, aware datetimes, Decimals, UUIDs: {size}")
    print("   dotflow's json.dumps fails on it, so fingerprint_of hashes repr(), whose set order follows")
    print("   PYTHONHASHSEED; ours takes the slow path. Digests from two fresh processes (seeds 1 and 2):")
    (dotflow_1, ours_1), (dotflow_2, ours_2) = (exotic_digests_in_child(seed) for seed in ("1", "2"))
    dotflow_verdict = "same" if dotflow_1 == dotflow_2 else "DIFFERENT (unstable)"
    print(f"   fingerprint_of: {dotflow_verdict}; fingerprint: {'same' if ours_1 == ours_2 else 'DIFFERENT'}")
    if not ours_1 == ours_2 == fingerprint(exotic):
        print("ERROR: fingerprint of the exotic payload depends on the process", file=sys.stderr)
        return 1
    dotflow_exotic_ms = best_ms(lambda: fingerprint_of([exotic]), repeats)
    ours_exotic_ms = best_ms(lambda: fingerprint(exotic), repeats)
    rows = [
        ("(a) dotflow fingerprint_of([payload])", dotflow_exotic_ms, "json.dumps fails, then repr() + sha256 (unstable)"),
        (
            "(b) fingerprint(payload)",
            ours_exotic_ms,
            f"{ours_exotic_ms / dotflow_exotic_ms:.1f}x the time of (a); Python walk + orjson",
        ),
    ]
    print(table(rows))

    small = {"order": json_order(random.Random(3), 1), "received_at": "2024-06-01T10:00:00Z"}
    small_repeats = repeats * 50
    print(f"\n3) one small message: {len(orjson.dumps(small))} bytes of JSON, best of {small_repeats} runs")
    dotflow_small_us = best_ms(lambda: fingerprint_of([small]), small_repeats) * 1000
    ours_small_us = best_ms(lambda: fingerprint(small), small_repeats) * 1000
    ignore_small_us = best_ms(lambda: fingerprint(small, ignore_paths=ignore), small_repeats) * 1000
    rows = [
        ("(a) dotflow fingerprint_of([payload])", dotflow_small_us, ""),
        ("(b) fingerprint(payload)", ours_small_us, f"{dotflow_small_us / ours_small_us:.1f}x faster than (a)"),
        ("(d) fingerprint(payload, ignore_paths=[1 path])", ignore_small_us, "parsed paths are cached"),
    ]
    print(table(rows, unit="us"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
