#!/usr/bin/env bash
# Keel's conv benches (benches/benches/conv.rs) and their PyTorch-CPU and JAX-CPU peers
# (cnn_step.py), back to back on the same machine, RUNS times. Each run keeps the Keel criterion
# output and the peers' JSON in <target>/conv-peer/; the last lines print, per case, the median
# over the runs of each side and of the per-run ratios PyTorch / Keel and JAX / Keel (> 1: Keel
# is faster).
#
#   benches/peers/run_conv.sh
#   RUNS=5 WARMUP=1 MEASURE=3 REPEATS=100 benches/peers/run_conv.sh
#   KEEL_EXE=/path/to/conv-bench-binary benches/peers/run_conv.sh   # a prebuilt Keel side
#   TORCH_THREADS=1 benches/peers/run_conv.sh                        # torch.set_num_threads
#   CONV_PEER_OUT=/tmp/a benches/peers/run_conv.sh                   # keep this set's files apart
#   ISA=avx2 benches/peers/run_conv.sh     # what a CPU without AVX-512 runs, on one that has it:
#       Keel with KEEL_CPU_ISA=avx2, PyTorch with ATEN_CPU_CAPABILITY=avx2 and
#       ONEDNN_MAX_CPU_ISA=AVX2; JAX 0.4.23's XLA has no such cap and runs as it is. For `gemm`'s
#       AVX2 kernels as well, pass as KEEL_EXE a bench built with `gemm` without its `x86-v4`
#       feature (host/engine/Cargo.toml), as benches/RESULTS.md's AVX2 figures were
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

for fw in torch jax; do
    if [ ! -x "$here/.venv-$fw/bin/python" ]; then
        python3.11 -m venv "$here/.venv-$fw"
        "$here/.venv-$fw/bin/pip" install --quiet -r "$here/requirements-$fw.txt"
    fi
done
py="$here/.venv-jax/bin/python"
target=$(cargo metadata --format-version 1 --no-deps |
    "$py" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
out=${CONV_PEER_OUT:-$target/conv-peer}
mkdir -p "$out"

# Build once, then run that executable (an edit during the runs must not change Keel).
exe=${KEEL_EXE:-$(cargo bench -p keel-benches --bench conv --no-run --message-format=json |
    "$py" -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["name"] == "conv":
        print(m["executable"])')}
threads=${TORCH_THREADS:-$(nproc)}
export CRITERION_HOME="$out/criterion"
keel_env=() torch_env=()
case "${ISA:-}" in
    "") ;;
    avx2) keel_env=(KEEL_CPU_ISA=avx2)
          torch_env=(ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2) ;;
    *) echo "ISA=$ISA: only avx2 (or unset) is known" >&2; exit 2 ;;
esac
for i in $(seq 1 "${RUNS:-3}"); do
    echo "=== run $i ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
    # The cases the peers time (not the conv3x3 kernels side by side, which have no peer).
    env "${keel_env[@]}" "$exe" --bench --warm-up-time "${WARMUP:-1}" --measurement-time "${MEASURE:-3}" \
        '^(conv2d|cnn_step)' > "$out/keel-$i.out" 2> "$out/keel-$i.log"
    for fw in torch jax; do
        fw_env=()
        [ "$fw" = torch ] && fw_env=("${torch_env[@]}")
        env "${fw_env[@]}" "$here/.venv-$fw/bin/python" "$here/cnn_step.py" --framework "$fw" \
            --threads "$threads" --repeats "${REPEATS:-100}" > "$out/$fw-$i.json"
    done
done

"$py" - "$out" "${RUNS:-3}" "$here" "${ISA:-}" <<'EOF'
import json, re, statistics, sys
sys.path.insert(0, sys.argv[3])
import cpuinfo
out, runs, isa = sys.argv[1], int(sys.argv[2]), sys.argv[4]
print(cpuinfo.line() + (f"; capped at {isa} (Keel, PyTorch; not JAX)" if isa else ""))
unit = {"ns": 1e0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}
rows = {}
for i in range(1, runs + 1):
    text = open(f"{out}/keel-{i}.out").read()
    keel = {m.group(1): float(m.group(2)) * unit[m.group(3)] for m in re.finditer(
        r"^(\S+/b\d+)\s*\n?\s*time:\s+\[\S+ \S+ (\S+) (\S+) ", text, re.M)}
    log = open(f"{out}/keel-{i}.log").read()
    m = re.search(r"cnn_step check: .*\[([^\]]*)\]", log)
    peers = {fw: json.load(open(f"{out}/{fw}-{i}.json")) for fw in ("torch", "jax")}
    if m:
        kl = [float(v) for v in m.group(1).split(",")]
        for fw, p in peers.items():
            d = max(abs(a - b) for a, b in zip(kl, p["losses_first_steps"]))
            print(f"run {i}: first-step losses Keel vs {fw} agree to {d:.1e}")
    for case, k in keel.items():
        if any(case not in p["median_ns"] for p in peers.values()):
            continue  # Keel-only cases (conv2d_direct_fwd)
        r = rows.setdefault(case, {"keel": [], "torch": [], "jax": []})
        r["keel"].append(k)
        for fw, p in peers.items():
            r[fw].append(p["median_ns"][case])
fmt = lambda ns: f"{ns / 1e6:.2f} ms" if ns >= 1e6 else f"{ns / 1e3:.0f} µs"
print(f"{'case':<36} {'Keel':>9} {'PyTorch':>9} {'JAX':>9} {'PT/Keel':>8} {'JAX/Keel':>8}"
      "   (medians over runs; ratios: median of per-run ratios [range])")
for case, r in rows.items():
    rt = [t / k for t, k in zip(r["torch"], r["keel"])]
    rj = [j / k for j, k in zip(r["jax"], r["keel"])]
    med = statistics.median
    print(f"{case:<36} {fmt(med(r['keel'])):>9} {fmt(med(r['torch'])):>9} "
          f"{fmt(med(r['jax'])):>9} {med(rt):>7.2f}x {med(rj):>7.2f}x   "
          f"PT [{min(rt):.2f}-{max(rt):.2f}] JAX [{min(rj):.2f}-{max(rj):.2f}]; "
          "Keel " + ", ".join(fmt(v) for v in r["keel"]))
EOF
