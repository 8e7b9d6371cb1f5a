#!/usr/bin/env bash
# The small-scale study of issue 8 (benches/RESULTS.md, "Bayesian neural networks"): HMC, a deep
# ensemble, SGD, SGLD, SGHMC and mean-field VI on digits (MLP [64], λ = 5 → σ_prior = 0.447) and on
# the diabetes regression set (MLP [50], learned-scale Gaussian likelihood, σ_prior = 1), then
# `keel bayes compare` against HMC. Usage: benches/bayes/study.sh [digits|diabetes] [OUT_DIR]
# (default: both, queued one after the other; run the two in parallel on two cores).
set -euo pipefail
cd "$(dirname "$0")/../.."
which="${1:-all}"
out="${2:-target/bayes-study}"
mkdir -p "$out"
cargo build --release -q -p keel-cli
k=target/release/keel

digits() {
    local c="--data fixtures/data/digits.csv --model mlp:64 --prior-std 0.447 --device cpu --quiet --json"
    local o="$out/digits"
    mkdir -p "$o"
    $k bayes hmc $c --step-size 5e-3 --chains 3 --burn-in 50 --samples 200 --save-samples $o/hmc.safetensors > $o/hmc.json
    $k bayes hmc $c --step-size 5e-3 --chains 1 --burn-in 50 --samples 600 --seed 10 --save-samples $o/hmc-long.safetensors > $o/hmc-long.json
    $k bayes hmc $c --prior mixture --step-size 5e-3 --chains 3 --burn-in 50 --samples 100 --save-samples $o/hmc-mixture.safetensors > $o/hmc-mixture.json
    $k bayes hmc $c --prior logistic --step-size 5e-3 --chains 3 --burn-in 50 --samples 100 --save-samples $o/hmc-logistic.safetensors > $o/hmc-logistic.json
    $k bayes sgd $c --lr 3e-4 --epochs 100 --save-samples $o/sgd.safetensors > $o/sgd.json
    $k bayes ensemble $c --lr 3e-4 --epochs 100 --members 10 --save-samples $o/ensemble.safetensors > $o/ensemble.json
    $k bayes sgld $c --lr 1e-4 --epochs 1000 --burn-in 100 --sample-every 10 --chains 3 --save-samples $o/sgld.safetensors > $o/sgld.json
    $k bayes sghmc $c --lr 1e-5 --momentum 0.9 --epochs 1000 --burn-in 100 --sample-every 10 --chains 3 --save-samples $o/sghmc.safetensors > $o/sghmc.json
    $k bayes vi $c --sgd-lr 3e-4 --sgd-epochs 100 --lr 1e-3 --epochs 300 --draws 50 --save-samples $o/vi.safetensors > $o/vi.json
    $k bayes compare --reference $o/hmc.safetensors --data fixtures/data/digits.csv \
        --others $o/hmc-long.safetensors,$o/hmc-mixture.safetensors,$o/hmc-logistic.safetensors,$o/sgd.safetensors,$o/ensemble.safetensors,$o/sgld.safetensors,$o/sghmc.safetensors,$o/vi.safetensors \
        | tee $o/compare.md
}

diabetes() {
    local c="--data fixtures/data/diabetes.csv --likelihood gaussian --model mlp:50 --prior-std 1 --device cpu --quiet --json"
    local o="$out/diabetes"
    mkdir -p "$o"
    $k bayes hmc $c --step-size 1.5e-4 --chains 3 --burn-in 30 --samples 100 --save-samples $o/hmc.safetensors > $o/hmc.json
    $k bayes sgd $c --lr 3e-6 --epochs 1000 --save-samples $o/sgd.safetensors > $o/sgd.json
    $k bayes ensemble $c --lr 3e-6 --epochs 1000 --members 10 --save-samples $o/ensemble.safetensors > $o/ensemble.json
    $k bayes sgld $c --lr 3e-6 --epochs 1000 --burn-in 100 --sample-every 10 --chains 3 --save-samples $o/sgld.safetensors > $o/sgld.json
    $k bayes sghmc $c --lr 3e-7 --momentum 0.9 --epochs 1000 --burn-in 100 --sample-every 10 --chains 3 --save-samples $o/sghmc.safetensors > $o/sghmc.json
    $k bayes vi $c --sgd-lr 3e-6 --sgd-epochs 1000 --lr 1e-3 --epochs 300 --draws 50 --save-samples $o/vi.safetensors > $o/vi.json
    $k bayes compare --reference $o/hmc.safetensors --data fixtures/data/diabetes.csv \
        --others $o/sgd.safetensors,$o/ensemble.safetensors,$o/sgld.safetensors,$o/sghmc.safetensors,$o/vi.safetensors \
        | tee $o/compare.md
}

case "$which" in
    digits) digits ;;
    diabetes) diabetes ;;
    all) digits; diabetes ;;
    *) echo "usage: $0 [digits|diabetes|all] [OUT_DIR]" >&2; exit 2 ;;
esac
