#!/usr/bin/env bash
# A small CNN's posterior on the digits by HMC beside its approximations (issue 28 §2; Izmailov
# et al., ICML 2021 — the MLP study of benches/bayes/study.sh with the network the paper's
# image experiments use in miniature): conv 3×3 → 8 channels with filter response normalisation
# and swish, 2×2 max pool, conv → 16 the same, max pool, dense → 10 (`cnn:c8frn,m2,c16frn,m2`,
# 1970 parameters; no batch norm, so every sample is a fixed function), λ = 5 (σ = 0.447),
# `--standardize global`. HMC at T = 1 (2 chains) and T = 0.1, a deep ensemble, SGD, SGLD,
# SGHMC and mean-field VI, then `keel bayes compare` against HMC and `keel bayes shift` of the
# T = 1 sets under the four corruptions. One JSON line per run in benches/bayes/cnn.jsonl, the
# comparison in benches/bayes/cnn-compare.md, the shift results in benches/bayes/cnn-shift.jsonl
# and benches/bayes/cnn-shift-<corruption>.png.
# Usage: benches/bayes/cnn.sh [hmc|cold|baselines|report|long|all] [OUT_DIR] (default all,
# target/bayes-cnn); `hmc`, `cold` and `baselines` are independent (run them side by side on
# two cores), `report` needs all three; `long` (not in `all`) draws two more T = 1 chains.
set -euo pipefail
cd "$(dirname "$0")/../.."
which="${1:-all}"
out="${2:-target/bayes-cnn}"
mkdir -p "$out"
# KEEL names a built binary (the runs then leave the build directory alone); else this builds one.
if [ -z "${KEEL:-}" ]; then cargo build --release -q -p keel-cli; fi
k="${KEEL:-${CARGO_TARGET_DIR:-target}/release/keel}"
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
data=fixtures/data/digits.csv
c="--data $data --model cnn:c8frn,m2,c16frn,m2 --prior-std 0.447 --standardize global --device cpu --quiet --json"

# One run: NAME, then the command's arguments; its JSON (with the CPU) to OUT_DIR/NAME.json.
run() {
    local name="$1"
    shift
    local line
    line=$("$k" bayes "$@" --save-samples "$out/$name.safetensors")
    echo "{\"run\":\"$name\",\"cpu\":\"$cpu\",${line#\{}" > "$out/$name.json"
}

hmc() {
    # τ = (π/2)σ√T = 0.702 (L = 141). ε = 1e-2 (L = 71) accepted 0.24 and 0.14 of the
    # proposals of two chains × 70 (benches/RESULTS.md); 5e-3 is the MLP study's.
    run hmc hmc $c --step-size 5e-3 --chains 2 --burn-in 10 --samples 50
}

cold() {
    # The tempered posterior narrows as √T: ε and τ scaled by √0.1, so L stays 141.
    run hmc-T0.1 hmc $c --temperature 0.1 --step-size 1.58e-3 --chains 1 --burn-in 10 --samples 50 --seed 10
}

long() {
    # Two more chains from other seeds, 80 samples each: the T = 1 posterior explored further.
    run hmc-long hmc $c --step-size 5e-3 --chains 2 --burn-in 10 --samples 80 --seed 20
}

baselines() {
    run sgd sgd $c --lr 3e-4 --epochs 100
    run ensemble ensemble $c --lr 3e-4 --epochs 100 --members 10
    run sgld sgld $c --lr 1e-4 --epochs 1000 --burn-in 100 --sample-every 10 --chains 3
    run sghmc sghmc $c --lr 1e-5 --momentum 0.9 --epochs 1000 --burn-in 100 --sample-every 10 --chains 3
    run vi vi $c --sgd-lr 3e-4 --sgd-epochs 100 --lr 1e-3 --epochs 300 --draws 50
}

report() {
    cat "$out"/{hmc,hmc-T0.1,sgd,ensemble,sgld,sghmc,vi}.json > benches/bayes/cnn.jsonl
    "$k" bayes compare --reference "$out/hmc.safetensors" --data "$data" \
        --others "$out/hmc-T0.1.safetensors,$out/sgd.safetensors,$out/ensemble.safetensors,$out/sgld.safetensors,$out/sghmc.safetensors,$out/vi.safetensors" \
        > benches/bayes/cnn-compare.md
    local sets="$out/hmc.safetensors,$out/ensemble.safetensors,$out/sgld.safetensors,$out/vi.safetensors"
    : > benches/bayes/cnn-shift.jsonl
    for corruption in noise blur shift rotate; do
        line=$("$k" bayes shift --samples "$sets" --data "$data" --corruption "$corruption" \
            --severity 1,2,3,4,5 --seed 0 --json --plot "benches/bayes/cnn-shift-$corruption.png")
        echo "{\"cpu\":\"$cpu\",${line#\{}" >> benches/bayes/cnn-shift.jsonl
    done
}

case "$which" in
    hmc) hmc ;;
    cold) cold ;;
    baselines) baselines ;;
    report) report ;;
    long) long ;;
    all) hmc; cold; baselines; report ;;
    *) echo "usage: $0 [hmc|cold|baselines|report|long|all] [OUT_DIR]" >&2; exit 2 ;;
esac
