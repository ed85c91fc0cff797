#!/usr/bin/env python3
"""Writes tests/data/sample.csv: a deterministic ~1.5 MB CSV whose quoted fields contain commas,
doubled quotes ("") and embedded CRLF and LF newlines, with CRLF record ends. Run once; the file is
committed and its record count is in tests/data/README.md."""
import csv
import random
import sys

ROWS = 12_000
rng = random.Random(20261126)
cities = ["Lisbon", "Porto", "São Paulo", "Zürich", "Kraków", "New York, NY", "Washington, D.C."]
words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]


def note(i):
    kind = i % 7
    base = " ".join(rng.choice(words) for _ in range(rng.randint(3, 14)))
    if kind == 0:
        return base + ", with a comma"
    if kind == 1:
        return 'she said ""' + base + '"" twice'.replace('""', '"')
    if kind == 2:
        return base + "\r\nsecond line (CRLF)"
    if kind == 3:
        return base + "\nsecond line (LF)\nthird line"
    if kind == 4:
        return '"quoted at start", then ' + base
    return base


out = sys.argv[1] if len(sys.argv) > 1 else "sample.csv"
with open(out, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    w.writerow(["id", "name", "city", "amount", "ordered_at", "active", "note"])
    for i in range(1, ROWS + 1):
        w.writerow([
            i,
            f"customer {rng.randint(1, 5000)}",
            rng.choice(cities),
            f"{rng.uniform(-500, 25000):.2f}",
            f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z",
            rng.choice(["true", "false"]),
            note(i),
        ])
print(f"{out}: {ROWS} records + header")
