#!/usr/bin/env bash
# The WISKI paper's online experiments on the registry packages' real rows
# (fixtures/gen/registry_sets.py): classification of the banana set (the paper's own, 2-D, no
# stem) and of UCI Image Segmentation (18 inputs, 7 classes, a 2-feature stem) by WISKI, the
# exact Dirichlet GPs and the streaming softmax SVGPs; regression of the computer prices
# (9 inputs, a 2-feature stem) by WISKI, the exact GP, O-SGPR and O-SVGP. Seeds 0–2, the
# reference's settings. Writes benches/gp/registry.jsonl, one JSON line per run (with "data").
#   KEEL=target/release/keel benches/gp/registry.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
KEEL=${KEEL:-target/release/keel}
OUT=benches/gp/registry.jsonl
TMP=$(mktemp)
trap 'rm -f "$TMP"' EXIT
lscpu | grep 'Model name' >&2
tag() { python3 -c 'import json,sys; d=json.load(sys.stdin); d["data"]=sys.argv[1]; print(json.dumps(d))' "$1"; }
for seed in 0 1 2; do
  for method in wiski exact svgp; do
    echo "banana $method seed $seed" >&2
    "$KEEL" gp classify --data fixtures/data/banana.csv --target label --method "$method" \
      --seed "$seed" --json --quiet | tag banana >> "$TMP"
    echo "segment $method seed $seed" >&2
    "$KEEL" gp classify --data fixtures/data/segment.csv --target label --stem 2 \
      --method "$method" --seed "$seed" --json --quiet | tag segment >> "$TMP"
  done
  for method in wiski exact osgpr osvgp; do
    echo "computers $method seed $seed" >&2
    "$KEEL" gp online --data fixtures/data/computers.csv --target price --stem 2 \
      --method "$method" --seed "$seed" --json --quiet | tag computers >> "$TMP"
  done
done
mv "$TMP" "$OUT"
trap - EXIT
