#!/usr/bin/env bash
# The EMLP paper's double spring pendulum experiment (its table of rollout errors) at a reduced
# CPU budget: every model and group, seeds as given, appended as JSON lines to
# benches/emlp/dynamics.jsonl. Usage: benches/emlp/dynamics.sh KEEL CH EPOCHS "SEEDS" "RUNS"
# where RUNS are model:group pairs, e.g. "emlph:O(2) emlp-ode:O(2) mlph:- mlp-ode:-".
set -euo pipefail
keel=${1:?keel binary}
ch=${2:-32}
epochs=${3:-400}
seeds=${4:-"0 1 2"}
runs=${5:-"emlph:O(2) emlp-ode:O(2) mlph:- mlp-ode:-"}
out=$(dirname "$0")/dynamics.jsonl
for seed in $seeds; do
    for run in $runs; do
        model=${run%%:*}
        group=${run#*:}
        args=(emlp train --dataset double-spring-pendulum --model "$model" --ch "$ch"
              --epochs "$epochs" --seed "$seed" --json --quiet --device cpu)
        if [ "$group" != "-" ]; then args+=(--group "$group"); fi
        "$keel" "${args[@]}" >> "$out"
    done
done
