#!/usr/bin/env python3
"""Markdown table of the criterion medians of `benches/dynamics.rs` (system x integrator x
dtype), read from a criterion output directory (`<target>/criterion`).

    python3 benches/peers/criterion_table.py target/criterion
"""

import json
import os
import sys

SYSTEMS = ["chain-pendulum-1", "chain-pendulum-2", "chain-pendulum-3", "chain-pendulum-5",
           "coupled-pendulum-3", "magnet-pendulum-2", "gyroscope", "rotor"]
WHAT = ["rate", "rk4", "leapfrog", "dopri5"]
DTYPES = ["f64", "f32"]


def median_ns(root, bench_id):
    path = os.path.join(root, bench_id.replace("/", "_"), "new", "estimates.json")
    try:
        with open(path) as fh:
            return json.load(fh)["median"]["point_estimate"]
    except FileNotFoundError:
        return None


def fmt(ns):
    if ns is None:
        return "—"
    return f"{ns / 1000:.2f} µs" if ns >= 1000 else f"{ns:.0f} ns"


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join("target", "criterion")
    cols = [(w, d) for d in DTYPES for w in WHAT]
    print("| system | " + " | ".join(f"{w} {d}" for w, d in cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for s in SYSTEMS:
        cells = [fmt(median_ns(root, f"{w}/{d}/{s}")) for w, d in cols]
        print(f"| {s} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
