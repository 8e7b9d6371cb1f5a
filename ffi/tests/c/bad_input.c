/*
 * bad_input.c: calls every function of keel.h with bad input (null pointers, misaligned
 * pointers, short and absurd lengths, corrupt model bytes, handles of the wrong kind or never
 * initialised, NaN inputs, overlapping buffers) and checks the exact status codes; then checks
 * that good input still works after all that. Built and run by ffi/tests/c_api.rs
 * (`cargo test -p keel-ffi --test c_api`).
 *
 * Usage: bad_input ASSETS_DIR     (firmware/assets: the exported models the firmware embeds)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keel.h"

static int checks, failures;

#define EXPECT(want, call)                                                                    \
    do {                                                                                      \
        keel_status got_ = (call);                                                            \
        checks++;                                                                             \
        if (got_ != (want)) {                                                                 \
            fprintf(stderr, "%s:%d: %s\n  returned %s, expected %s\n", __FILE__, __LINE__,    \
                    #call, keel_status_str(got_), keel_status_str(want));                     \
            failures++;                                                                       \
        }                                                                                     \
    } while (0)

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        checks++;                                                                             \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);          \
            failures++;                                                                       \
        }                                                                                     \
    } while (0)

typedef struct {
    uint8_t *bytes;
    size_t len;
} file;

static file read_asset(const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    file r = {malloc((size_t)n), (size_t)n};
    if (!r.bytes || fread(r.bytes, 1, r.len, f) != r.len) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(2);
    }
    fclose(f);
    return r;
}

/* A copy of a file (the C side may corrupt it freely). */
static file copy(file f) {
    file c = {malloc(f.len), f.len};
    memcpy(c.bytes, f.bytes, f.len);
    return c;
}

/* Whether a code is one keel_status_str knows (every code the API returns must be). */
static int known(keel_status s) { return strcmp(keel_status_str(s), "KEEL_STATUS_UNKNOWN") != 0; }

static void test_status_names(void) {
    static const keel_status all[] = {
        KEEL_STATUS_OK, KEEL_STATUS_NON_FINITE, KEEL_STATUS_INVALID_PARAMETER,
        KEEL_STATUS_TRUNCATED, KEEL_STATUS_INVALID_CONFIG, KEEL_STATUS_CORE_OTHER,
        KEEL_STATUS_NULL_POINTER, KEEL_STATUS_BUFFER_TOO_SMALL, KEEL_STATUS_WRONG_KIND,
        KEEL_STATUS_INVALID_HANDLE, KEEL_STATUS_MISALIGNED, KEEL_STATUS_UNSUPPORTED_SIZE,
        KEEL_STATUS_INVALID_ARGUMENT, KEEL_STATUS_BUFFER_OVERLAP, KEEL_STATUS_PANIC};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) CHECK(known(all[i]));
    for (int32_t c = 0; c <= 33; c++) CHECK(known(c));
    for (int32_t c = 100; c <= 108; c++) CHECK(known(c));
    CHECK(strcmp(keel_status_str(KEEL_STATUS_NULL_POINTER), "KEEL_STATUS_NULL_POINTER") == 0);
    CHECK(strcmp(keel_status_str(KEEL_STATUS_OK), "KEEL_STATUS_OK") == 0);
    const int32_t unknown[] = {-1, 34, 99, 109, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        CHECK(keel_status_str(unknown[i]) != NULL);
        CHECK(!known(unknown[i]));
    }
    EXPECT(KEEL_STATUS_OK, keel_abi_check(sizeof(keel_model), sizeof(keel_dynamics),
                                          sizeof(keel_wiski), sizeof(keel_env), sizeof(keel_ntk)));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT,
           keel_abi_check(sizeof(keel_model) - 8, sizeof(keel_dynamics), sizeof(keel_wiski),
                          sizeof(keel_env), sizeof(keel_ntk)));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT,
           keel_abi_check(sizeof(keel_model), sizeof(keel_dynamics), sizeof(keel_wiski),
                          sizeof(keel_env), sizeof(keel_ntk) + 8));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_abi_check(0, 0, 0, 0, 0));
}

/* Aligned storage one byte off, for the misalignment checks. */
static _Alignas(8) unsigned char skewed[sizeof(keel_model) + 16];

static void test_model_load(file mlp, file chnn) {
    static keel_model m;
    int32_t kind = -1;
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_kind_of(NULL, mlp.len, &kind));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_kind_of(mlp.bytes, mlp.len, NULL));
    EXPECT(KEEL_STATUS_TRUNCATED, keel_kind_of(mlp.bytes, 0, &kind));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_kind_of(mlp.bytes, SIZE_MAX, &kind));
    EXPECT(KEEL_STATUS_OK, keel_kind_of(mlp.bytes, mlp.len, &kind));
    CHECK(kind == KEEL_KIND_MLP);
    EXPECT(KEEL_STATUS_OK, keel_kind_of(chnn.bytes, chnn.len, &kind));
    CHECK(kind == KEEL_KIND_CHNN);

    EXPECT(KEEL_STATUS_NULL_POINTER, keel_model_load(NULL, mlp.bytes, mlp.len));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_model_load(&m, NULL, mlp.len));
    EXPECT(KEEL_STATUS_MISALIGNED, keel_model_load((keel_model *)(skewed + 1), mlp.bytes, mlp.len));
    EXPECT(KEEL_STATUS_MISALIGNED, keel_model_load((keel_model *)(skewed + 4), mlp.bytes, mlp.len));
    EXPECT(KEEL_STATUS_TRUNCATED, keel_model_load(&m, mlp.bytes, 0));
    EXPECT(KEEL_STATUS_TRUNCATED, keel_model_load(&m, mlp.bytes, 7));
    EXPECT(KEEL_STATUS_TRUNCATED, keel_model_load(&m, mlp.bytes, 100));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_model_load(&m, mlp.bytes, SIZE_MAX));
    EXPECT(KEEL_STATUS_OFFSETS_OUT_OF_BOUNDS, keel_model_load(&m, mlp.bytes, mlp.len - 1));
    EXPECT(KEEL_STATUS_WRONG_KIND, keel_model_load(&m, chnn.bytes, chnn.len));
    /* A failed load leaves the handle invalid, even after a successful one. */
    EXPECT(KEEL_STATUS_OK, keel_model_load(&m, mlp.bytes, mlp.len));
    EXPECT(KEEL_STATUS_WRONG_KIND, keel_model_load(&m, chnn.bytes, chnn.len));
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_model_kind(&m, &kind));

    /* Corrupt headers. */
    file c = copy(mlp);
    c.bytes[8] = 'x'; /* the header's opening brace */
    EXPECT(KEEL_STATUS_INVALID_JSON, keel_model_load(&m, c.bytes, c.len));
    memcpy(c.bytes, mlp.bytes, mlp.len);
    c.bytes[0] ^= 0x40; /* the header length */
    keel_status s = keel_model_load(&m, c.bytes, c.len);
    CHECK(s != KEEL_STATUS_OK && known(s));
    memset(c.bytes, 0xff, 8); /* a header length of 2^64 - 1 */
    EXPECT(KEEL_STATUS_HEADER_TOO_LARGE, keel_model_load(&m, c.bytes, c.len));
    memcpy(c.bytes, mlp.bytes, mlp.len);
    char *kind_at = memmem(c.bytes, c.len, "\"mlp\"", 5);
    CHECK(kind_at != NULL);
    if (kind_at) {
        memcpy(kind_at, "\"xyz\"", 5); /* an unknown keel.kind */
        EXPECT(KEEL_STATUS_INVALID_CONFIG, keel_model_load(&m, c.bytes, c.len));
        EXPECT(KEEL_STATUS_INVALID_CONFIG, keel_kind_of(c.bytes, c.len, &kind));
        memcpy(kind_at, "\"bma\"", 5); /* the wrong kind for these tensors */
        s = keel_model_load(&m, c.bytes, c.len);
        CHECK(s != KEEL_STATUS_OK && known(s));
    }
    /* Every single-byte corruption of the header region: a code, never a crash. */
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; i--) header_len = header_len << 8 | mlp.bytes[i];
    int rejected = 0, accepted = 0;
    for (size_t at = 0; at < 8 + header_len; at++) {
        const uint8_t values[] = {0x00, '"', '}', '9', 0xff};
        for (size_t v = 0; v < sizeof values; v++) {
            memcpy(c.bytes, mlp.bytes, mlp.len);
            if (c.bytes[at] == values[v]) continue;
            c.bytes[at] = values[v];
            s = keel_model_load(&m, c.bytes, c.len);
            checks++;
            if (!known(s)) {
                fprintf(stderr, "corruption at byte %zu: unknown code %d\n", at, (int)s);
                failures++;
            }
            if (s == KEEL_STATUS_OK) accepted++; else rejected++;
        }
    }
    /* Most header bytes matter; a few (e.g. digits of a name nobody reads) may not. */
    CHECK(rejected > 4 * accepted);
    printf("header corruptions: %d rejected, %d loaded\n", rejected, accepted);
    free(c.bytes);
}

