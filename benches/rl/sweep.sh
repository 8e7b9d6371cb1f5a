#!/usr/bin/env bash
# The SAC-SVG(H) horizon sweep on Pendulum-v1 recorded in benches/RESULTS.md ("SAC-SVG(H)"): one
# queue per argument, each run appending its JSON line (evaluations with the interval
# diagnostics) to benches/rl/results.jsonl.
#
# Usage: benches/rl/sweep.sh short | long | diag [KEEL]
#   KEEL defaults to target/release/keel (build it with cargo build --release -p keel-cli).
# Queues run single-threaded (RAYON_NUM_THREADS=1) so that two can share a 2-core machine; a
# killed run continues from its checkpoint when the queue is started again.
# Settings: Keel's small-scale defaults (keel rl train) reduced to batch 256 and 64 units.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
queue=${1:?queue: short, long or diag}
keel=${2:-target/release/keel}
out=benches/rl/results.jsonl
ck=${RL_CHECKPOINTS:-/tmp/keel-rl-checkpoints}
mkdir -p "$ck"
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1}
run() { # horizon seed steps
    local h=$1 s=$2 n=$3
    "$keel" rl train --env pendulum --horizon "$h" --seed "$s" --steps "$n" --eval-every 1000 \
        --batch 256 --hidden 64 --json --quiet \
        --checkpoint "$ck/pendulum-h$h-s$s-n$n.ckpt" --checkpoint-every 2000 --resume >> "$out"
}
case "$queue" in
    # SAC and SVG(2) over five seeds, then SVG(3)'s remaining three.
    short) for s in 0 1 2 3 4; do run 0 "$s" 10000; done
           for s in 0 1 2 3 4; do run 2 "$s" 10000; done
           for s in 2 3 4; do run 3 "$s" 10000; done ;;
    # SVG(6): 6k steps (about 20 minutes a run on one core of the 2-core VM).
    long) for s in 1 2 3 4 0; do run 6 "$s" 6000; done ;;
    # SVG(3)'s first two seeds again, with the diagnostics.
    diag) for s in 0 1; do run 3 "$s" 10000; done ;;
    *) echo "sweep.sh: unknown queue $queue" >&2; exit 2 ;;
esac
