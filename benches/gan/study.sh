#!/usr/bin/env bash
# benches/gan/study.sh: the small-scale experiment of "Improving GAN Training with Probability
# Ratio Clipping and Sample Reweighting" (Wu et al., NeurIPS 2020) as benches/RESULTS.md reports
# it: the 8-Gaussian ring (radius 2, std 0.02) with MLPs 3 × 128 for generator, critic and
# classifier, batch 256, 5 + 5 steps per outer iteration, for wgan-gp, reweight and ppo over
# three seeds; then the digits with the DCGAN networks; then a digits generator feeding
# distillation's synthetic stream.
#
# Usage: benches/gan/study.sh [KEEL] [OUT_DIR]   (default target/release/keel, target/gan-study)
# Environment: ITER (ring outer iterations, default 1000), LR (default 1e-3: the paper's 1e-4
# needs its 10–20 k iterations), ITER_DIGITS (default 300), SEEDS (default "0 1 2"), ONLY
# (`ring` or `images`: one part only, to run the parts side by side; default both), METHODS
# (default "wgan-gp reweight ppo").
# Writes OUT_DIR/results.jsonl: one `keel gan train --json` report per line with the run's name.
set -euo pipefail
cd "$(dirname "$0")/../.."
KEEL=${1:-target/release/keel}
OUT=${2:-target/gan-study}
ITER=${ITER:-1000}
LR=${LR:-1e-3}
ITER_DIGITS=${ITER_DIGITS:-300}
SEEDS=${SEEDS:-0 1 2}
ONLY=${ONLY:-}
METHODS=${METHODS:-wgan-gp reweight ppo}
mkdir -p "$OUT"
: > "$OUT/results.jsonl"
run() { # run NAME ARGS...
    local name=$1
    shift
    "$KEEL" gan train --device cpu --json "$@" |
        python3 -c "import json,sys; d=json.load(sys.stdin); d['name']='$name'; print(json.dumps(d))" \
        >> "$OUT/results.jsonl"
}
for seed in $SEEDS; do
    [ "$ONLY" = images ] && break
    for m in $METHODS; do
        run "ring-$m" --dataset ring8 --method "$m" --iterations "$ITER" --lr "$LR" --seed "$seed" \
            --plot "$OUT/ring-$m-$seed.png"
    done
done
for m in wgan-gp reweight ppo; do
    [ "$ONLY" = ring ] && break
    run "digits-$m" --dataset digits --method "$m" --iterations "$ITER_DIGITS" --lr "$LR" --seed 0 \
        --plot "$OUT/digits-$m.png" --export "$OUT/digits-$m.safetensors"
done
# Distillation with the ppo generator's samples at the reference's 1 : 4 ratio, beside none.
[ "$ONLY" = ring ] || "$KEEL" fit --data fixtures/data/digits.csv --target label --task classify --hidden 128,128 \
    --epochs 100 --seed 0 --device cpu --export "$OUT/teacher.safetensors" --json > "$OUT/teacher.json"
for syn in none gan; do
    [ "$ONLY" = ring ] && break
    extra=()
    [ "$syn" = gan ] && extra=(--synthetic "$OUT/digits-ppo.safetensors" --synthetic-ratio 0.2)
    "$KEEL" distill --teacher "$OUT/teacher.safetensors" --data fixtures/data/digits.csv \
        --target label --student mlp:64 --epochs 100 --seed 0 --device cpu --json "${extra[@]}" |
        python3 -c "import json,sys; d=json.load(sys.stdin); d.pop('history', None); d['name']='distill-$syn'; print(json.dumps(d))" \
        >> "$OUT/results.jsonl"
done
# One line per run, and the per-method means over seeds.
python3 - "$OUT/results.jsonl" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["name"], []).append(r)
keys = ["modes_covered", "high_quality_fraction", "fid", "fid_real", "inception_score",
        "critic_loss_var", "generator_loss_var", "train_seconds",
        "test_agreement", "test_kl", "test_accuracy"]
for name, rs in by.items():
    parts = []
    for k in keys:
        vals = [r[k] for r in rs if isinstance(r.get(k), (int, float))]
        if vals:
            parts.append(f"{k} {st.mean(vals):.4g}" + (f" [{min(vals):.4g}–{max(vals):.4g}]" if len(vals) > 1 else ""))
    print(f"{name} (n={len(rs)}): " + ", ".join(parts))
PY