static void test_model_eval(file mlp, file policy, file value, file bma, file emlp) {
    static keel_model m, zeroed;
    float x[64] = {0}, y[10], scratch[2048];
    int32_t kind;
    size_t n = 0;
    memset(&zeroed, 0, sizeof zeroed);
    /* Queries on bad handles. */
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_model_kind(NULL, &kind));
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_model_kind(&zeroed, &kind));
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_model_inputs(&zeroed, &n));
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_model_outputs(&zeroed, &n));
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_model_scratch_len(&zeroed, &n));
    EXPECT(KEEL_STATUS_MISALIGNED, keel_model_kind((const keel_model *)(skewed + 2), &kind));
    EXPECT(KEEL_STATUS_INVALID_HANDLE,
           keel_model_eval(&zeroed, x, 64, y, 10, scratch, 2048));

    EXPECT(KEEL_STATUS_OK, keel_model_load(&m, mlp.bytes, mlp.len));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_model_kind(&m, NULL));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_model_inputs(&m, NULL));
    EXPECT(KEEL_STATUS_OK, keel_model_kind(&m, &kind));
    CHECK(kind == KEEL_KIND_MLP);
    EXPECT(KEEL_STATUS_OK, keel_model_inputs(&m, &n));
    CHECK(n == 64);
    EXPECT(KEEL_STATUS_OK, keel_model_outputs(&m, &n));
    CHECK(n == 10);
    size_t need = 0;
    EXPECT(KEEL_STATUS_OK, keel_model_scratch_len(&m, &need));
    CHECK(need > 0 && need <= 2048);

    EXPECT(KEEL_STATUS_NULL_POINTER, keel_model_eval(NULL, x, 64, y, 10, scratch, need));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_model_eval(&m, NULL, 64, y, 10, scratch, need));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_model_eval(&m, x, 64, NULL, 10, scratch, need));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_model_eval(&m, x, 64, y, 10, NULL, need));
    EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_model_eval(&m, x, 63, y, 10, scratch, need));
    EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_model_eval(&m, x, 0, y, 10, scratch, need));
    EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_model_eval(&m, x, 64, y, 9, scratch, need));
    EXPECT(KEEL_STATUS_SCRATCH_TOO_SMALL, keel_model_eval(&m, x, 64, y, 10, scratch, need - 1));
    EXPECT(KEEL_STATUS_SCRATCH_TOO_SMALL, keel_model_eval(&m, x, 64, y, 10, scratch, 0));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_model_eval(&m, x, SIZE_MAX, y, 10, scratch, need));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_model_eval(&m, x, 64, y, 10, scratch, SIZE_MAX / 2));
    EXPECT(KEEL_STATUS_MISALIGNED,
           keel_model_eval(&m, (const float *)((const char *)x + 1), 64, y, 10, scratch, need));
    EXPECT(KEEL_STATUS_MISALIGNED,
           keel_model_eval(&m, x, 64, (float *)((char *)y + 2), 10, scratch, need));
    /* Overlapping buffers. */
    EXPECT(KEEL_STATUS_BUFFER_OVERLAP, keel_model_eval(&m, x, 64, x, 10, scratch, need));
    EXPECT(KEEL_STATUS_BUFFER_OVERLAP, keel_model_eval(&m, x, 64, x + 60, 10, scratch, need));
    EXPECT(KEEL_STATUS_BUFFER_OVERLAP, keel_model_eval(&m, x, 64, y, 10, x, need));
    EXPECT(KEEL_STATUS_BUFFER_OVERLAP, keel_model_eval(&m, scratch, 64, y, 10, scratch + 10, need));
    /* NaN and infinite inputs. */
    x[5] = NAN;
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_model_eval(&m, x, 64, y, 10, scratch, need));
    x[5] = INFINITY;
    keel_status s = keel_model_eval(&m, x, 64, y, 10, scratch, need);
    CHECK(s == KEEL_STATUS_NON_FINITE || s == KEEL_STATUS_OK);
    if (s == KEEL_STATUS_OK)
        for (int i = 0; i < 10; i++) CHECK(isfinite(y[i]));
    x[5] = 0.0f;
    EXPECT(KEEL_STATUS_OK, keel_model_eval(&m, x, 64, y, 10, scratch, need));
    for (int i = 0; i < 10; i++) CHECK(isfinite(y[i]));

    /* The other kinds load, report their sizes, and evaluate. */
    EXPECT(KEEL_STATUS_OK, keel_model_load(&m, policy.bytes, policy.len));
    EXPECT(KEEL_STATUS_OK, keel_model_kind(&m, &kind));
    CHECK(kind == KEEL_KIND_POLICY);
    EXPECT(KEEL_STATUS_OK, keel_model_scratch_len(&m, &need));
    float obs[3] = {-1.0f, 0.0f, 0.0f}, act[1];
    EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_model_eval(&m, obs, 3, y, 2, scratch, need));
    EXPECT(KEEL_STATUS_OK, keel_model_eval(&m, obs, 3, act, 1, scratch, need));
    CHECK(act[0] >= -1.0f && act[0] <= 1.0f);

    EXPECT(KEEL_STATUS_OK, keel_model_load(&m, value.bytes, value.len));
    EXPECT(KEEL_STATUS_OK, keel_model_kind(&m, &kind));
    CHECK(kind == KEEL_KIND_VALUE);
    EXPECT(KEEL_STATUS_OK, keel_model_scratch_len(&m, &need));
    CHECK(need <= 2048);
    float v[2];
    EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_model_eval(&m, obs, 3, v, 2, scratch, need));
    EXPECT(KEEL_STATUS_SCRATCH_TOO_SMALL, keel_model_eval(&m, obs, 3, v, 1, scratch, need - 1));
    EXPECT(KEEL_STATUS_OK, keel_model_eval(&m, obs, 3, v, 1, scratch, need));
    CHECK(isfinite(v[0]));

    EXPECT(KEEL_STATUS_OK, keel_model_load(&m, bma.bytes, bma.len));
    EXPECT(KEEL_STATUS_OK, keel_model_kind(&m, &kind));
    CHECK(kind == KEEL_KIND_BMA);
    EXPECT(KEEL_STATUS_OK, keel_model_scratch_len(&m, &need));
    EXPECT(KEEL_STATUS_OK, keel_model_eval(&m, x, 64, y, 10, scratch, need));
    float total = 0.0f;
    for (int i = 0; i < 10; i++) {
        CHECK(y[i] >= 0.0f && y[i] <= 1.0f);
        total += y[i];
    }
    CHECK(fabsf(total - 1.0f) < 1e-4f);

    EXPECT(KEEL_STATUS_OK, keel_model_load(&m, emlp.bytes, emlp.len));
    EXPECT(KEEL_STATUS_OK, keel_model_kind(&m, &kind));
    CHECK(kind == KEEL_KIND_EMLP);
    EXPECT(KEEL_STATUS_OK, keel_model_inputs(&m, &n));
    CHECK(n == 10);
    EXPECT(KEEL_STATUS_OK, keel_model_scratch_len(&m, &need));
    EXPECT(KEEL_STATUS_OK, keel_model_eval(&m, x, 10, y, 1, scratch, need));
    CHECK(isfinite(y[0]));
}

