/* The exported models and samples, embedded from firmware/assets (the Rust firmware's files)
   into flash with .incbin; the assembler finds them through -Wa,-I (see run.sh). Each blob is
   8-byte aligned, as the safetensors data section expects, and has a 32-bit length beside it. */
#define ASSET(sym, file)          \
    .section .rodata.sym, "a";    \
    .balign 8;                    \
    .global sym;                  \
sym:                              \
    .incbin file;                 \
sym##_end:                        \
    .balign 4;                    \
    .global sym##_len;            \
sym##_len:                        \
    .word sym##_end - sym;

ASSET(digits_model, "digits-mlp.safetensors")
ASSET(digits_samples, "digits-samples.safetensors")
ASSET(pendulum_policy, "pendulum-policy.safetensors")
ASSET(pendulum_value, "pendulum-value.safetensors")
ASSET(chnn_model, "chnn-pend2.safetensors")
ASSET(emlp_model, "emlp-o5.safetensors")
ASSET(emlp_samples, "emlp-o5-samples.safetensors")
ASSET(ntk_sine, "ntk-sine.safetensors")
