#!/usr/bin/env bash
# A replicate of benches/bayes/cold.sh's HMC runs at the two ends of the temperature range
# (T = 1 and 0.03), with and without augmentation, from other seeds (chains seeded 100, 101):
# how far the first runs' NLL and ECE move from seed to seed. Same settings as cold.sh; one JSON
# line per run in benches/bayes/cold-seeds.jsonl. Usage: benches/bayes/cold-seeds.sh [OUT_DIR]
# (default target/bayes-cold).
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-target/bayes-cold}"
mkdir -p "$out"
# KEEL names a built binary (the runs then leave the build directory alone); else this builds one.
if [ -z "${KEEL:-}" ]; then cargo build --release -q -p keel-cli; fi
k="${KEEL:-${CARGO_TARGET_DIR:-target}/release/keel}"
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
jsonl=benches/bayes/cold-seeds.jsonl
: > "$jsonl"
c="--data fixtures/data/digits.csv --model mlp:64 --prior-std 0.447 --standardize global --device cpu --quiet --json --seed 100"
record() {
    local name=$1
    shift
    local start=$SECONDS
    local line
    line=$("$k" bayes "$@")
    echo "{\"run\":\"$name\",\"cpu\":\"$cpu\",\"wall_seconds\":$((SECONDS - start)),${line#\{}" >> "$jsonl"
    echo "$name: $((SECONDS - start)) s" >&2
}
for t in 1 0.03; do
    eps=$(awk -v t="$t" 'BEGIN { printf "%.4g", 5e-3 * sqrt(t) }')
    record "hmc-T$t-seed100" hmc $c --temperature "$t" --step-size "$eps" --chains 2 --burn-in 20 --samples 80 \
        --save-samples "$out/hmc-T$t-seed100.safetensors"
    eps=$(awk -v t="$t" 'BEGIN { printf "%.4g", 2.5e-3 * sqrt(t) }')
    tau=$(awk -v t="$t" 'BEGIN { printf "%.4g", 0.2341 * sqrt(t) }')
    record "hmc-aug-T$t-seed100" hmc $c --temperature "$t" --step-size "$eps" --trajectory-length "$tau" \
        --chains 1 --burn-in 10 --samples 50 --augment shift1 --save-samples "$out/hmc-aug-T$t-seed100.safetensors"
done