static void test_dynamics(file mlp, file chnn) {
    static keel_dynamics d, learned, zeroed;
    static keel_model m;
    memset(&zeroed, 0, sizeof zeroed);
    float z[12], zv[12], e0, e1;
    const float angles[3] = {0.3f, -0.2f, 1.1f}, rates[3] = {0.0f, 0.5f, -0.3f};
    const float ones[3] = {1, 1, 1}, bad[3] = {1, -1, 1}, nan3[3] = {1, NAN, 1};

    EXPECT(KEEL_STATUS_NULL_POINTER, keel_dynamics_chain_pendulum_paper(NULL, 3));
    EXPECT(KEEL_STATUS_MISALIGNED,
           keel_dynamics_chain_pendulum_paper((keel_dynamics *)(skewed + 4), 3));
    EXPECT(KEEL_STATUS_UNSUPPORTED_SIZE, keel_dynamics_chain_pendulum_paper(&d, 0));
    EXPECT(KEEL_STATUS_UNSUPPORTED_SIZE, keel_dynamics_chain_pendulum_paper(&d, 4));
    EXPECT(KEEL_STATUS_UNSUPPORTED_SIZE, keel_dynamics_chain_pendulum_paper(&d, SIZE_MAX));
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_rk4_step(&d, 0.01f, 0.0f, z, 12));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_dynamics_chain_pendulum(&d, 3, NULL, ones, 9.81f));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_dynamics_chain_pendulum(&d, 3, ones, NULL, 9.81f));
    EXPECT(KEEL_STATUS_INVALID_PARAMETER, keel_dynamics_chain_pendulum(&d, 3, bad, ones, 9.81f));
    EXPECT(KEEL_STATUS_INVALID_PARAMETER, keel_dynamics_chain_pendulum(&d, 3, ones, bad, 9.81f));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_dynamics_chain_pendulum(&d, 3, nan3, ones, 9.81f));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_dynamics_chain_pendulum(&d, 3, ones, ones, NAN));
    EXPECT(KEEL_STATUS_INVALID_PARAMETER,
           keel_dynamics_chain_pendulum(&d, 3, ones, ones, INFINITY));
    EXPECT(KEEL_STATUS_UNSUPPORTED_SIZE, keel_dynamics_chain_pendulum(&d, 5, ones, ones, 9.81f));
    EXPECT(KEEL_STATUS_OK, keel_dynamics_chain_pendulum(&d, 3, ones, ones, 9.81f));

    EXPECT(KEEL_STATUS_OK, keel_dynamics_chain_pendulum_paper(&d, 3));
    int32_t kind;
    size_t nodes, len;
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_dynamics_info(NULL, &kind, &nodes, &len));
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_dynamics_info(&zeroed, &kind, &nodes, &len));
    EXPECT(KEEL_STATUS_OK, keel_dynamics_info(&d, NULL, NULL, NULL));
    EXPECT(KEEL_STATUS_OK, keel_dynamics_info(&d, &kind, &nodes, &len));
    CHECK(kind == KEEL_KIND_CHAIN_PENDULUM && nodes == 3 && len == 12);

    EXPECT(KEEL_STATUS_NULL_POINTER, keel_dynamics_state_from_angles(&d, NULL, rates, 3, 0, z, 12));
    EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_dynamics_state_from_angles(&d, angles, rates, 2, 0, z, 8));
    EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_dynamics_state_from_angles(&d, angles, rates, 3, 0, z, 11));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_dynamics_state_from_angles(&d, nan3, rates, 3, 0, z, 12));
    EXPECT(KEEL_STATUS_BUFFER_OVERLAP,
           keel_dynamics_state_from_angles(&d, z, rates, 3, 0, z, 12));
    EXPECT(KEEL_STATUS_OK, keel_dynamics_state_from_angles(&d, angles, rates, 3, 0, z, 12));

    /* RK4 with bad steps, times and states; on error the state is unchanged. */
    float before[12];
    memcpy(before, z, sizeof z);
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_rk4_step(NULL, 0.01f, 0.0f, z, 12));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_rk4_step(&d, 0.01f, 0.0f, NULL, 12));
    EXPECT(KEEL_STATUS_INVALID_PARAMETER, keel_rk4_step(&d, 0.0f, 0.0f, z, 12));
    EXPECT(KEEL_STATUS_INVALID_PARAMETER, keel_rk4_step(&d, -0.01f, 0.0f, z, 12));
    EXPECT(KEEL_STATUS_INVALID_PARAMETER, keel_rk4_step(&d, INFINITY, 0.0f, z, 12));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_rk4_step(&d, NAN, 0.0f, z, 12));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_rk4_step(&d, 0.01f, NAN, z, 12));
    EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_rk4_step(&d, 0.01f, 0.0f, z, 8));
    EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_rk4_step(&d, 0.01f, 0.0f, z, 0));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_rk4_step(&d, 0.01f, 0.0f, z, SIZE_MAX));
    EXPECT(KEEL_STATUS_MISALIGNED, keel_rk4_step(&d, 0.01f, 0.0f, (float *)((char *)z + 1), 12));
    CHECK(memcmp(before, z, sizeof z) == 0);
    float broken[12];
    memcpy(broken, z, sizeof z);
    broken[7] = NAN;
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_rk4_step(&d, 0.01f, 0.0f, broken, 12));
    broken[7] = INFINITY;
    keel_status s = keel_rk4_step(&d, 0.01f, 0.0f, broken, 12);
    CHECK(s == KEEL_STATUS_NON_FINITE || s == KEEL_STATUS_SINGULAR);

    EXPECT(KEEL_STATUS_NULL_POINTER, keel_dynamics_energy(&d, z, 12, NULL));
    EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_dynamics_energy(&d, z, 6, &e0));
    EXPECT(KEEL_STATUS_OK, keel_dynamics_energy(&d, z, 12, &e0));
    for (int k = 0; k < 1000; k++) EXPECT(KEEL_STATUS_OK, keel_rk4_step(&d, 0.01f, 0.01f * k, z, 12));
    EXPECT(KEEL_STATUS_OK, keel_dynamics_energy(&d, z, 12, &e1));
    CHECK(fabsf(e1 - e0) < 1e-3f * fabsf(e0));

    EXPECT(KEEL_STATUS_BUFFER_OVERLAP, keel_dynamics_to_velocity(&d, z, z, 12));
    EXPECT(KEEL_STATUS_BUFFER_OVERLAP, keel_dynamics_to_velocity(&d, z, z + 4, 12));
    EXPECT(KEEL_STATUS_OK, keel_dynamics_to_velocity(&d, z, zv, 12));
    EXPECT(KEEL_STATUS_OK, keel_dynamics_from_velocity(&d, zv, before, 12));
    for (int i = 0; i < 12; i++) CHECK(fabsf(before[i] - z[i]) <= 1e-5f * (1.0f + fabsf(z[i])));

    /* Learned dynamics: wrong kinds, bad x0, corrupt bytes. */
    EXPECT(KEEL_STATUS_OK, keel_dynamics_chain_pendulum_paper(&d, 2));
    EXPECT(KEEL_STATUS_OK, keel_dynamics_state_from_angles(&d, angles, rates, 2, 1, zv, 8));
    EXPECT(KEEL_STATUS_WRONG_KIND, keel_dynamics_load_learned(&learned, mlp.bytes, mlp.len, zv, 4));
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_rk4_step(&learned, 0.03f, 0.0f, z, 8));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_dynamics_load_learned(&learned, chnn.bytes, chnn.len, NULL, 4));
    EXPECT(KEEL_STATUS_UNSUPPORTED_SIZE, keel_dynamics_load_learned(&learned, chnn.bytes, chnn.len, zv, 3));
    EXPECT(KEEL_STATUS_UNSUPPORTED_SIZE, keel_dynamics_load_learned(&learned, chnn.bytes, chnn.len, zv, 8));
    EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_dynamics_load_learned(&learned, chnn.bytes, chnn.len, z, 6));
    EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_dynamics_load_learned(&learned, chnn.bytes, chnn.len, z, 2));
    float nan_x0[4] = {0.1f, NAN, 0.2f, 0.3f};
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_dynamics_load_learned(&learned, chnn.bytes, chnn.len, nan_x0, 4));
    EXPECT(KEEL_STATUS_TRUNCATED, keel_dynamics_load_learned(&learned, chnn.bytes, 5, zv, 4));
    EXPECT(KEEL_STATUS_OK, keel_dynamics_load_learned(&learned, chnn.bytes, chnn.len, zv, 4));
    EXPECT(KEEL_STATUS_WRONG_KIND, keel_model_load(&m, chnn.bytes, chnn.len));
    EXPECT(KEEL_STATUS_OK, keel_dynamics_info(&learned, &kind, &nodes, &len));
    CHECK(kind == KEEL_KIND_CHNN && nodes == 2 && len == 8);
    EXPECT(KEEL_STATUS_WRONG_KIND, keel_dynamics_state_from_angles(&learned, angles, rates, 2, 0, z, 8));
    EXPECT(KEEL_STATUS_OK, keel_dynamics_from_velocity(&learned, zv, z, 8));
    EXPECT(KEEL_STATUS_OK, keel_dynamics_energy(&learned, z, 8, &e0));
    for (int k = 0; k < 10; k++) EXPECT(KEEL_STATUS_OK, keel_rk4_step(&learned, 0.03f, 0.03f * k, z, 8));
    EXPECT(KEEL_STATUS_OK, keel_dynamics_energy(&learned, z, 8, &e1));
    CHECK(fabsf(e1 - e0) < 1e-2f * (1.0f + fabsf(e0)));
    EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_rk4_step(&learned, 0.03f, 0.0f, z, 12));
    /* The same file marked `clnn` (same length, so every offset stays valid) loads as a
       Lagrangian model: its states are (x, v), so the conversions are copies. */
    file clnn = copy(chnn);
    char *kind_at = memmem(clnn.bytes, clnn.len, "\"chnn\"", 6);
    CHECK(kind_at != NULL);
    if (kind_at) {
        memcpy(kind_at, "\"clnn\"", 6);
        EXPECT(KEEL_STATUS_OK, keel_dynamics_load_learned(&learned, clnn.bytes, clnn.len, zv, 4));
        EXPECT(KEEL_STATUS_OK, keel_dynamics_info(&learned, &kind, &nodes, &len));
        CHECK(kind == KEEL_KIND_CLNN && nodes == 2 && len == 8);
        EXPECT(KEEL_STATUS_OK, keel_dynamics_from_velocity(&learned, zv, z, 8));
        CHECK(memcmp(z, zv, sizeof(float) * 8) == 0);
        EXPECT(KEEL_STATUS_OK, keel_dynamics_energy(&learned, z, 8, &e0));
        EXPECT(KEEL_STATUS_OK, keel_rk4_step(&learned, 0.03f, 0.0f, z, 8));
        for (int i = 0; i < 8; i++) CHECK(isfinite(z[i]));
        CHECK(memcmp(z, zv, sizeof(float) * 8) != 0);
        EXPECT(KEEL_STATUS_OK, keel_dynamics_to_velocity(&learned, z, before, 8));
        CHECK(memcmp(z, before, sizeof(float) * 8) == 0);
        EXPECT(KEEL_STATUS_WRONG_KIND, keel_model_load(&m, clnn.bytes, clnn.len));
    }
    free(clnn.bytes);
    /* A handle of another type is not a dynamics handle. */
    EXPECT(KEEL_STATUS_OK, keel_model_load(&m, mlp.bytes, mlp.len));
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_rk4_step((const keel_dynamics *)&m, 0.01f, 0.0f, z, 8));
}

