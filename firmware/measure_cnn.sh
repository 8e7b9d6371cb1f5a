#!/usr/bin/env bash
# Builds the `cnn-bench` binary (feature `cnn-bench`, release) and prints its section sizes, its
# output line and the deterministic instruction counts of its two marked regions (QEMU's
# execution trace through count-regions.sh; instructions, not cycles):
#   cnn_forward_instructions=…      one forward pass of the embedded digits CNN (f32)
#   augerino_j4_instructions=…      one Augerino prediction averaging J = 4 warped copies
# Usage: firmware/measure_cnn.sh    (from any directory)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

elf=$(cargo build --release --features cnn-bench --bin cnn-bench \
    --message-format=json-render-diagnostics \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -n "$elf" ] && [ -f "$elf" ] || { echo "measure_cnn.sh: build produced no executable" >&2; exit 1; }
if command -v arm-none-eabi-size >/dev/null; then
    arm-none-eabi-size "$elf" | awk 'NR == 2 { printf "text=%s data=%s bss=%s\n", $1, $2, $3 }'
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
counts=$(./count-regions.sh "$elf" 2 "$tmp/qemu.out")
echo "cnn_forward_instructions=$(sed -n 1p <<<"$counts")"
echo "augerino_j4_instructions=$(sed -n 2p <<<"$counts")"
grep KEEL-CNN "$tmp/qemu.out"
