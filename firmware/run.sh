#!/usr/bin/env bash
# Builds the firmware (release) and runs it under QEMU (mps2-an386, Cortex-M4F), printing the
# semihosting output. Fails if the build or the run fails, or if no `KEEL-FW system=` line appears.
#
# Usage: firmware/run.sh [--out FILE]    (from any directory; FILE also receives the output)
set -euo pipefail

out=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) [ $# -ge 2 ] || { echo "run.sh: --out needs a file" >&2; exit 2; }; out="$2"; shift 2 ;;
        --out=*) out="${1#--out=}"; shift ;;
        -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
# A relative --out is relative to the caller's directory, not firmware/.
if [ -n "$out" ] && [ "${out#/}" = "$out" ]; then out="$PWD/$out"; fi

cd "$(dirname "${BASH_SOURCE[0]}")"

command -v qemu-system-arm >/dev/null || {
    echo "run.sh: qemu-system-arm not found (apt-get install -y qemu-system-arm)" >&2; exit 1; }

# The executable's path from cargo itself (honours CARGO_TARGET_DIR); diagnostics go to stderr.
elf=$(cargo build --release --message-format=json-render-diagnostics \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -n "$elf" ] && [ -f "$elf" ] || { echo "run.sh: build produced no executable" >&2; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
timeout 60 qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
    -semihosting-config enable=on,target=native -kernel "$elf" >"$log" 2>&1 || status=$?
cat "$log"
if [ -n "$out" ]; then cp "$log" "$out"; fi

if [ "$status" -ne 0 ]; then
    [ "$status" -eq 124 ] && echo "run.sh: QEMU timed out after 60 s" >&2
    echo "run.sh: firmware run failed (exit status $status)" >&2
    exit "$status"
fi
grep -q '^KEEL-FW system=' "$log" || { echo "run.sh: no KEEL-FW result line" >&2; exit 1; }
