#!/usr/bin/env bash
# Longer augmented HMC chains than benches/bayes/cold.sh's (whose single chains of 50 samples
# moved by as much between seeds as between temperatures, benches/bayes/cold-seeds.sh): the
# expanded digits (9 × 1617 rows), T = 1 and 0.03, 1 chain × (10 burn-in + 100), seeds 200 and
# 300, ε = 2.5e-3·√T, τ = 0.234·√T (L = 94); the two temperatures side by side (one per core).
# One JSON line per run in benches/bayes/cold-long.jsonl. Usage: benches/bayes/cold-long.sh [OUT_DIR]
# (default target/bayes-cold).
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-target/bayes-cold}"
mkdir -p "$out"
# KEEL names a built binary (the runs then leave the build directory alone); else this builds one.
if [ -z "${KEEL:-}" ]; then cargo build --release -q -p keel-cli; fi
k="${KEEL:-${CARGO_TARGET_DIR:-target}/release/keel}"
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
jsonl=benches/bayes/cold-long.jsonl
: > "$jsonl"
c="--data fixtures/data/digits.csv --model mlp:64 --prior-std 0.447 --standardize global --device cpu --quiet --json"
run() {
    local t=$1 seed=$2 start=$SECONDS line
    local eps tau
    eps=$(awk -v t="$t" 'BEGIN { printf "%.4g", 2.5e-3 * sqrt(t) }')
    tau=$(awk -v t="$t" 'BEGIN { printf "%.4g", 0.2341 * sqrt(t) }')
    line=$("$k" bayes hmc $c --seed "$seed" --temperature "$t" --step-size "$eps" --trajectory-length "$tau" \
        --chains 1 --burn-in 10 --samples 100 --augment shift1 \
        --save-samples "$out/hmc-aug-T$t-long-seed$seed.safetensors")
    echo "{\"run\":\"hmc-aug-T$t-long-seed$seed\",\"cpu\":\"$cpu\",\"wall_seconds\":$((SECONDS - start)),${line#\{}" >> "$jsonl"
}
for seed in 200 300; do
    run 1 "$seed" &
    run 0.03 "$seed" &
    wait
done
