#!/usr/bin/env bash
# The EMLP paper's data-efficiency sweep (its Figure 5; the reference's
# experiments/data_efficiency.py): test MSE against n_train ∈ {30, …, 30000} with the reference's
# epochs min(900000 / n_train, 1000), Adam 3e-3, batch 500, validation 1000, test 5000 rows — on
# the CPU at a reduced width CH (the reference's is 384). One JSON line per run is appended to
# benches/emlp/efficiency.jsonl.
# Usage: benches/emlp/efficiency.sh KEEL DATASET CH "SEEDS" "MODELS" ["SIZES"]
set -euo pipefail
keel=${1:?keel binary}
ds=${2:-o5-synthetic}
ch=${3:-64}
seeds=${4:-0}
models=${5:-emlp mlp mlp-aug}
sizes=${6:-30 100 300 1000 3000 10000 30000}
out=$(dirname "$0")/efficiency.jsonl
for seed in $seeds; do
    for model in $models; do
        for n in $sizes; do
            line=$("$keel" emlp train --dataset "$ds" --model "$model" --n-train "$n" --ch "$ch" \
                --seed "$seed" --quiet --json --device cpu)
            echo "{\"ch\":$ch,${line#\{}" >> "$out"
        done
    done
done
