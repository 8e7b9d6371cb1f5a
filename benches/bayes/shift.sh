#!/usr/bin/env bash
# Distribution shift (issue 28 §2; Izmailov et al., ICML 2021): the digits' HMC, deep
# ensemble, SGLD and mean-field VI sets (MLP [64], λ = 5, `--standardize global`, T = 1) on their
# 180 test digits corrupted by noise, blur, shifts and rotations at severities 1–5
# (`keel bayes shift`, seed 0): accuracy, NLL and ECE against severity, one JSON line per
# corruption in benches/bayes/shift.jsonl and one plot per corruption,
# benches/bayes/shift-<corruption>.png. HMC and SGLD are benches/bayes/cold.sh's T = 1 sets (run
# it first, with the same OUT_DIR), as are the augmented HMC and SGLD sets evaluated beside them;
# the ensemble (10 × SGD, 100 epochs) and VI (SGD mean, 300 epochs, 50 draws) are trained here.
# Usage: benches/bayes/shift.sh [OUT_DIR] (default target/bayes-cold).
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-target/bayes-cold}"
mkdir -p "$out"
# KEEL names a built binary (the runs then leave the build directory alone); else this builds one.
if [ -z "${KEEL:-}" ]; then cargo build --release -q -p keel-cli; fi
k="${KEEL:-${CARGO_TARGET_DIR:-target}/release/keel}"
cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -n 1)
c="--data fixtures/data/digits.csv --model mlp:64 --prior-std 0.447 --standardize global --device cpu --quiet --json"
[ -s "$out/ensemble.safetensors" ] ||
    "$k" bayes ensemble $c --lr 3e-4 --epochs 100 --members 10 --save-samples "$out/ensemble.safetensors" > "$out/ensemble.json"
[ -s "$out/vi.safetensors" ] ||
    "$k" bayes vi $c --sgd-lr 3e-4 --sgd-epochs 100 --lr 1e-3 --epochs 300 --draws 50 --save-samples "$out/vi.safetensors" > "$out/vi.json"
# The four methods, then HMC and SGLD with ±1-pixel shift augmentation (cold.sh's T = 1 sets).
sets="$out/hmc-T1.safetensors,$out/ensemble.safetensors,$out/sgld-T1.safetensors,$out/vi.safetensors"
sets="$sets,$out/hmc-aug-T1.safetensors,$out/sgld-aug-T1.safetensors"
jsonl=benches/bayes/shift.jsonl
: > "$jsonl"
for corruption in noise blur shift rotate; do
    line=$("$k" bayes shift --samples "$sets" --data fixtures/data/digits.csv --corruption "$corruption" \
        --severity 1,2,3,4,5 --seed 0 --json --plot "benches/bayes/shift-$corruption.png")
    echo "{\"cpu\":\"$cpu\",${line#\{}" >> "$jsonl"
done
