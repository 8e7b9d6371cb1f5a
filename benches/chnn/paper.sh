#!/usr/bin/env bash
# The CHNN paper-effect runs recorded in benches/RESULTS.md ("CHNN"): one queue per argument,
# each run appending its JSON line to benches/chnn/results.jsonl.
#
# Usage: benches/chnn/paper.sh pend2-n100 | pend2-n800 | pend3 [KEEL]
#   KEEL defaults to target/release/keel (build it with cargo build --release -p keel).
# Queues run single-threaded (RAYON_NUM_THREADS=1) so that two can share a 2-core machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
queue=${1:?queue: pend2-n100, pend2-n800 or pend3}
keel=${2:-target/release/keel}
out=benches/chnn/results.jsonl
ck=${CHNN_CHECKPOINTS:-/tmp/keel-chnn-checkpoints}
mkdir -p "$ck"
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1}
run() { # links model n_train epochs
    "$keel" chnn train --system chain-pendulum --links "$1" --model "$2" --n-train "$3" \
        --epochs "$4" --seed 0 --json --quiet \
        --checkpoint "$ck/pend$1-$2-n$3-e$4.ckpt" --resume >> "$out"
}
case "$queue" in
    pend2-n100) for m in chnn clnn hnn node; do run 2 "$m" 100 2000; done ;;
    pend2-n800) for m in clnn hnn; do run 2 "$m" 800 2000; done ;;  # chnn, node: earlier runs
    pend3) for m in chnn clnn hnn node; do run 3 "$m" 800 500; done ;;
    *) echo "paper.sh: unknown queue $queue" >&2; exit 2 ;;
esac
