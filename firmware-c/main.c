/*
 * Keel's C API on an emulated Cortex-M4F (QEMU mps2-an386): the Rust firmware's checks
 * (firmware/src/main.rs) rerun from C through keel.h, printing the same `KEEL-FW` lines, which
 * `keel firmware check` compares with the host. Floats are printed as their IEEE-754 bits
 * (8 hex digits), so no float formatting is linked and the host compares bit patterns.
 *
 * Lines: the digits MLP, the Pendulum-v1 closed loop of the exported policy with its model-based
 * value monitor, the EMLP with its rotated inputs, the sine network adapted to 10 points by its
 * linearisation (NTK), the learned 2-pendulum (CHNN) rollout, and the 3-pendulum under RK4 (+ its
 * energies). Every call's status is checked; the first failure prints
 * `KEEL-FW error=<code name> at=<what>` and the run exits with failure.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "keel.h"
#include "semihosting.h"

/* The embedded files (assets.S). */
#define ASSET(sym) extern const uint8_t sym[]; extern const uint32_t sym##_len;
ASSET(digits_model)
ASSET(digits_samples)
ASSET(pendulum_policy)
ASSET(pendulum_value)
ASSET(chnn_model)
ASSET(emlp_model)
ASSET(emlp_samples)
ASSET(ntk_sine)

/* Markers around the measured calls (instruction counts from QEMU's trace, firmware/measure.sh's
   method): not inlined, with different bodies so the linker cannot fold them. */
__attribute__((noinline)) void bench_start(void) { __asm__ volatile("nop" ::: "memory"); }
__attribute__((noinline)) void bench_end(void) { __asm__ volatile("nop\n nop" ::: "memory"); }

/* --- output ------------------------------------------------------------------------------- */

static char line[4096];
static size_t used;

static void put(const char *s) {
    while (*s && used + 1 < sizeof line) line[used++] = *s++;
}
static void put_uint(uint32_t v) {
    char buf[11];
    int i = 10;
    buf[i] = 0;
    do buf[--i] = (char)('0' + v % 10); while ((v /= 10) && i > 0);
    put(buf + i);
}
static void put_bits(float f) {
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    char buf[9];
    for (int i = 7; i >= 0; i--, b >>= 4) buf[i] = "0123456789abcdef"[b & 0xf];
    buf[8] = 0;
    put(buf);
}
static void put_words(const float *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (i) put(",");
        put_bits(v[i]);
    }
}
static void flush(void) {
    line[used++] = '\n';
    line[used] = 0;
    semihosting_write(line);
    used = 0;
}

