#!/usr/bin/env bash
# Builds, on a development machine (GPU machines have no Rust toolchain), everything
# cuda/check.sh runs on a GPU machine, into gpu-bundle/ (git-ignored; carried to the device):
# the release `keel` binary, the test binaries that touch the GPU (the engine's `device`, whose
# `_cuda` variants compare every op with the CPU backend, `conv_fixtures`, whose `cuda` variants
# compare the image ops with PyTorch's values in fixtures/nn/, and `cuda_emu`; the methods'
# `methods_on_device`) and the `gpu` bench binary.
# The other test binaries are CPU-only (CI runs them) and some find `keel` by its build path.
set -euo pipefail
cd "$(dirname "$0")/.."
out=gpu-bundle
rm -rf "$out"
mkdir -p "$out/tests"
cargo build --release -p keel-cli
cp target/release/keel "$out/"
strip "$out/keel"
# Test binaries (release, so they run fast on the device).
cargo test --release -p keel-engine --test device --test conv_fixtures --test cuda_emu \
    -p keel --test methods_on_device \
    --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m.get("profile", {}).get("test"):
        print(m["executable"])' |
    while read -r exe; do cp "$exe" "$out/tests/" && strip "$out/tests/$(basename "$exe")"; done
exe=$(cargo bench -p keel-benches --bench gpu --no-run --message-format=json 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "gpu":
        print(m["executable"])')
cp "$exe" "$out/gpu-bench"
strip "$out/gpu-bench"
cp benches/peers/torch_mlp_gpu.py benches/peers/torch_hmc_gpu.py benches/peers/torch_cnn_gpu.py benches/peers/gan_step.py "$out/"
ls -la "$out" "$out/tests"
echo "bundle ready: carry $out and run cuda/check.sh on the GPU machine"
