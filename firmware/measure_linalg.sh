#!/usr/bin/env bash
# Builds the `linalg-peers` variant of the firmware (feature `nalgebra`; the default firmware
# and its output are untouched) and prints the deterministic instruction counts of Keel's and
# nalgebra's linear algebra on the same inputs, measured as in `measure.sh` (QEMU mps2-an386,
# `-icount shift=0 -singlestep -d exec,nochain`; instructions between `bench_start` and
# `bench_end`, not cycles), then the run's `KEEL-LINALG` line (largest relative differences).
#
# Usage: firmware/measure_linalg.sh    (from any directory)
# Output, one `<region>_<impl>=<instructions>` line each:
#   rk4_step_{keel,nalgebra}         one 3-pendulum RK4 step (four 6 × 6 constraint solves)
#   constraint_solve_{keel,nalgebra} one 6 × 6 solve alone
#   gp_update_{keel,nalgebra}        the first WISKI update (1-D, m = 64, f32)
#   emlp_dense_{keel,nalgebra}       the EMLP's three dense layers (10→52, 48→52, 48→1)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

elf=$(cargo build --release --features nalgebra --bin linalg-peers \
    --message-format=json-render-diagnostics \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -n "$elf" ] && [ -f "$elf" ] || { echo "measure_linalg.sh: build produced no executable" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
counts=$(./count-regions.sh "$elf" 8 "$tmp/qemu.out")
i=0
for region in rk4_step constraint_solve gp_update emlp_dense; do
    for impl in keel nalgebra; do
        i=$((i + 1))
        echo "${region}_${impl}=$(sed -n "${i}p" <<<"$counts")"
    done
done
grep KEEL-LINALG "$tmp/qemu.out"