static void test_wiski(void) {
    static keel_wiski gp, zeroed;
    memset(&zeroed, 0, sizeof zeroed);
    keel_wiski_config cfg = {.dims = 1, .size = {32, 0}, .lo = {-3, 0}, .hi = {3, 0},
                             .convention = 0, .family = 0, .outputscale = 1.3f,
                             .lengthscale = {0.7f, 0}, .noise = 0.04f};
    size_t mem_len = 0, scr_len = 0;
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_wiski_sizes(NULL, &mem_len, &scr_len));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_wiski_sizes(&cfg, NULL, &scr_len));
    EXPECT(KEEL_STATUS_OK, keel_wiski_sizes(&cfg, &mem_len, &scr_len));
    CHECK(mem_len == 2 * 32 * 32 + 4 * 32 && scr_len == 2 * 32 * 32);
    keel_wiski_config c = cfg;
    c.dims = 0;
    EXPECT(KEEL_STATUS_UNSUPPORTED_SIZE, keel_wiski_sizes(&c, &mem_len, &scr_len));
    c.dims = 3;
    EXPECT(KEEL_STATUS_UNSUPPORTED_SIZE, keel_wiski_sizes(&c, &mem_len, &scr_len));
    c = cfg;
    c.dims = 2;
    c.size[0] = 65536;
    c.size[1] = 65536;
    EXPECT(KEEL_STATUS_UNSUPPORTED_SIZE, keel_wiski_sizes(&c, &mem_len, &scr_len));
    c.size[0] = UINT32_MAX;
    c.size[1] = UINT32_MAX;
    EXPECT(KEEL_STATUS_UNSUPPORTED_SIZE, keel_wiski_sizes(&c, &mem_len, &scr_len));
    c = cfg;
    c.size[0] = 0;
    EXPECT(KEEL_STATUS_UNSUPPORTED_SIZE, keel_wiski_sizes(&c, &mem_len, &scr_len));

    EXPECT(KEEL_STATUS_OK, keel_wiski_sizes(&cfg, &mem_len, &scr_len));
    float *mem = malloc(mem_len * sizeof(float)), *scr = malloc(scr_len * sizeof(float));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_wiski_init(NULL, &cfg, mem, mem_len, scr, scr_len));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_wiski_init(&gp, NULL, mem, mem_len, scr, scr_len));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_wiski_init(&gp, &cfg, NULL, mem_len, scr, scr_len));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_wiski_init(&gp, &cfg, mem, mem_len, NULL, scr_len));
    EXPECT(KEEL_STATUS_COUNT_MISMATCH, keel_wiski_init(&gp, &cfg, mem, mem_len - 1, scr, scr_len));
    EXPECT(KEEL_STATUS_SCRATCH_TOO_SMALL, keel_wiski_init(&gp, &cfg, mem, mem_len, scr, scr_len - 1));
    EXPECT(KEEL_STATUS_BUFFER_OVERLAP, keel_wiski_init(&gp, &cfg, mem, mem_len, mem + 10, scr_len));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_wiski_init(&gp, &cfg, mem, SIZE_MAX, scr, scr_len));
    c = cfg;
    c.family = 4;
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_wiski_init(&gp, &c, mem, mem_len, scr, scr_len));
    c = cfg;
    c.convention = 2;
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_wiski_init(&gp, &c, mem, mem_len, scr, scr_len));
    c = cfg;
    c.lengthscale[0] = NAN;
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_wiski_init(&gp, &c, mem, mem_len, scr, scr_len));
    c = cfg;
    c.noise = 0.0f;
    EXPECT(KEEL_STATUS_INVALID_PARAMETER, keel_wiski_init(&gp, &c, mem, mem_len, scr, scr_len));
    c = cfg;
    c.outputscale = -1.0f;
    EXPECT(KEEL_STATUS_INVALID_PARAMETER, keel_wiski_init(&gp, &c, mem, mem_len, scr, scr_len));
    c = cfg;
    c.hi[0] = c.lo[0];
    EXPECT(KEEL_STATUS_INVALID_PARAMETER, keel_wiski_init(&gp, &c, mem, mem_len, scr, scr_len));
    c = cfg;
    c.size[0] = 2;
    keel_status s = keel_wiski_init(&gp, &c, mem, 2 * 2 * 2 + 4 * 2, scr, scr_len);
    CHECK(s != KEEL_STATUS_OK && known(s));
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_wiski_observe(&gp, (float[]){0.0f}, 1, 1.0f));

    EXPECT(KEEL_STATUS_OK, keel_wiski_init(&gp, &cfg, mem, mem_len, scr, scr_len));
    const float x0 = 0.5f;
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_wiski_observe(NULL, &x0, 1, 1.0f));
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_wiski_observe(&zeroed, &x0, 1, 1.0f));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_wiski_observe(&gp, NULL, 1, 1.0f));
    EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_wiski_observe(&gp, &x0, 2, 1.0f));
    EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_wiski_observe(&gp, &x0, 0, 1.0f));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_wiski_observe(&gp, &x0, 1, NAN));
    EXPECT(KEEL_STATUS_NON_FINITE, keel_wiski_observe(&gp, &x0, 1, INFINITY));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_wiski_observe(&gp, (float[]){NAN}, 1, 1.0f));
    EXPECT(KEEL_STATUS_OUT_OF_GRID, keel_wiski_observe(&gp, (float[]){7.0f}, 1, 1.0f));
    EXPECT(KEEL_STATUS_OUT_OF_GRID, keel_wiski_observe(&gp, (float[]){INFINITY}, 1, 1.0f));
    uint64_t count = 99;
    float lml = 0.0f, mean = 0.0f, var = 0.0f;
    EXPECT(KEEL_STATUS_OK, keel_wiski_stats(&gp, &lml, &count));
    CHECK(count == 0);
    for (int i = 0; i < 200; i++) {
        float x = -2.9f + 5.8f * (float)i / 199.0f;
        EXPECT(KEEL_STATUS_OK, keel_wiski_observe(&gp, &x, 1, sinf(3.0f * x)));
    }
    EXPECT(KEEL_STATUS_OK, keel_wiski_stats(&gp, &lml, &count));
    CHECK(count == 200 && isfinite(lml));
    EXPECT(KEEL_STATUS_OK, keel_wiski_stats(&gp, NULL, NULL));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_wiski_predict(&gp, NULL, 1, &mean, &var));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_wiski_predict(&gp, (float[]){NAN}, 1, &mean, &var));
    EXPECT(KEEL_STATUS_OUT_OF_GRID, keel_wiski_predict(&gp, (float[]){-3.5f}, 1, &mean, &var));
    EXPECT(KEEL_STATUS_OK, keel_wiski_predict(&gp, &x0, 1, &mean, &var));
    CHECK(fabsf(mean - sinf(1.5f)) < 0.05f && var >= 0.0f && var < 0.05f);
    EXPECT(KEEL_STATUS_OK, keel_wiski_predict(&gp, &x0, 1, NULL, NULL));

    /* Two dimensions. */
    keel_wiski_config c2 = {.dims = 2, .size = {8, 8}, .lo = {-1, -1}, .hi = {1, 1},
                            .convention = 1, .family = 3, .outputscale = 1.0f,
                            .lengthscale = {0.5f, 0.5f}, .noise = 0.01f};
    EXPECT(KEEL_STATUS_OK, keel_wiski_sizes(&c2, &mem_len, &scr_len));
    float *mem2 = malloc(mem_len * sizeof(float)), *scr2 = malloc(scr_len * sizeof(float));
    EXPECT(KEEL_STATUS_OK, keel_wiski_init(&gp, &c2, mem2, mem_len, scr2, scr_len));
    const float p2[2] = {0.2f, -0.3f};
    EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_wiski_observe(&gp, p2, 1, 1.0f));
    EXPECT(KEEL_STATUS_OK, keel_wiski_observe(&gp, p2, 2, 1.0f));
    EXPECT(KEEL_STATUS_OK, keel_wiski_predict(&gp, p2, 2, &mean, &var));
    CHECK(mean > 0.5f && mean <= 1.01f);
    free(mem);
    free(scr);
    free(mem2);
    free(scr2);
}

