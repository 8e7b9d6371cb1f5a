#!/usr/bin/env bash
# Probes of the late degradation seen in the horizon sweep (benches/RESULTS.md, "SAC-SVG(H)"):
# SAC (H = 0, the cheap case, which degrades too) run longer, and at Keel's default sizes (batch
# 1024, 128 units). Each run appends its JSON line to benches/rl/probe.jsonl.
#
# Usage: benches/rl/probe.sh [KEEL]   (KEEL defaults to target/release/keel)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
keel=${1:-target/release/keel}
out=benches/rl/probe.jsonl
export RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-1}
run() { # seed steps batch hidden
    "$keel" rl train --env pendulum --horizon 0 --seed "$1" --steps "$2" --eval-every 1000 \
        --batch "$3" --hidden "$4" --json --quiet >> "$out"
}
for s in 0 2; do run "$s" 20000 256 64; done
for s in 0 2; do run "$s" 10000 1024 128; done
