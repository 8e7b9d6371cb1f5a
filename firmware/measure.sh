#!/usr/bin/env bash
# Builds the firmware (release) and prints its section sizes and the deterministic instruction
# count of one RK4 step, one learned-CHNN RK4 step, one digit classification, one 10-sample BMA
# digit classification, one WISKI update, one WISKI prediction, one closed-loop policy control step, one
# model-based value estimate, one simplex-ensemble and one distilled-student digit classification,
# the sine network's on-board NTK adaptation and its predictions, one RK4 step of the learned
# gyroscope, one of the learned double spring pendulum, and, for the WISKI exported with a
# learned stem, one raw row's features and prediction and one update with that row: the
# instructions QEMU executes between the `bench_start` and `bench_end`
# markers (`-icount shift=0 -singlestep -d exec,nochain`: one trace line per instruction).
# Instructions, not cycles: QEMU has no cycle model.
#
# Usage: firmware/measure.sh    (from any directory)
# Output:
#   text=… data=… bss=…
#   rk4_step_instructions=…     (first marked region: one 3-pendulum RK4 step)
#   chnn_step_instructions=…    (second: one RK4 step of the learned 2-pendulum CHNN, 3 × 256)
#   gyro_step_instructions=…    (third: one RK4 step of the learned gyroscope CHNN, 3 × 64,
#                                4 nodes in 3-D, 9 constraints)
#   mlp_digit_instructions=…    (fourth: one digits-MLP forward pass, 64→128→128→10)
#   bma_digit_instructions=…    (fifth: one 10-sample Bayesian model average, 64→64→10)
#   gp_update_instructions=…    (sixth: one WISKI update, 1-D, m = 64, f32)
#   gp_predict_instructions=…   (seventh: one WISKI prediction, mean and variance of f)
#   policy_step_instructions=…  (eighth: one closed-loop control step, SAC-SVG(2) policy
#                                3→64→64→2 and the Pendulum-v1 step)
#   value_estimate_instructions=… (ninth: one model-based value estimate V̂_2 of a state: the
#                                policy rolled 2 steps through the 64-unit GRU world model, reward,
#                                done and the double-Q critic)
#   simplex_digit_instructions=… (tenth: one prediction of the ensemble of simplexes on digits,
#                                components × fixed points, vertex weights combined on the fly)
#   student_digit_instructions=… (eleventh: one forward pass of the MLP distilled from it)
#   ntk_adapt_instructions=…     (twelfth: the sine network 1→40→40→1 adapted to 10 points by its
#                                linearisation: 10 reverse passes, K = JJᵀ + σ²I, Cholesky, L⁻¹r)
#   ntk_predict_instructions=…   (thirteenth: one adapted prediction, mean and latent variance)
#   ntk_weight_offset_instructions=… (fourteenth: the weight offset u = Jᵀα, P = 1761 values)
#   ntk_mean_jvp_instructions=…  (fifteenth: one adapted mean by forward mode along u)
#   spring_step_instructions=…   (sixteenth: one RK4 step of the Hamiltonian EMLP learned on the
#                                double spring pendulum, O(2), 3 × 32: four reverse passes)
#   wiski_stem_predict_instructions=… (seventeenth: one raw row of computers.csv through the
#                                exported stem, 9 → 2 features, and the WISKI prediction there,
#                                mean and variance of f, m = 8 × 8, f32)
#   wiski_stem_update_instructions=…  (eighteenth: that row's standardised target absorbed, the
#                                stem fixed: one WISKI update, m = 64, D = 2)
# Profile settings can be overridden through cargo's environment, e.g.
#   CARGO_PROFILE_RELEASE_OPT_LEVEL=s firmware/measure.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

elf=$(cargo build --release --message-format=json-render-diagnostics \
    | sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -n "$elf" ] && [ -f "$elf" ] || { echo "measure.sh: build produced no executable" >&2; exit 1; }

# Sizes: binutils' arm-none-eabi-size, else llvm-size from the toolchain's llvm-tools.
size_tool=""
if command -v arm-none-eabi-size >/dev/null; then
    size_tool=arm-none-eabi-size
else
    for s in "$(rustc --print sysroot)"/lib/rustlib/*/bin/llvm-size; do
        [ -x "$s" ] && { size_tool="$s"; break; }
    done
fi
[ -n "$size_tool" ] || {
    echo "measure.sh: no arm-none-eabi-size or llvm-size (rustup component add llvm-tools)" >&2; exit 1; }
# Berkeley format: "text data bss dec hex filename" on the second line.
"$size_tool" "$elf" | awk 'NR == 2 { printf "text=%s data=%s bss=%s\n", $1, $2, $3 }'

counts=$(./count-regions.sh "$elf" 18)
echo "rk4_step_instructions=$(sed -n 1p <<<"$counts")"
echo "chnn_step_instructions=$(sed -n 2p <<<"$counts")"
echo "gyro_step_instructions=$(sed -n 3p <<<"$counts")"
echo "mlp_digit_instructions=$(sed -n 4p <<<"$counts")"
echo "bma_digit_instructions=$(sed -n 5p <<<"$counts")"
echo "gp_update_instructions=$(sed -n 6p <<<"$counts")"
echo "gp_predict_instructions=$(sed -n 7p <<<"$counts")"
echo "policy_step_instructions=$(sed -n 8p <<<"$counts")"
echo "value_estimate_instructions=$(sed -n 9p <<<"$counts")"
echo "simplex_digit_instructions=$(sed -n 10p <<<"$counts")"
echo "student_digit_instructions=$(sed -n 11p <<<"$counts")"
echo "ntk_adapt_instructions=$(sed -n 12p <<<"$counts")"
echo "ntk_predict_instructions=$(sed -n 13p <<<"$counts")"
echo "ntk_weight_offset_instructions=$(sed -n 14p <<<"$counts")"
echo "ntk_mean_jvp_instructions=$(sed -n 15p <<<"$counts")"
echo "spring_step_instructions=$(sed -n 16p <<<"$counts")"
echo "wiski_stem_predict_instructions=$(sed -n 17p <<<"$counts")"
echo "wiski_stem_update_instructions=$(sed -n 18p <<<"$counts")"