static void test_ntk(file sine, file classifier, file policy) {
    static keel_model m, other;
    static keel_ntk ntk, zeroed;
    memset(&zeroed, 0, sizeof zeroed);
    size_t mem_len = 0, scr_len = 0;
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_ntk_sizes(&m, 10, &mem_len, &scr_len));
    EXPECT(KEEL_STATUS_OK, keel_model_load(&m, sine.bytes, sine.len));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_ntk_sizes(NULL, 10, &mem_len, &scr_len));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_ntk_sizes(&m, 10, NULL, &scr_len));
    EXPECT(KEEL_STATUS_UNSUPPORTED_SIZE, keel_ntk_sizes(&m, 0, &mem_len, &scr_len));
    EXPECT(KEEL_STATUS_UNSUPPORTED_SIZE,
           keel_ntk_sizes(&m, KEEL_NTK_MAX_POINTS + 1, &mem_len, &scr_len));
    EXPECT(KEEL_STATUS_OK, keel_ntk_sizes(&m, 4, &mem_len, &scr_len));
    CHECK(mem_len == 4 * 162 + 16 + 4 && scr_len == 162 + 40 + 4);
    float *mem = malloc(mem_len * sizeof(float)), *scr = malloc(scr_len * sizeof(float));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_ntk_init(NULL, &m, 1, 0.01f, mem, mem_len));
    EXPECT(KEEL_STATUS_MISALIGNED,
           keel_ntk_init((keel_ntk *)(skewed + 4), &m, 1, 0.01f, mem, mem_len));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_ntk_init(&ntk, NULL, 1, 0.01f, mem, mem_len));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_ntk_init(&ntk, &m, 1, 0.01f, NULL, mem_len));
    EXPECT(KEEL_STATUS_COUNT_MISMATCH, keel_ntk_init(&ntk, &m, 1, 0.01f, mem, mem_len - 1));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_ntk_init(&ntk, &m, 1, 0.01f, mem, SIZE_MAX));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_ntk_init(&ntk, &m, 2, 0.01f, mem, mem_len));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_ntk_init(&ntk, &m, 1, NAN, mem, mem_len));
    EXPECT(KEEL_STATUS_INVALID_PARAMETER, keel_ntk_init(&ntk, &m, 1, 0.0f, mem, mem_len));
    EXPECT(KEEL_STATUS_INVALID_PARAMETER, keel_ntk_init(&ntk, &m, 1, INFINITY, mem, mem_len));
    /* Not a regression MLP with one output; not an MLP. */
    EXPECT(KEEL_STATUS_OK, keel_model_load(&other, classifier.bytes, classifier.len));
    size_t cl = 0, cs = 0;
    EXPECT(KEEL_STATUS_OK, keel_ntk_sizes(&other, 1, &cl, &cs));
    float *cmem = malloc(cl * sizeof(float));
    EXPECT(KEEL_STATUS_INVALID_CONFIG, keel_ntk_init(&ntk, &other, 1, 0.01f, cmem, cl));
    free(cmem);
    EXPECT(KEEL_STATUS_OK, keel_model_load(&other, policy.bytes, policy.len));
    EXPECT(KEEL_STATUS_WRONG_KIND, keel_ntk_sizes(&other, 4, &cl, &cs));
    EXPECT(KEEL_STATUS_WRONG_KIND, keel_ntk_init(&ntk, &other, 1, 0.01f, mem, mem_len));
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_ntk_clear(&ntk));

    EXPECT(KEEL_STATUS_OK, keel_ntk_init(&ntk, &m, KEEL_NTK_PRIOR_NETWORK, 0.01f, mem, mem_len));
    float x[5] = {-1.0f, 0.0f, 1.0f, 2.0f, 3.0f}, y[5] = {0.5f, 0.0f, -0.5f, 0.2f, 0.1f};
    float mean, var_f, var_y;
    size_t count = 99, cap = 0;
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_ntk_adapt(NULL, x, 4, y, 4, scr, scr_len));
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_ntk_adapt(&zeroed, x, 4, y, 4, scr, scr_len));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_ntk_adapt(&ntk, NULL, 4, y, 4, scr, scr_len));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_ntk_adapt(&ntk, x, 4, NULL, 4, scr, scr_len));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_ntk_adapt(&ntk, x, 4, y, 4, NULL, scr_len));
    EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_ntk_adapt(&ntk, x, 3, y, 4, scr, scr_len));
    EXPECT(KEEL_STATUS_CAPACITY_EXCEEDED, keel_ntk_adapt(&ntk, x, 5, y, 5, scr, scr_len));
    EXPECT(KEEL_STATUS_SCRATCH_TOO_SMALL, keel_ntk_adapt(&ntk, x, 4, y, 4, scr, scr_len - 1));
    EXPECT(KEEL_STATUS_BUFFER_OVERLAP, keel_ntk_adapt(&ntk, x, 4, y, 4, mem, scr_len));
    EXPECT(KEEL_STATUS_BUFFER_OVERLAP, keel_ntk_adapt(&ntk, scr, 4, y, 4, scr, scr_len));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_ntk_adapt(&ntk, x, 4, (float[]){0, NAN, 0, 0}, 4,
                                                        scr, scr_len));
    EXPECT(KEEL_STATUS_NON_FINITE, keel_ntk_adapt(&ntk, (float[]){0, INFINITY, 0, 0}, 4, y, 4,
                                                  scr, scr_len));
    EXPECT(KEEL_STATUS_OK, keel_ntk_stats(&ntk, NULL, &count, &cap));
    CHECK(count == 0 && cap == 4);
    EXPECT(KEEL_STATUS_OK, keel_ntk_adapt(&ntk, x, 4, y, 4, scr, scr_len));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_ntk_predict(NULL, x, 1, scr, scr_len, &mean, &var_f,
                                                      &var_y));
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_ntk_predict(&zeroed, x, 1, scr, scr_len, &mean,
                                                        &var_f, &var_y));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_ntk_predict(&ntk, NULL, 1, scr, scr_len, &mean, &var_f,
                                                      &var_y));
    EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_ntk_predict(&ntk, x, 2, scr, scr_len, &mean, &var_f,
                                                        &var_y));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_ntk_predict(&ntk, (float[]){NAN}, 1, scr, scr_len,
                                                          &mean, &var_f, &var_y));
    EXPECT(KEEL_STATUS_SCRATCH_TOO_SMALL, keel_ntk_predict(&ntk, x, 1, scr, scr_len - 1, &mean,
                                                           &var_f, &var_y));
    EXPECT(KEEL_STATUS_BUFFER_OVERLAP, keel_ntk_predict(&ntk, x, 1, scr, scr_len, scr + 2, &var_f,
                                                        &var_y));
    EXPECT(KEEL_STATUS_BUFFER_OVERLAP, keel_ntk_predict(&ntk, x, 1, scr, scr_len, &mean, mem,
                                                        &var_y));
    EXPECT(KEEL_STATUS_OK, keel_ntk_stats(&ntk, NULL, &count, NULL));
    CHECK(count == 4);
    EXPECT(KEEL_STATUS_OK, keel_ntk_predict(&ntk, x, 1, scr, scr_len, &mean, &var_f, &var_y));
    CHECK(fabsf(mean - y[0]) < 0.3f && var_f >= 0.0f && var_y > var_f);
    EXPECT(KEEL_STATUS_OK, keel_ntk_predict(&ntk, x, 1, scr, scr_len, NULL, NULL, NULL));
    size_t p = 0;
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_ntk_weight_offset_len(&ntk, NULL));
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_ntk_weight_offset_len(&zeroed, &p));
    EXPECT(KEEL_STATUS_OK, keel_ntk_weight_offset_len(&ntk, &p));
    CHECK(p == 1761);
    float *u = malloc(p * sizeof(float)), jvp_mean = 0.0f;
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_ntk_weight_offset(&ntk, NULL, p, scr, scr_len));
    EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_ntk_weight_offset(&ntk, u, p - 1, scr, scr_len));
    EXPECT(KEEL_STATUS_BUFFER_OVERLAP, keel_ntk_weight_offset(&ntk, u, p, u + 8, scr_len));
    EXPECT(KEEL_STATUS_OK, keel_ntk_weight_offset(&ntk, u, p, scr, scr_len));
    EXPECT(KEEL_STATUS_NULL_POINTER,
           keel_ntk_predict_mean_jvp(&ntk, x, 1, u, p, scr, scr_len, NULL));
    EXPECT(KEEL_STATUS_SHAPE_MISMATCH,
           keel_ntk_predict_mean_jvp(&ntk, x, 1, u, p + 1, scr, scr_len, &jvp_mean));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT,
           keel_ntk_predict_mean_jvp(&ntk, (float[]){NAN}, 1, u, p, scr, scr_len, &jvp_mean));
    EXPECT(KEEL_STATUS_BUFFER_OVERLAP,
           keel_ntk_predict_mean_jvp(&ntk, x, 1, u, p, scr, scr_len, u + 3));
    EXPECT(KEEL_STATUS_OK, keel_ntk_predict_mean_jvp(&ntk, x, 1, u, p, scr, scr_len, &jvp_mean));
    CHECK(fabsf(jvp_mean - mean) < 1e-4f);
    free(u);
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_ntk_stats(NULL, NULL, &count, NULL));
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_ntk_stats(&zeroed, NULL, &count, NULL));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_ntk_clear(NULL));
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_ntk_clear(&zeroed));
    EXPECT(KEEL_STATUS_OK, keel_ntk_clear(&ntk));
    EXPECT(KEEL_STATUS_OK, keel_ntk_stats(&ntk, NULL, &count, NULL));
    CHECK(count == 0);
    /* The model handle reloaded with another kind: the adaptation notices. */
    EXPECT(KEEL_STATUS_OK, keel_model_load(&m, policy.bytes, policy.len));
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_ntk_predict(&ntk, x, 1, scr, scr_len, &mean, &var_f,
                                                        &var_y));
    /* Another type of handle is not an adaptation. */
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_ntk_clear((keel_ntk *)(void *)&m));
    free(mem);
    free(scr);
}

