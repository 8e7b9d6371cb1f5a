#!/usr/bin/env bash
# The paper's data-efficiency comparison at n_train = 1000 (the reference's numbers:
# experiments/notebooks/synthetic_results_all.csv in mfinzi/equivariant-MLP), at a width and epoch
# budget that fits a 2-core machine: EMLP, MLP and MLP+augmentation on the three synthetic sets.
# Usage: benches/emlp/table.sh [CH] [EPOCHS] [SEEDS] [MODELS]
#        (defaults 128, 300, "0", "emlp mlp mlp-aug")
# Writes one JSON line per run to benches/emlp/results.jsonl (appending) and prints them.
set -euo pipefail
cd "$(dirname "$0")/../.."
ch=${1:-128}
epochs=${2:-300}
seeds=${3:-0}
models=${4:-emlp mlp mlp-aug}
cargo build --release -q -p keel-cli
out=benches/emlp/results.jsonl
for seed in $seeds; do
    for ds in o5-synthetic inertia particle-interaction; do
        for model in $models; do
            line=$(target/release/keel emlp train --dataset "$ds" --model "$model" --n-train 1000 \
                --epochs "$epochs" --ch "$ch" --seed "$seed" --quiet --json)
            echo "{\"ch\":$ch,${line#\{}" | tee -a "$out"
        done
    done
done
