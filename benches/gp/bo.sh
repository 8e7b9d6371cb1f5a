#!/usr/bin/env bash
# Bayesian optimisation as the WISKI paper's experiment runs it (`keel gp bo`): Ackley in 3-D
# with noisy evaluations, q = 3 points per step, UCB, EI and noisy EI, with WISKI (10³ grid) and
# the exact GP as surrogates, fixed hyperparameters, seeds 0–2. One JSON line per run (with its
# per-step history) is appended to benches/gp/bo.jsonl, with the seed added.
# Usage: benches/gp/bo.sh KEEL ["SEEDS"] [STEPS] ["ACQUISITIONS"]
set -euo pipefail
keel=${1:?keel binary}
seeds=${2:-0 1 2}
steps=${3:-300}
acqs=${4:-ucb ei nei}
here=$(dirname "$0")
out=$here/bo.jsonl
for seed in $seeds; do
    for acq in $acqs; do
        for method in wiski exact; do
            line=$("$keel" gp bo --function ackley --dim 3 --steps "$steps" --batch 3 \
                --noise-sd 1.0 --noise 0.1 --acquisition "$acq" --method "$method" \
                --seed "$seed" --quiet --json)
            echo "{\"seed\":$seed,${line#\{}" >> "$out"
        done
    done
done
