#!/usr/bin/env bash
# Builds the C firmware (keel-ffi's static library for thumbv7em-none-eabihf, then the C sources
# with arm-none-eabi-gcc) and runs it under QEMU (mps2-an386, Cortex-M4F), printing the
# semihosting output. Fails if a build or the run fails, or if no `KEEL-FW system=` line appears.
# The sizes of the image (arm-none-eabi-size) go to stderr.
#
# Usage: firmware-c/run.sh [--out FILE]    (from any directory; FILE also receives the output)
#        firmware-c/run.sh --build-only    (build, print the ELF's path, do not run)
set -euo pipefail

out=""
build_only=0
while [ $# -gt 0 ]; do
    case "$1" in
        --out) [ $# -ge 2 ] || { echo "run.sh: --out needs a file" >&2; exit 2; }; out="$2"; shift 2 ;;
        --out=*) out="${1#--out=}"; shift ;;
        --build-only) build_only=1; shift ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "run.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
# A relative --out is relative to the caller's directory.
if [ -n "$out" ] && [ "${out#/}" = "$out" ]; then out="$PWD/$out"; fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
cd "$repo"

for tool in arm-none-eabi-gcc qemu-system-arm; do
    command -v "$tool" >/dev/null || {
        echo "run.sh: $tool not found (apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm)" >&2
        exit 1; }
done

# The static library's path from cargo itself (honours CARGO_TARGET_DIR); diagnostics to stderr.
lib=$(cargo build -p keel-ffi --profile firmware --target thumbv7em-none-eabihf \
        --message-format=json-render-diagnostics \
    | tr ',' '\n' | sed -n 's/.*"\([^"]*libkeel_ffi\.a\)".*/\1/p' | tail -n 1)
[ -n "$lib" ] && [ -f "$lib" ] || { echo "run.sh: the build produced no libkeel_ffi.a" >&2; exit 1; }

build="$(dirname "$(dirname "$(dirname "$lib")")")/firmware-c"
mkdir -p "$build"
elf="$build/keel-firmware-c.elf"
# Hard-float Cortex-M4F, as the Rust target; no FMA contraction, so C's float sums round as
# the Rust firmware's do; no C library: start-up, output and exit are ours (semihosting).
cflags=(-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -std=c11 -O2 -g
        -ffp-contract=off -ffreestanding -ffunction-sections -fdata-sections
        -Wall -Wextra -Werror -I ffi/include)
arm-none-eabi-gcc "${cflags[@]}" -Wa,-I,firmware/assets \
    firmware-c/main.c firmware-c/startup.c firmware-c/semihosting.c firmware-c/assets.S \
    -nostdlib -T firmware-c/link.ld -Wl,--gc-sections -Wl,-z,noexecstack -Wl,-Map,"$build/keel-firmware-c.map" \
    "$lib" -lgcc -o "$elf"
if command -v arm-none-eabi-size >/dev/null; then arm-none-eabi-size "$elf" >&2; fi
if [ "$build_only" -eq 1 ]; then echo "$elf"; exit 0; fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
timeout 60 qemu-system-arm -cpu cortex-m4 -machine mps2-an386 -nographic \
    -semihosting-config enable=on,target=native -kernel "$elf" >"$log" 2>&1 || status=$?
cat "$log"
if [ -n "$out" ]; then cp "$log" "$out"; fi

if [ "$status" -ne 0 ]; then
    [ "$status" -eq 124 ] && echo "run.sh: QEMU timed out after 60 s" >&2
    echo "run.sh: C firmware run failed (exit status $status)" >&2
    exit "$status"
fi
grep -q '^KEEL-FW system=' "$log" || { echo "run.sh: no KEEL-FW result line" >&2; exit 1; }
