#!/usr/bin/env bash
# benches/distill/study.sh: the four small-scale claims of "Does Knowledge Distillation Really
# Work?" (Stanton et al., NeurIPS 2021) on the digits with MLPs, as benches/RESULTS.md reports
# them. Usage: benches/distill/study.sh [KEEL] [OUT_DIR]   (default target/release/keel,
# target/distill-study). Writes OUT_DIR/results.jsonl: one `keel distill --json` report per line
# with the experiment's name. Deterministic given the seeds; about 80 s on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/../.."
KEEL=${1:-target/release/keel}
OUT=${2:-target/distill-study}
mkdir -p "$OUT"
# A fixed split: every 5th row of the digits is a test row (360), the rest train (1437), so the
# teachers never see the test rows.
awk -F, 'NR == 1 || (NR - 2) % 5 != 0' fixtures/data/digits.csv > "$OUT/train.csv"
awk -F, 'NR == 1 || (NR - 2) % 5 == 0' fixtures/data/digits.csv > "$OUT/test.csv"
# The students are standardised per channel (--image-shape), as a CNN is, in every run.
# Teachers: three MLPs [128, 128] (keel fit, Adam, early stopping on 10 % of the training rows).
for s in 0 1 2; do
    "$KEEL" fit --data "$OUT/train.csv" --target label --task classify --hidden 128,128 \
        --epochs 100 --test-fraction 0.05 --seed "$s" --device cpu \
        --export "$OUT/teacher$s.safetensors" --json > "$OUT/teacher$s.json"
done
: > "$OUT/results.jsonl"
run() { # run NAME STUDENT ARGS...
    local name=$1 student=$2
    shift 2
    "$KEEL" distill --data "$OUT/train.csv" --test-data "$OUT/test.csv" --target label \
        --student "$student" --image-shape 1x8x8 --epochs 100 --device cpu --json "$@" |
        python3 -c "import json,sys; d=json.load(sys.stdin); d.pop('history'); d['name']='$name'; print(json.dumps(d))" \
        >> "$OUT/results.jsonl"
}
T0=(--teacher "$OUT/teacher0.safetensors")
ENS=(--teacher "$OUT/teacher0.safetensors" --teacher "$OUT/teacher1.safetensors" --teacher "$OUT/teacher2.safetensors")
for seed in 0 1 2; do
    # (i) self-distillation, (iii) augmentation, (iv) ensemble teacher: three student seeds each.
    run self mlp:128,128 "${T0[@]}" --seed "$seed"
    run self-shift mlp:128,128 "${T0[@]}" --seed "$seed" --augment shift
    run self-mixup mlp:128,128 "${T0[@]}" --seed "$seed" --augment mixup --mixup-alpha 1
    run ensemble mlp:128,128 "${ENS[@]}" --seed "$seed"
    run ensemble-mixup mlp:128,128 "${ENS[@]}" --seed "$seed" --augment mixup --mixup-alpha 1
done
# (iv) again with keel bayes ensembles of ReLU MLPs [64] (10 % of the training rows held out by
# keel bayes; students mlp:64): one member against three.
for m in 1 3; do
    "$KEEL" bayes ensemble --data "$OUT/train.csv" --target label --model mlp:64 --prior-std 0.447 \
        --lr 3e-4 --epochs 100 --members "$m" --seed 0 --device cpu \
        --save-samples "$OUT/bayes$m.safetensors" --json > "$OUT/bayes$m.json"
done
for seed in 0 1 2; do
    run bayes-single mlp:64 --teacher "$OUT/bayes1.safetensors" --seed "$seed"
    run bayes-ensemble mlp:64 --teacher "$OUT/bayes3.safetensors" --seed "$seed"
done
# (ii) teacher-interpolated initialisation.
for rho in 0 0.05 0.1 0.25 0.5 0.75 1; do
    run "rho=$rho" mlp:128,128 "${T0[@]}" --seed 0 --init interpolate --rho "$rho"
done
