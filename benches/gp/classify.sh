#!/usr/bin/env bash
# Online classification of real rows (`keel gp classify`), the WISKI paper's classification
# experiment on the data Keel ships: the digits (64 inputs, 10 classes) through a learned
# 2-feature stem, and Keel's 2-D banana stream (the paper's data set is the banana of
# thangbui/streaming_sparse_gp, which no registry ships). WISKI with the reference's settings
# (kernel step before every point), the exact Dirichlet GPs and the streaming softmax SVGPs,
# seeds 0–2. Writes benches/gp/classify.jsonl, one JSON line per run (with "data").
#   KEEL=target/release/keel benches/gp/classify.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
KEEL=${KEEL:-target/release/keel}
OUT=benches/gp/classify.jsonl
TMP=$(mktemp)
trap 'rm -f "$TMP"' EXIT
lscpu | grep 'Model name' >&2
for seed in 0 1 2; do
  for method in wiski exact svgp; do
    echo "digits $method seed $seed" >&2
    "$KEEL" gp classify --data fixtures/data/digits.csv --target label --stem 2 \
      --method "$method" --seed "$seed" --json --quiet |
      python3 -c 'import json,sys; d=json.load(sys.stdin); d["data"]="digits"; print(json.dumps(d))' >> "$TMP"
    echo "banana $method seed $seed" >&2
    "$KEEL" gp classify --method "$method" --seed "$seed" --json --quiet |
      python3 -c 'import json,sys; d=json.load(sys.stdin); d["data"]="banana"; print(json.dumps(d))' >> "$TMP"
  done
done
mv "$TMP" "$OUT"
trap - EXIT
