#!/usr/bin/env bash
# Builds the C firmware (firmware-c/run.sh's build, without the run) and prints its section sizes,
# the flash its code takes besides the embedded models, and the deterministic instruction counts
# of the marked calls, by firmware/measure.sh's method: the instructions QEMU executes between
# the `bench_start` and `bench_end` markers (`-icount shift=0 -singlestep -d exec,nochain`).
# Instructions, not cycles: QEMU has no cycle model.
#
# Usage: firmware-c/measure.sh    (from any directory)
# Output:
#   text=… data=… bss=… assets=… code=…   (code = text − the embedded files)
#   rk4_step_instructions=…     (one 3-pendulum RK4 step through keel_rk4_step)
#   chnn_step_instructions=…    (one RK4 step of the learned 2-pendulum CHNN, 3 × 256)
#   mlp_digit_instructions=…    (one digits-MLP evaluation through keel_model_eval)
#   policy_step_instructions=…  (one closed-loop control step: keel_model_eval of the policy,
#                                keel_env_step of Pendulum-v1)
#   value_estimate_instructions=… (one model-based value estimate through keel_model_eval)
#   ntk_adapt_instructions=…    (the sine network 1→40→40→1 adapted to 10 points by its
#                                linearisation through keel_ntk_adapt)
#   ntk_predict_instructions=…  (one adapted prediction, mean and latent variance)
#   ntk_weight_offset_instructions=… (the weight offset u = Jᵀα, P = 1761 values)
#   ntk_mean_jvp_instructions=… (one adapted mean by forward mode along u)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
elf=$("$here/run.sh" --build-only 2>/dev/null) || { "$here/run.sh" --build-only >/dev/null; exit 1; }
map="${elf%.elf}.map"

# Berkeley format: "text data bss dec hex filename" on the second line; the embedded files are
# the .rodata.<asset> input sections of assets.S in the link map.
assets=0
for size in $(grep -A1 -E '^ \.rodata\.(digits_model|digits_samples|pendulum_policy|pendulum_value|chnn_model|emlp_model|emlp_samples|ntk_sine)$' "$map" \
        | awk '$1 ~ /^0x/ { print $2 }'); do
    assets=$((assets + size))
done
arm-none-eabi-size "$elf" | awk -v a="$assets" \
    'NR == 2 { printf "text=%s data=%s bss=%s assets=%s code=%s\n", $1, $2, $3, a, $1 - a }'

counts=$("$here/../firmware/count-regions.sh" "$elf" 9)
names=(rk4_step chnn_step mlp_digit policy_step value_estimate ntk_adapt ntk_predict
       ntk_weight_offset ntk_mean_jvp)
for i in 0 1 2 3 4 5 6 7 8; do echo "${names[$i]}_instructions=$(sed -n "$((i + 1))p" <<<"$counts")"; done
