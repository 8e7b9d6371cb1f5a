#!/usr/bin/env bash
# Runs a firmware ELF under QEMU (mps2-an386, Cortex-M4F) with one trace line per executed
# instruction (`-icount shift=0 -singlestep -d exec,nochain`) and prints, one per line, the
# instructions executed inside each of the first N regions between the `bench_start` and
# `bench_end` markers — deterministic counts, instructions not cycles (QEMU has no cycle model).
# The trace streams through a FIFO in a temporary directory (a whole run logs gigabytes): awk
# counts the regions and stops at the N-th, then QEMU is stopped; with OUT, the program runs to
# its end and its own output is written to OUT. Shared by firmware/measure.sh,
# firmware/measure_linalg.sh and firmware-c/measure.sh.
#
# Usage: firmware/count-regions.sh ELF N [OUT]
# Exits 1 (with QEMU's output on stderr) if fewer than N regions appear.
set -euo pipefail

[ $# -ge 2 ] && [ $# -le 3 ] || { echo "usage: count-regions.sh ELF N [OUT]" >&2; exit 2; }
elf=$1
regions=$2
out=${3:-}
[ -f "$elf" ] || { echo "count-regions.sh: no ELF at $elf" >&2; exit 2; }
case "$regions" in '' | *[!0-9]* | 0) echo "count-regions.sh: N must be a positive count" >&2; exit 2 ;; esac
command -v qemu-system-arm >/dev/null || {
    echo "count-regions.sh: qemu-system-arm not found (apt-get install -y qemu-system-arm)" >&2; exit 1; }

tmp=$(mktemp -d)
qemu_pid=""
awk_pid=""
cleanup() {
    for pid in $awk_pid $qemu_pid; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
fifo="$tmp/trace.log"
mkfifo "$fifo"
timeout 900 qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
    -semihosting-config enable=on,target=native \
    -icount shift=0 -singlestep -d exec,nochain -D "$fifo" \
    -kernel "$elf" >"$tmp/qemu.out" 2>&1 &
qemu_pid=$!
# With OUT, awk reads the trace to its end (so QEMU runs the program to completion and its
# output is whole); without, it stops at the N-th region and QEMU is stopped.
drain=0
[ -n "$out" ] && drain=1
timeout 960 awk -v want="$regions" -v drain="$drain" '
    found == want { next }
    /\] bench_start$/ { if (!inb) { inb = 1; n = 0 }; next }
    /\] bench_end$/   { if (inb) { print n; fflush(); inb = 0; if (++found == want && !drain) exit }; next }
    inb { n++ }
    END { if (found < want) exit 1 }
' "$fifo" >"$tmp/count" &
awk_pid=$!
while kill -0 "$awk_pid" 2>/dev/null; do
    if ! kill -0 "$qemu_pid" 2>/dev/null; then
        # QEMU is gone. If it never opened the trace, awk still waits in open(): release it.
        timeout 1 sh -c ': >"$1"' sh "$fifo" 2>/dev/null || true
        break
    fi
    sleep 0.05
done
status=0
wait "$awk_pid" || status=$?
awk_pid=""
if [ "$status" -ne 0 ] || [ "$(wc -l <"$tmp/count")" -ne "$regions" ]; then
    echo "count-regions.sh: fewer than $regions bench_start..bench_end regions in the trace; QEMU said:" >&2
    cat "$tmp/qemu.out" >&2
    exit 1
fi
cat "$tmp/count"
if [ -n "$out" ]; then
    # awk drained the trace, so QEMU has finished: its output is whole.
    qemu_status=0
    wait "$qemu_pid" || qemu_status=$?
    qemu_pid=""
    cp "$tmp/qemu.out" "$out"
    [ "$qemu_status" -eq 0 ] || { echo "count-regions.sh: the firmware failed (QEMU exit $qemu_status)" >&2; cat "$tmp/qemu.out" >&2; exit 1; }
fi