/* Reports a failed call and makes the run fail. */
static int failed(keel_status s, const char *what) {
    used = 0;
    put("KEEL-FW error=");
    put(keel_status_str(s));
    put(" at=");
    put(what);
    flush();
    return 1;
}
#define TRY(call)                                        \
    do {                                                 \
        keel_status s_ = (call);                         \
        if (s_ != KEEL_STATUS_OK) return failed(s_, #call); \
    } while (0)

/* Scratch shared by the checks (one runs at a time). */
static float scratch[2048];

/* --- 1. the paper's 3-pendulum, 1000 RK4 steps of 0.01 s ------------------------------------ */

#define LINKS 3
#define DT 0.01f
#define STEPS 1000
static const float ANGLES[LINKS] = {0.3f, -0.2f, 1.1f};
static const float RATES[LINKS] = {0.0f, 0.5f, -0.3f};

/* The pendulum's state between its measured first step and the rest of the run. */
static keel_dynamics pendulum;
static float pendulum_z[4 * LINKS], pendulum_e0, pendulum_t;

/* Builds the pendulum and takes its first step between the markers (first in the run, so the
   instruction trace reaches it at once). */
static int pendulum_start(void) {
    TRY(keel_dynamics_chain_pendulum_paper(&pendulum, LINKS));
    TRY(keel_dynamics_state_from_angles(&pendulum, ANGLES, RATES, LINKS, 0, pendulum_z, 4 * LINKS));
    TRY(keel_dynamics_energy(&pendulum, pendulum_z, 4 * LINKS, &pendulum_e0));
    bench_start();
    keel_status first = keel_rk4_step(&pendulum, DT, pendulum_t, pendulum_z, 4 * LINKS);
    bench_end();
    TRY(first);
    pendulum_t += DT;
    return 0;
}

/* The other 999 steps, then the `system=` and energy lines. */
static int pendulum_finish(void) {
    float e1;
    for (int k = 1; k < STEPS; k++) {
        TRY(keel_rk4_step(&pendulum, DT, pendulum_t, pendulum_z, 4 * LINKS));
        pendulum_t += DT;
    }
    TRY(keel_dynamics_energy(&pendulum, pendulum_z, 4 * LINKS, &e1));
    put("KEEL-FW system=chain-pendulum links=3 integrator=rk4 dtype=f32 dt=");
    put_bits(DT);
    put(" steps=");
    put_uint(STEPS);
    put(" angles=");
    put_words(ANGLES, LINKS);
    put(" rates=");
    put_words(RATES, LINKS);
    put(" state=");
    put_words(pendulum_z, 4 * LINKS);
    flush();
    put("KEEL-FW energy0=");
    put_bits(pendulum_e0);
    put(" energy=");
    put_bits(e1);
    flush();
    return 0;
}

/* --- 2. the digits MLP on 16 test digits ---------------------------------------------------- */

#define SAMPLES 16
#define PIXELS 64
#define CLASSES 10

static size_t argmax(const float *v, size_t n) {
    size_t best = 0;
    for (size_t c = 1; c < n; c++)
        if (v[c] > v[best]) best = c;
    return best;
}

static int run_digits(void) {
    static keel_model mlp;
    static float x[SAMPLES * PIXELS], logits[SAMPLES * CLASSES];
    size_t n, need;
    TRY(keel_model_load(&mlp, digits_model, digits_model_len));
    TRY(keel_tensor_read(digits_samples, digits_samples_len, "x", 1, x, SAMPLES * PIXELS, &n));
    if (n != SAMPLES * PIXELS) return failed(KEEL_STATUS_SHAPE_MISMATCH, "digits samples");
    TRY(keel_model_scratch_len(&mlp, &need));
    if (need > sizeof scratch / sizeof scratch[0]) return failed(KEEL_STATUS_SCRATCH_TOO_SMALL, "digits");
    bench_start();
    keel_status first = keel_model_eval(&mlp, x, PIXELS, logits, CLASSES, scratch, need);
    bench_end();
    TRY(first);
    put("KEEL-FW model=digits samples=16 classes=");
    for (size_t k = 0; k < SAMPLES; k++) {
        TRY(keel_model_eval(&mlp, x + k * PIXELS, PIXELS, logits + k * CLASSES, CLASSES, scratch,
                            need));
        if (k) put(",");
        put_uint((uint32_t)argmax(logits + k * CLASSES, CLASSES));
    }
    put(" logits=");
    put_words(logits, SAMPLES * CLASSES);
    flush();
    return 0;
}

/* --- 3. the O(5)-invariant EMLP on 8 inputs and their rotated copies ------------------------ */

#define EMLP_INPUTS 8
#define EMLP_DIM 10

static int run_emlp(void) {
    static keel_model emlp;
    static float x[EMLP_INPUTS * EMLP_DIM], y[2][EMLP_INPUTS];
    static const char *const names[2] = {"x", "xg"};
    size_t n, need;
    TRY(keel_model_load(&emlp, emlp_model, emlp_model_len));
    TRY(keel_model_scratch_len(&emlp, &need));
    if (need > sizeof scratch / sizeof scratch[0]) return failed(KEEL_STATUS_SCRATCH_TOO_SMALL, "emlp");
    for (int s = 0; s < 2; s++) {
        TRY(keel_tensor_read(emlp_samples, emlp_samples_len, names[s], strlen(names[s]), x,
                             EMLP_INPUTS * EMLP_DIM, &n));
        if (n != EMLP_INPUTS * EMLP_DIM) return failed(KEEL_STATUS_SHAPE_MISMATCH, "emlp samples");
        for (int k = 0; k < EMLP_INPUTS; k++)
            TRY(keel_model_eval(&emlp, x + k * EMLP_DIM, EMLP_DIM, &y[s][k], 1, scratch, need));
    }
    put("KEEL-FW model=emlp samples=8 y=");
    put_words(y[0], EMLP_INPUTS);
    put(" yg=");
    put_words(y[1], EMLP_INPUTS);
    flush();
    return 0;
}

/* --- 4. the learned 2-pendulum (CHNN), 100 RK4 steps of 0.03 s ------------------------------ */

static keel_dynamics chnn;
static const float CHNN_DT = 0.03f;
static float chnn_z0[8], chnn_z[8];

/* Loads the learned model and takes its first step between the markers (early in the run, as
   the Rust firmware does, so the instruction trace need not wade through the whole rollout). */
static int chnn_start(void) {
    static keel_dynamics real;
    static const float angles[2] = {0.5f, -0.4f}, rates[2] = {0.3f, 0.8f};
    TRY(keel_dynamics_chain_pendulum_paper(&real, 2));
    TRY(keel_dynamics_state_from_angles(&real, angles, rates, 2, 1, chnn_z0, 8));
    /* The learned model measures its constraint lengths on the real positions (z0's first 4). */
    TRY(keel_dynamics_load_learned(&chnn, chnn_model, chnn_model_len, chnn_z0, 4));
    TRY(keel_dynamics_from_velocity(&chnn, chnn_z0, chnn_z, 8));
    bench_start();
    keel_status first = keel_rk4_step(&chnn, CHNN_DT, 0.0f, chnn_z, 8);
    bench_end();
    TRY(first);
    return 0;
}

/* The other 99 steps and the `model=chnn` line. */
static int chnn_finish(void) {
    float zv[8];
    for (int k = 1; k < 100; k++) TRY(keel_rk4_step(&chnn, CHNN_DT, CHNN_DT * (float)k, chnn_z, 8));
    TRY(keel_dynamics_to_velocity(&chnn, chnn_z, zv, 8));
    put("KEEL-FW model=chnn links=2 dt=");
    put_bits(CHNN_DT);
    put(" steps=100 z0=");
    put_words(chnn_z0, 8);
    put(" state=");
    put_words(zv, 8);
    flush();
    return 0;
}

/* --- 5. Pendulum-v1 swing-up, closed loop, with the value monitor --------------------------- */

#define POLICY_STEPS 200

static int run_policy(void) {
    static keel_model policy, value;
    static keel_env env;
    static float value_scratch[1024];
    const float start[2] = {3.14159265358979f, 0.0f};
    float obs[3], obs0[3], action[1], reward, v, total, value0, value_sum, state[2];
    size_t need, value_need;
    TRY(keel_model_load(&policy, pendulum_policy, pendulum_policy_len));
    TRY(keel_model_load(&value, pendulum_value, pendulum_value_len));
    TRY(keel_model_scratch_len(&policy, &need));
    TRY(keel_model_scratch_len(&value, &value_need));
    if (need > sizeof scratch / sizeof scratch[0] ||
        value_need > sizeof value_scratch / sizeof value_scratch[0])
        return failed(KEEL_STATUS_SCRATCH_TOO_SMALL, "policy");
    TRY(keel_env_init(&env, KEEL_ENV_KIND_PENDULUM));
    TRY(keel_env_set_state(&env, start, 2, obs, 3));
    memcpy(obs0, obs, sizeof obs);
    /* One control step: the policy's action, then the environment. */
    bench_start();
    keel_status a = keel_model_eval(&policy, obs, 3, action, 1, scratch, need);
    keel_status e = a == KEEL_STATUS_OK
                        ? keel_env_step(&env, action, 1, obs, 3, &reward, NULL, NULL)
                        : a;
    bench_end();
    TRY(e);
    total = reward;
    bench_start();
    keel_status first = keel_model_eval(&value, obs0, 3, &value0, 1, value_scratch, value_need);
    bench_end();
    TRY(first);
    value_sum = value0;
    for (int k = 1; k < POLICY_STEPS; k++) {
        TRY(keel_model_eval(&value, obs, 3, &v, 1, value_scratch, value_need));
        value_sum += v;
        TRY(keel_model_eval(&policy, obs, 3, action, 1, scratch, need));
        TRY(keel_env_step(&env, action, 1, obs, 3, &reward, NULL, NULL));
        total += reward;
    }
    TRY(keel_env_state(&env, state, 2));
    put("KEEL-FW model=policy env=pendulum steps=");
    put_uint(POLICY_STEPS);
    put(" return=");
    put_bits(total);
    put(" state=");
    put_words(state, 2);
    put(" value0=");
    put_bits(value0);
    put(" value_sum=");
    put_bits(value_sum);
    flush();
    return 0;
}

/* --- 6. the sine network adapted to 10 points by its linearisation (finite NTK) ------------- */

/* The Rust firmware's task and points (drawn there from seed 11: y = A sin(w x + b) + noise),
   as IEEE-754 words, so both firmwares adapt to the same data and print the same line. */
#define NTK_POINTS 10
#define NTK_CAPACITY 32
#define NTK_TESTS 8
static const uint32_t NTK_TASK[3] = {0x408a0393, 0x40a2265d, 0x3ff9208d}; /* A, b, w */
static const uint32_t NTK_X[NTK_POINTS] = {0x3f841e5c, 0xc06ca85a, 0xbf88074a, 0xbff91002,
                                           0x405151a0, 0x408afa62, 0xbec8a130, 0x40677f1c,
                                           0xbfe57a4a, 0x3fb21cf8};
static const uint32_t NTK_Y[NTK_POINTS] = {0x40439c3f, 0xc0682521, 0x3f16a17a, 0x4085d154,
                                           0xc07de54e, 0x40644ad6, 0xc07d2732, 0xbff76907,
                                           0x408ab36a, 0x40877954};
static const float NTK_TEST[NTK_TESTS] = {-4.5f, -3.2f, -1.9f, -0.6f, 0.6f, 1.9f, 3.2f, 4.5f};
static const float NTK_NOISE = 0.01f;

static float from_bits(uint32_t b) {
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static int run_ntk(void) {
    static keel_model sine;
    static keel_ntk ntk;
    /* 32 points: N·R + N² + N = 32·162 + 1024 + 32 floats (24,960 B); the weight offset u has
       one float per parameter (1,761). */
    static float memory[NTK_CAPACITY * 162 + NTK_CAPACITY * NTK_CAPACITY + NTK_CAPACITY];
    static float u[1761];
    float task[3], x[NTK_POINTS], y[NTK_POINTS], mean[NTK_TESTS], var_f[NTK_TESTS],
        mean_jvp[NTK_TESTS], network[NTK_TESTS], p;
    size_t memory_len, need, u_len;
    for (int i = 0; i < 3; i++) task[i] = from_bits(NTK_TASK[i]);
    for (int i = 0; i < NTK_POINTS; i++) {
        x[i] = from_bits(NTK_X[i]);
        y[i] = from_bits(NTK_Y[i]);
    }
    TRY(keel_model_load(&sine, ntk_sine, ntk_sine_len));
    TRY(keel_ntk_sizes(&sine, NTK_CAPACITY, &memory_len, &need));
    if (memory_len != sizeof memory / sizeof memory[0] || need > sizeof scratch / sizeof scratch[0])
        return failed(KEEL_STATUS_SCRATCH_TOO_SMALL, "ntk sizes");
    TRY(keel_ntk_init(&ntk, &sine, KEEL_NTK_PRIOR_NETWORK, NTK_NOISE, memory, memory_len));
    TRY(keel_ntk_weight_offset_len(&ntk, &u_len));
    if (u_len != sizeof u / sizeof u[0]) return failed(KEEL_STATUS_SHAPE_MISMATCH, "ntk u");
    /* The four measured calls, in the Rust firmware's order. */
    bench_start();
    keel_status r = keel_ntk_adapt(&ntk, x, NTK_POINTS, y, NTK_POINTS, scratch, need);
    bench_end();
    TRY(r);
    bench_start();
    r = keel_ntk_predict(&ntk, &NTK_TEST[0], 1, scratch, need, &p, NULL, NULL);
    bench_end();
    TRY(r);
    bench_start();
    r = keel_ntk_weight_offset(&ntk, u, u_len, scratch, need);
    bench_end();
    TRY(r);
    bench_start();
    r = keel_ntk_predict_mean_jvp(&ntk, &NTK_TEST[0], 1, u, u_len, scratch, need, &p);
    bench_end();
    TRY(r);
    for (int k = 0; k < NTK_TESTS; k++) {
        TRY(keel_ntk_predict(&ntk, &NTK_TEST[k], 1, scratch, need, &mean[k], &var_f[k], NULL));
        TRY(keel_ntk_predict_mean_jvp(&ntk, &NTK_TEST[k], 1, u, u_len, scratch, need,
                                      &mean_jvp[k]));
        TRY(keel_model_eval(&sine, &NTK_TEST[k], 1, &network[k], 1, scratch,
                            sizeof scratch / sizeof scratch[0]));
    }
    put("KEEL-FW model=ntk mean=network noise=");
    put_bits(NTK_NOISE);
    put(" seed=11 task=");
    put_words(task, 3);
    put(" capacity=");
    put_uint(NTK_CAPACITY);
    put(" x=");
    put_words(x, NTK_POINTS);
    put(" y=");
    put_words(y, NTK_POINTS);
    put(" test=");
    put_words(NTK_TEST, NTK_TESTS);
    put(" mu=");
    put_words(mean, NTK_TESTS);
    put(" var_f=");
    put_words(var_f, NTK_TESTS);
    put(" mu_jvp=");
    put_words(mean_jvp, NTK_TESTS);
    put(" network=");
    put_words(network, NTK_TESTS);
    flush();
    return 0;
}

int main(void) {
    /* A header from another build of the library would misplace every handle. */
    TRY(keel_abi_check(sizeof(keel_model), sizeof(keel_dynamics), sizeof(keel_wiski),
                       sizeof(keel_env), sizeof(keel_ntk)));
    /* The measured regions come first (instruction counts: measure.sh), in the Rust firmware's
       order: an RK4 step of the 3-pendulum, of the learned CHNN, a digit classification, a
       closed-loop control step and a value estimate, then the NTK adaptation's four calls. */
    if (pendulum_start() || chnn_start() || run_digits() || run_policy() || run_emlp() ||
        run_ntk() || chnn_finish() || pendulum_finish())
        return 1;
    return 0;
}
