#!/usr/bin/env bash
# benches/distill/study.sh: the four small-scale claims of "Does Knowledge Distillation Really
# Work?" (Stanton et al., NeurIPS 2021) on the digits with MLPs, as benches/RESULTS.md reports
# them. Usage: benches/distill/study.sh [KEEL] [OUT_DIR]   (default target/release/keel,
# target/distill-study). Writes OUT_DIR/results.jsonl: one `keel distill --json` report per line
# with the experiment's name. Deterministic given the seeds; about 3 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
KEEL=${1:-target/release/keel}
OUT=${2:-target/distill-study}
mkdir -p "$OUT"
# A fixed split: every 5th row of the digits is a test row (360), the rest train (1437), so the
# teachers never see the test rows.
awk -F, 'NR == 1 || (NR - 2) % 5 != 0' fixtures/data/digits.csv > "$OUT/train.csv"
awk -F, 'NR == 1 || (NR - 2) % 5 == 0' fixtures/data/digits.csv > "$OUT/test.csv"
# Teachers: three MLPs [128, 128] (keel fit, Adam, early stopping on 10 % of the training rows).
for s in 0 1 2; do
    "$KEEL" fit --data "$OUT/train.csv" --target label --task classify --hidden 128,128 \
        --epochs 100 --test-fraction 0.05 --seed "$s" --device cpu \
        --export "$OUT/teacher$s.safetensors" --json > "$OUT/teacher$s.json"
done
: > "$OUT/results.jsonl"
run() { # run NAME ARGS...
    local name=$1
    shift
    "$KEEL" distill --data "$OUT/train.csv" --test-data "$OUT/test.csv" --target label \
        --student mlp:128,128 --epochs 100 --device cpu --json "$@" |
        python3 -c "import json,sys; d=json.load(sys.stdin); d.pop('history'); d['name']='$name'; print(json.dumps(d))" \
        >> "$OUT/results.jsonl"
}
T0=(--teacher "$OUT/teacher0.safetensors")
ENS=(--teacher "$OUT/teacher0.safetensors" --teacher "$OUT/teacher1.safetensors" --teacher "$OUT/teacher2.safetensors")
for seed in 0 1 2; do
    # (i) self-distillation, (iii) augmentation, (iv) ensemble teacher: three student seeds each.
    run self "${T0[@]}" --seed "$seed"
    run self-shift "${T0[@]}" --seed "$seed" --augment shift --image-shape 1x8x8
    run self-mixup "${T0[@]}" --seed "$seed" --augment mixup --mixup-alpha 1
    run ensemble "${ENS[@]}" --seed "$seed"
    run ensemble-mixup "${ENS[@]}" --seed "$seed" --augment mixup --mixup-alpha 1
done
# (ii) teacher-interpolated initialisation.
for rho in 0 0.05 0.1 0.25 0.5 0.75 1; do
    run "rho=$rho" "${T0[@]}" --seed 0 --init interpolate --rho "$rho"
done
