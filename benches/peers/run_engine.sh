#!/usr/bin/env bash
# Keel's engine benches (benches/benches/engine.rs: mlp_step, mlp_forward, mlp_grad, adam,
# matmul) and the JAX-on-the-CPU peer (mlp_step.py), back to back on the same machine, RUNS
# times. Each run prints a table (Keel criterion median, JAX median, JAX / Keel; > 1 means Keel
# is faster) on stderr and keeps the peer's JSON summary in <target>/engine-peer/run-<i>.json;
# the last lines summarise the ratios over the runs.
#
#   benches/peers/run_engine.sh
#   RUNS=5 WARMUP=1 MEASURE=3 benches/peers/run_engine.sh
#   RUNS=1 benches/peers/run_engine.sh '^mlp_step'      # a criterion filter for the Keel side
#   CPUS=0 benches/peers/run_engine.sh                   # both sides pinned (taskset -c 0)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

py="$here/.venv-jax/bin/python"
if [ ! -x "$py" ]; then
    python3 -m venv "$here/.venv-jax"
    "$here/.venv-jax/bin/pip" install --quiet -r "$here/requirements-jax.txt"
fi
target=$(cargo metadata --format-version 1 --no-deps |
    "$py" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
out="$target/engine-peer"
mkdir -p "$out"

pin=()
if [ -n "${CPUS:-}" ]; then
    pin=(taskset -c "$CPUS")
fi

# Build once, then run that executable: an edit to the engine during the runs must not rebuild
# (and so change) Keel between runs, nor load the machine while the other side is timed.
exe=$(cargo bench -p keel-benches --bench engine --no-run --message-format=json |
    "$py" -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["target"]["name"] == "engine":
        print(m["executable"])')
export CRITERION_HOME="$target/criterion"
for i in $(seq 1 "${RUNS:-3}"); do
    since=$(date +%s)
    echo "=== run $i ($(date -u +%H:%M:%S) UTC, load $(cut -d' ' -f1-3 /proc/loadavg)${CPUS:+, CPUs $CPUS})" >&2
    "${pin[@]}" "$exe" --bench \
        --warm-up-time "${WARMUP:-1}" --measurement-time "${MEASURE:-3}" "$@" \
        > "$out/keel-$i.out" 2> "$out/keel-$i.log"
    grep -E '^[a-z_]+/|time:|mlp_step check|^CPU:' "$out/keel-$i.out" "$out/keel-$i.log" \
        --no-filename >&2 || true
    "${pin[@]}" "$py" "$here/mlp_step.py" --criterion "$target/criterion" --since "$since" \
        --keel-log "$out/keel-$i.log" > "$out/run-$i.json"
done

"$py" - "$out" "${RUNS:-3}" "$here" <<'EOF'
import json, statistics, sys
sys.path.insert(0, sys.argv[3])
import cpuinfo
out, runs = sys.argv[1], int(sys.argv[2])
ratios = {}
for i in range(1, runs + 1):
    with open(f"{out}/run-{i}.json") as fh:
        for k, v in json.load(fh).get("ratio_jax_over_keel", {}).items():
            if v is not None:
                ratios.setdefault(k, []).append(v)
print(cpuinfo.line())
print(f"JAX / Keel over {runs} runs (> 1: Keel faster):")
for k, v in ratios.items():
    print(f"  {k:<36} median {statistics.median(v):.2f}x  "
          f"[{min(v):.2f}x .. {max(v):.2f}x]  runs: " + ", ".join(f"{r:.2f}" for r in v))
EOF
