#!/usr/bin/env bash
# Cart-pole swing-up (keel_core::rl::CartPoleSwingUp), the issue's "if the budget allows" part of
# the horizon sweep: SAC and SVG(2), seeds 0 and 1, 20k steps at the pendulum sweep's reduced
# sizes. Each run appends its JSON line to benches/rl/cartpole.jsonl.
#
# Usage: benches/rl/cartpole.sh sac|svg2 [KEEL]   (KEEL defaults to target/release/keel)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
h=${1:?sac or svg2}
keel=${2:-target/release/keel}
out=benches/rl/cartpole.jsonl
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1}
case "$h" in sac) h=0 ;; svg2) h=2 ;; *) echo "cartpole.sh: sac or svg2" >&2; exit 2 ;; esac
for s in 0 1; do
    "$keel" rl train --env cartpole --horizon "$h" --seed "$s" --steps 20000 --eval-every 1000 \
        --batch 256 --hidden 64 --json --quiet >> "$out"
done
