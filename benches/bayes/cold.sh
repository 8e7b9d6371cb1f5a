#!/usr/bin/env bash
# Cold posteriors with and without augmentation (issue 28 §2; Izmailov et al., ICML 2021):
# digits, MLP [64], λ = 5 (σ_prior = 0.447), inputs standardised globally (`--standardize
# global`), T ∈ {1, 0.3, 0.1, 0.03}:
#   - HMC without augmentation: 2 chains × (20 burn-in + 80), ε = 5e-3·√T, τ auto = 0.702·√T
#     (L = 141 at every T: the tempered posterior narrows as √T, and so do ε and τ);
#   - HMC with augmentation (`--augment shift1`: the training set expanded with its 8 one-pixel
#     shifts, 9 × 1617 rows): 1 chain × (10 + 50), ε = 2.5e-3·√T, τ = 0.234·√T (L = 94);
#   - SGLD with and without per-step augmentation (a fresh ±1-pixel shift per example per step):
#     3 chains × 1000 epochs, 100 burn-in, a sample every 10, η = 1e-4·T.
# Each run's JSON is one line of benches/bayes/cold.jsonl (with the run's name and the CPU).
# Usage: benches/bayes/cold.sh [OUT_DIR] (default target/bayes-cold; the sample sets stay there
# for benches/bayes/shift.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-target/bayes-cold}"
mkdir -p "$out"
# KEEL names a built binary (the runs then leave the build directory alone); else this builds one.
if [ -z "${KEEL:-}" ]; then cargo build --release -q -p keel-cli; fi
k="${KEEL:-${CARGO_TARGET_DIR:-target}/release/keel}"
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
jsonl=benches/bayes/cold.jsonl
: > "$jsonl"
c="--data fixtures/data/digits.csv --model mlp:64 --prior-std 0.447 --standardize global --device cpu --quiet --json"
# record NAME ARGS…: runs `keel bayes ARGS…` and appends its JSON, named, to the .jsonl.
record() {
    local name=$1
    shift
    local start=$SECONDS
    local line
    line=$("$k" bayes "$@")
    echo "{\"run\":\"$name\",\"cpu\":\"$cpu\",\"wall_seconds\":$((SECONDS - start)),${line#\{}" >> "$jsonl"
    echo "$name: $((SECONDS - start)) s" >&2
}
for t in 1 0.3 0.1 0.03; do
    eps=$(awk -v t="$t" 'BEGIN { printf "%.4g", 5e-3 * sqrt(t) }')
    record "hmc-T$t" hmc $c --temperature "$t" --step-size "$eps" --chains 2 --burn-in 20 --samples 80 \
        --save-samples "$out/hmc-T$t.safetensors"
    lr=$(awk -v t="$t" 'BEGIN { printf "%.4g", 1e-4 * t }')
    record "sgld-T$t" sgld $c --temperature "$t" --lr "$lr" --epochs 1000 --burn-in 100 --sample-every 10 \
        --chains 3 --save-samples "$out/sgld-T$t.safetensors"
    record "sgld-aug-T$t" sgld $c --temperature "$t" --lr "$lr" --epochs 1000 --burn-in 100 --sample-every 10 \
        --chains 3 --augment shift1 --save-samples "$out/sgld-aug-T$t.safetensors"
done
for t in 1 0.3 0.1 0.03; do
    eps=$(awk -v t="$t" 'BEGIN { printf "%.4g", 2.5e-3 * sqrt(t) }')
    tau=$(awk -v t="$t" 'BEGIN { printf "%.4g", 0.2341 * sqrt(t) }')
    record "hmc-aug-T$t" hmc $c --temperature "$t" --step-size "$eps" --trajectory-length "$tau" \
        --chains 1 --burn-in 10 --samples 50 --augment shift1 --save-samples "$out/hmc-aug-T$t.safetensors"
done