static void test_env(void) {
    static keel_env env, zeroed;
    memset(&zeroed, 0, sizeof zeroed);
    float obs[6], reward, state[4];
    int32_t term = -1, trunc = -1;
    size_t sl, ol;
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_env_init(NULL, KEEL_ENV_KIND_PENDULUM));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_env_init(&env, 0));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_env_init(&env, 4));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_env_init(&env, -1));
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_env_sizes(&env, &sl, &ol));
    EXPECT(KEEL_STATUS_INVALID_HANDLE, keel_env_sizes(&zeroed, &sl, &ol));
    static const int32_t kinds[3] = {KEEL_ENV_KIND_PENDULUM, KEEL_ENV_KIND_CART_POLE,
                                     KEEL_ENV_KIND_ACROBOT};
    static const size_t states[3] = {2, 4, 4}, observations[3] = {3, 5, 6};
    for (int k = 0; k < 3; k++) {
        EXPECT(KEEL_STATUS_OK, keel_env_init(&env, kinds[k]));
        EXPECT(KEEL_STATUS_OK, keel_env_sizes(&env, &sl, &ol));
        CHECK(sl == states[k] && ol == observations[k]);
        const float a = 0.5f, nan_a = NAN, two[2] = {0.1f, 0.2f};
        EXPECT(KEEL_STATUS_NULL_POINTER, keel_env_step(&env, NULL, 1, obs, ol, &reward, NULL, NULL));
        EXPECT(KEEL_STATUS_NULL_POINTER, keel_env_step(&env, &a, 1, NULL, ol, &reward, NULL, NULL));
        EXPECT(KEEL_STATUS_NULL_POINTER, keel_env_step(&env, &a, 1, obs, ol, NULL, NULL, NULL));
        EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_env_step(&env, two, 2, obs, ol, &reward, NULL, NULL));
        EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_env_step(&env, &a, 1, obs, ol - 1, &reward, NULL, NULL));
        EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_env_step(&env, &nan_a, 1, obs, ol, &reward, NULL, NULL));
        EXPECT(KEEL_STATUS_BUFFER_OVERLAP, keel_env_step(&env, obs, 1, obs, ol, &reward, NULL, NULL));
        EXPECT(KEEL_STATUS_BUFFER_OVERLAP, keel_env_step(&env, &a, 1, obs, ol, obs + 1, NULL, NULL));
        EXPECT(KEEL_STATUS_OK, keel_env_step(&env, &a, 1, obs, ol, &reward, &term, &trunc));
        CHECK(isfinite(reward) && term == 0 && trunc == 0);
        const float nan_state[4] = {0.0f, NAN, 0.0f, 0.0f}, s0[4] = {0.1f, 0.0f, 0.2f, 0.0f};
        EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_env_set_state(&env, nan_state, sl, obs, ol));
        EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_env_set_state(&env, s0, sl + 1, obs, ol));
        EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_env_set_state(&env, s0, sl, obs, ol + 1));
        EXPECT(KEEL_STATUS_OK, keel_env_set_state(&env, s0, sl, obs, ol));
        EXPECT(KEEL_STATUS_SHAPE_MISMATCH, keel_env_state(&env, state, sl - 1));
        EXPECT(KEEL_STATUS_NULL_POINTER, keel_env_state(&env, NULL, sl));
        EXPECT(KEEL_STATUS_OK, keel_env_state(&env, state, sl));
        for (size_t i = 0; i < sl; i++) CHECK(fabsf(state[i] - s0[i]) < 1e-5f);
    }
    /* A full Pendulum-v1 episode truncates after 200 steps. */
    EXPECT(KEEL_STATUS_OK, keel_env_init(&env, KEEL_ENV_KIND_PENDULUM));
    const float a = 0.0f;
    for (int k = 0; k < 200; k++)
        EXPECT(KEEL_STATUS_OK, keel_env_step(&env, &a, 1, obs, 3, &reward, &term, &trunc));
    CHECK(trunc == 1 && term == 0);
}

