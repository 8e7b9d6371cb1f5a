#!/usr/bin/env bash
# The data-efficiency curve of issue 27 §1 at a reduced budget (benches/RESULTS.md, "CHNN: data
# efficiency on the 2-pendulum and the gyroscope"): rollout error against n_train for CHNN, CLNN
# and the baselines in generalised coordinates, three seeds, 3 × 128 tanh networks, 300 epochs
# (the paper: 3 × 256, 2000 epochs). One JSON line per run, with the budget, appended to
# benches/chnn/efficiency.jsonl. A run that diverges at the paper's lr 3e-3 is run again at 1e-3
# (the reference's paper runs used either), and the line says which.
#
# The queue `others` runs the same budget once (n_train 100, seed 0) on the rotor, the
# 3-coupled pendulum and the magnet pendulum.
#
# Usage: benches/chnn/efficiency.sh gyroscope|pendulum2|others [KEEL]
#   KEEL defaults to target/release/keel (cargo build --release -p keel-cli).
# Single-threaded (RAYON_NUM_THREADS=1) so that the two queues can share a 2-core machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
queue=${1:?queue: gyroscope, pendulum2 or others}
keel=${2:-target/release/keel}
out=benches/chnn/efficiency.jsonl
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1}
hidden=128 epochs=300
run() { # n seed system...
    local n=$1 seed=$2
    shift 2
    for model in chnn clnn hnn delan node; do
        for lr in 3e-3 1e-3; do
            if line=$("$keel" chnn train "$@" --model "$model" --n-train "$n" --epochs "$epochs" \
                --hidden "$hidden" --lr "$lr" --seed "$seed" --json --quiet); then
                printf '%s\n' "$line" | sed "s/^{/{\"hidden\":$hidden,\"lr\":$lr,/" >> "$out"
                break
            fi
        done
    done
}
case "$queue" in
    gyroscope | pendulum2)
        system=(--system gyroscope)
        [ "$queue" = pendulum2 ] && system=(--system chain-pendulum --links 2)
        for n in 10 100 400; do
            for seed in 0 1 2; do run "$n" "$seed" "${system[@]}"; done
        done
        ;;
    others)
        run 100 0 --system rotor
        run 100 0 --system coupled-pendulum --links 3
        run 100 0 --system magnet-pendulum
        ;;
    *) echo "unknown queue $queue" >&2; exit 2 ;;
esac
