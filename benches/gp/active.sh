#!/usr/bin/env bash
# Active learning as the WISKI paper's qNIPV experiment runs it (`keel gp active`): the
# generated 2-D field's pool of 10,000 points, 10 initial labels, q = 6 per step, WISKI (30×30
# grid) and the exact GP, Matérn-1/2, fixed hyperparameters, seeds 0–2. One JSON line per run is
# appended to benches/gp/active.jsonl, with the seed added.
# Usage: benches/gp/active.sh KEEL ["SEEDS"] [STEPS]
set -euo pipefail
keel=${1:?keel binary}
seeds=${2:-0 1 2}
steps=${3:-200}
here=$(dirname "$0")
out=$here/active.jsonl
for seed in $seeds; do
    for method in wiski exact; do
        line=$("$keel" gp active --steps "$steps" --method "$method" --seed "$seed" --quiet --json)
        echo "{\"seed\":$seed,${line#\{}" >> "$out"
    done
done
