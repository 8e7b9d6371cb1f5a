#!/usr/bin/env bash
# Online regression as the WISKI paper runs it (`keel gp online`): every method on the shipped
# diabetes rows and on the generated 10-input projection stream, through a learned 2-feature
# stem, seeds 0–2. One JSON line per run is appended to benches/gp/online.jsonl (with the data
# set's name added).
# Usage: benches/gp/online.sh KEEL ["SEEDS"] ["METHODS"] [SYNTHETIC_ROWS]
set -euo pipefail
keel=${1:?keel binary}
seeds=${2:-0 1 2}
methods=${3:-wiski exact osgpr osvgp}
rows=${4:-5000}
here=$(dirname "$0")
out=$here/online.jsonl
for seed in $seeds; do
    for method in $methods; do
        line=$("$keel" gp online --data "$here/../../fixtures/data/diabetes.csv" --target target \
            --method "$method" --stem 2 --seed "$seed" --quiet --json)
        echo "{\"data\":\"diabetes\",${line#\{}" >> "$out"
        line=$("$keel" gp online --synthetic "$rows" --dims 10 --method "$method" --stem 2 \
            --seed "$seed" --quiet --json)
        echo "{\"data\":\"projection-$rows\",${line#\{}" >> "$out"
    done
done
