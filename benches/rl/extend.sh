#!/usr/bin/env bash
# Continues the horizon sweep's 10k-step runs (benches/rl/sweep.sh) to 20k steps from their final
# checkpoints — `--resume` with a larger `--steps`, the same numbers as an uninterrupted 20k-step
# run (the target entropy is constant) — appending each run's JSON line to
# benches/rl/results.jsonl. The 10k checkpoint is copied first and kept.
#
# Usage: benches/rl/extend.sh H [KEEL [SEED…]]   (KEEL defaults to target/release/keel, the
#        seeds to 0 1 2 3 4)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
h=${1:?horizon}
keel=${2:-target/release/keel}
shift $(($# < 2 ? $# : 2))
seeds=${*:-0 1 2 3 4}
out=benches/rl/results.jsonl
ck=${RL_CHECKPOINTS:-/tmp/keel-rl-checkpoints}
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1}
finished() { # horizon seed: the 10k run's line is in the results
    grep -q "\"horizon\":$1,.*\"seed\":$2,\"steps\":10000" "$out" 2>/dev/null
}
for s in $seeds; do
    # Wait for the sweep to finish the 10k run (its checkpoint is written along the way).
    while ! finished "$h" "$s"; do sleep 60; done
    from="$ck/pendulum-h$h-s$s-n10000.ckpt" to="$ck/pendulum-h$h-s$s-n20000.ckpt"
    if [ ! -e "$to" ]; then
        if [ ! -e "$from" ]; then echo "extend.sh: no $from, skipping seed $s" >&2; continue; fi
        cp "$from" "$to"
    fi
    "$keel" rl train --env pendulum --horizon "$h" --seed "$s" --steps 20000 --eval-every 1000 \
        --batch 256 --hidden 64 --json --quiet \
        --checkpoint "$to" --checkpoint-every 2000 --resume >> "$out"
done