/* A small safetensors file built here: an I32 tensor and an F64 one. */
static size_t tiny_file(uint8_t *buf) {
    static const char header[] =
        "{\"i\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[8,24]}}";
    const uint64_t n = sizeof header - 1;
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(n >> (8 * i));
    memcpy(buf + 8, header, n);
    const int32_t ints[2] = {7, -3};
    const double doubles[2] = {0.25, -1.5};
    memcpy(buf + 8 + n, ints, sizeof ints);
    memcpy(buf + 8 + n + 8, doubles, sizeof doubles);
    return 8 + n + 24;
}

static void test_tensor_read(file samples) {
    static float v[16 * 64 + 8];
    size_t n = 0;
    const uint8_t *b = samples.bytes;
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_tensor_read(NULL, samples.len, "x", 1, v, 1024, &n));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_tensor_read(b, samples.len, NULL, 1, v, 1024, &n));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_tensor_read(b, samples.len, "x", 1, v, 1024, NULL));
    EXPECT(KEEL_STATUS_NULL_POINTER, keel_tensor_read(b, samples.len, "x", 1, NULL, 1024, &n));
    EXPECT(KEEL_STATUS_TRUNCATED, keel_tensor_read(b, 3, "x", 1, v, 1024, &n));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_tensor_read(b, SIZE_MAX, "x", 1, v, 1024, &n));
    EXPECT(KEEL_STATUS_TENSOR_NOT_FOUND, keel_tensor_read(b, samples.len, "y", 1, v, 1024, &n));
    EXPECT(KEEL_STATUS_TENSOR_NOT_FOUND, keel_tensor_read(b, samples.len, "x", 0, v, 1024, &n));
    EXPECT(KEEL_STATUS_INVALID_ARGUMENT, keel_tensor_read(b, samples.len, "\xff", 1, v, 1024, &n));
    /* The size query, then a short buffer: the count is still reported. */
    n = 0;
    EXPECT(KEEL_STATUS_OK, keel_tensor_read(b, samples.len, "x", 1, NULL, 0, &n));
    CHECK(n == 16 * 64);
    n = 0;
    EXPECT(KEEL_STATUS_BUFFER_TOO_SMALL, keel_tensor_read(b, samples.len, "x", 1, v, 1023, &n));
    CHECK(n == 16 * 64);
    EXPECT(KEEL_STATUS_MISALIGNED,
           keel_tensor_read(b, samples.len, "x", 1, (float *)((char *)v + 2), 1024, &n));
    /* Writing over the file itself is refused. */
    file c = copy(samples);
    EXPECT(KEEL_STATUS_BUFFER_OVERLAP,
           keel_tensor_read(c.bytes, c.len, "label", 5, (float *)(void *)(c.bytes + 64), 16, &n));
    free(c.bytes);
    EXPECT(KEEL_STATUS_OK, keel_tensor_read(b, samples.len, "label", 5, v, 16, &n));
    CHECK(n == 16 && v[0] == 2.0f && v[1] == 1.0f);

    static _Alignas(8) uint8_t tiny[256];
    size_t len = tiny_file(tiny);
    EXPECT(KEEL_STATUS_UNSUPPORTED_DTYPE, keel_tensor_read(tiny, len, "i", 1, v, 8, &n));
    EXPECT(KEEL_STATUS_OK, keel_tensor_read(tiny, len, "d", 1, v, 8, &n));
    CHECK(n == 2 && v[0] == 0.25f && v[1] == -1.5f);
    EXPECT(KEEL_STATUS_DATA_NOT_COVERED, keel_tensor_read(tiny, len + 4, "d", 1, v, 8, &n));
    /* A file that is not a model: no kind. */
    int32_t kind;
    EXPECT(KEEL_STATUS_INVALID_CONFIG, keel_kind_of(tiny, len, &kind));
    static keel_model m;
    EXPECT(KEEL_STATUS_INVALID_CONFIG, keel_model_load(&m, tiny, len));
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: bad_input ASSETS_DIR\n");
        return 2;
    }
    file mlp = read_asset(argv[1], "digits-mlp.safetensors");
    file chnn = read_asset(argv[1], "chnn-pend2.safetensors");
    file policy = read_asset(argv[1], "pendulum-policy.safetensors");
    file value = read_asset(argv[1], "pendulum-value.safetensors");
    file bma = read_asset(argv[1], "digits-bma.safetensors");
    file emlp = read_asset(argv[1], "emlp-o5.safetensors");
    file samples = read_asset(argv[1], "digits-samples.safetensors");
    file sine = read_asset(argv[1], "ntk-sine.safetensors");
    test_status_names();
    test_model_load(mlp, chnn);
    test_model_eval(mlp, policy, value, bma, emlp);
    test_dynamics(mlp, chnn);
    test_wiski();
    test_ntk(sine, mlp, policy);
    test_env();
    test_tensor_read(samples);
    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
