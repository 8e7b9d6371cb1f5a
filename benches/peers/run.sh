#!/usr/bin/env bash
# Keel's 3-pendulum step benches (rk4/f64/chain-pendulum-3, dopri5/f64/chain-pendulum-3) and the
# numpy/scipy peer (pendulum3.py), back to back on the same machine. Prints the peer's JSON
# summary, which includes Keel's criterion medians and the ratios.
#
#   benches/peers/run.sh                 # also checks numpy RK4 against `keel simulate`
#   benches/peers/run.sh --no-check      # timings only
#   WARMUP=1 MEASURE=3 benches/peers/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"

py="$here/.venv/bin/python"
if [ ! -x "$py" ]; then
    python3 -m venv "$here/.venv"
    "$here/.venv/bin/pip" install --quiet -r "$here/requirements.txt"
fi
target=$(cargo metadata --format-version 1 --no-deps |
    "$py" -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

cargo bench -p keel-benches --bench dynamics -- \
    --warm-up-time "${WARMUP:-2}" --measurement-time "${MEASURE:-5}" \
    '^(rk4|dopri5)/f64/chain-pendulum-3$' >&2
"$py" "$here/pendulum3.py" --criterion "$target/criterion" "$@"
