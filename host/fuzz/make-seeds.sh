#!/usr/bin/env bash
# Regenerates host/fuzz/seeds/: small valid files of every kind the targets read, written by the
# `keel` binary (models, sample sets, --init states) and by `host/tests/loaders.rs`'s ignored
# `write_fuzz_seeds` (checkpoints of the fuzz contexts, CSV tables, a firmware log). Each file is
# a few kB; `every_fuzz_seed_is_accepted` checks that every committed seed loads.
set -euo pipefail
cd "$(dirname "$0")/../.."
S=host/fuzz/seeds
cargo build --quiet -p keel-cli --bin keel
K=target/debug/keel
data=fixtures/bayes/logistic.csv
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$S"/{models,samples,checkpoints,csv,init,firmware_log}

# Models: the reference MLPs, keel fit, learned dynamics of every kind, an EMLP, an RL policy and
# value, a model average.
cp fixtures/nn/{identity_gaussian,relu_logits,tanh_gaussian_f64}.safetensors "$S/models/"
$K fit --data "$data" --target label --task classify --hidden 3 --epochs 1 --device cpu \
    --export "$S/models/fit-classify.safetensors" >/dev/null
$K fit --data "$data" --target x2 --task regress --loss gaussian --hidden 3 --epochs 1 \
    --device cpu --export "$S/models/fit-gaussian.safetensors" >/dev/null
for m in chnn clnn node hnn; do
    $K chnn train --system chain-pendulum --links 2 --model "$m" --n-train 2 --n-test 1 \
        --epochs 1 --batch 2 --hidden 3 --layers 1 --quiet \
        --export "$S/models/$m.safetensors" >/dev/null
done
$K emlp train --dataset o5-synthetic --n-train 8 --n-val 4 --n-test 4 --epochs 1 --ch 2 \
    --layers 1 --batch 4 --quiet --device cpu --export "$S/models/emlp.safetensors" >/dev/null
$K rl train --env pendulum --steps 40 --seed-steps 20 --warmup 30 --hidden 3 --batch 4 \
    --eval-every 40 --eval-episodes 1 --quiet --export "$S/models/rl-policy.safetensors" \
    --export-value "$S/models/rl-value.safetensors" >/dev/null
common=(--data "$data" --target label --model mlp:3 --device cpu --quiet)
$K bayes ensemble "${common[@]}" --members 3 --epochs 1 --lr 1e-3 --batch-size 16 --save-samples "$tmp/ens.safetensors" >/dev/null
$K bayes export --samples "$tmp/ens.safetensors" --data "$data" --count 2 \
    --out "$S/models/bma.safetensors" >/dev/null

# Sample sets of every method.
cp "$tmp/ens.safetensors" "$S/samples/ensemble.safetensors"
$K bayes sgd "${common[@]}" --epochs 1 --lr 1e-3 --batch-size 16 --save-samples "$S/samples/sgd.safetensors" >/dev/null
$K bayes hmc "${common[@]}" --chains 2 --samples 3 --burn-in 1 --step-size 0.05 \
    --save-samples "$S/samples/hmc.safetensors" >/dev/null
$K bayes sgld "${common[@]}" --chains 2 --epochs 3 --lr 1e-3 --batch-size 16 --burn-in 1 --sample-every 1 \
    --save-samples "$S/samples/sgld.safetensors" >/dev/null
$K bayes vi "${common[@]}" --epochs 1 --sgd-epochs 1 --sgd-lr 1e-3 --lr 1e-3 --batch-size 16 --draws 3 \
    --save-samples "$S/samples/vi.safetensors" >/dev/null
$K bayes ensemble --data "$data" --target x2 --likelihood gaussian --model mlp:2,2 --device cpu \
    --quiet --members 2 --epochs 1 --lr 1e-3 --batch-size 16 --save-samples "$S/samples/gaussian.safetensors" >/dev/null

# --init states: a chain pendulum's (a trajectory's last row) and the gyroscope's.
$K simulate chain-pendulum --links 3 --t-end 0.01 --dt 0.01 --json > "$S/init/chain3-trajectory.json"
$K simulate gyroscope --t-end 0.01 --dt 0.01 --json > "$tmp/gyro.json"
python3 - "$tmp/gyro.json" "$S/init/gyroscope.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
json.dump({"x": t["x"][-1], "v": t["v"][-1]}, open(sys.argv[2], "w"))
PY

# Checkpoints of the fuzz contexts, CSV tables, a firmware log.
cargo test --quiet -p keel --test all -- --ignored loaders::write_fuzz_seeds
du -ah "$S" | sort -h | tail -n 5
