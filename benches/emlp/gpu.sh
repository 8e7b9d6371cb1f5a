#!/usr/bin/env bash
# EMLP training on a GPU machine, from the repository root with gpu-bundle/ built by
# cuda/bundle.sh: (1) seconds per epoch on the CPU and on the GPU for the same run (O5Synthetic,
# 384 channels, n_train 1000, batch 500; 3 epochs each, bases solved in the same process), then
# (2) Inertia with EMLP at the paper's width (384 channels, 900 epochs, seed 0) on the GPU,
# checkpointing every 25 epochs so an interrupted run continues (on any device) with --resume.
# Writes to $OUT (or .): emlp-gpu.jsonl, inertia384.json, inertia384.ckpt.
# Usage: benches/emlp/gpu.sh [SECONDS for step 2, default 420]
set -uo pipefail
cd "$(dirname "$0")/../.."
source cuda/env.sh
k=gpu-bundle/keel
out="${OUT:-.}"
limit="${1:-420}"
for dev in cpu cuda; do
    "$k" emlp train --dataset o5-synthetic --ch 384 --epochs 3 --quiet --json --device "$dev" |
        sed "s/^{/{\"device\":\"$dev\",\"cpus\":$(nproc),/" | tee -a "$out/emlp-gpu.jsonl"
done
timeout "$limit" "$k" emlp train --dataset inertia --ch 384 --epochs 900 --seed 0 --quiet --json \
    --device cuda --checkpoint "$out/inertia384.ckpt" --checkpoint-every 25 |
    tee "$out/inertia384.json"
echo "inertia exit: ${PIPESTATUS[0]}"
