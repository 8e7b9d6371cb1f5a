#!/usr/bin/env bash
# The CHNN paper-effect runs recorded in benches/RESULTS.md ("CHNN"): one queue per argument,
# each run appending its JSON line to benches/chnn/results.jsonl.
#
# Usage: benches/chnn/paper.sh pend2-n100 | pend2-n800-hnn | pend2-n800-clnn | pend3 [KEEL]
#   KEEL defaults to target/release/keel (build it with cargo build --release -p keel-cli).
# Queues run single-threaded (RAYON_NUM_THREADS=1) so that two can share a 2-core machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
queue=${1:?queue: pend2-n100, pend2-n800-hnn, pend2-n800-clnn or pend3}
keel=${2:-target/release/keel}
out=benches/chnn/results.jsonl
ck=${CHNN_CHECKPOINTS:-/tmp/keel-chnn-checkpoints}
mkdir -p "$ck"
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1}
run() { # links model n_train epochs [more flags]
    local links=$1 model=$2 n=$3 epochs=$4
    shift 4
    "$keel" chnn train --system chain-pendulum --links "$links" --model "$model" --n-train "$n" \
        --epochs "$epochs" --seed 0 --json --quiet "$@" \
        --checkpoint "$ck/pend$links-$model-n$n-e$epochs$(printf '%s' "$@" | tr -d ' -').ckpt" \
        --resume >> "$out"
}
case "$queue" in
    pend2-n100) for m in chnn clnn hnn node; do run 2 "$m" 100 2000; done ;;
    pend2-n800-hnn) run 2 hnn 800 2000 ;;  # chnn, node: earlier runs (same command)
    pend2-n800-clnn) run 2 clnn 800 2000 ;;
    # The HNN diverges in its first epoch on the 3-pendulum at lr 3e-3 (loss NaN after the first
    # update); the reference's paper runs used lr 3e-3 or 1e-3, so it gets 1e-3.
    pend3) for m in chnn clnn node; do run 3 "$m" 800 500; done; run 3 hnn 800 500 --lr 1e-3 ;;
    *) echo "paper.sh: unknown queue $queue" >&2; exit 2 ;;
esac
