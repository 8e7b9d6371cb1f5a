/*
 * ntk.c: adapts the firmware's sine network (firmware/assets/ntk-sine.safetensors, 1 -> 40 -> 40
 * -> 1) to 10 points of a new sine task through keel_ntk, as controller firmware would, and
 * checks the posterior: it fits the points, its variances are ordered and shrink at the data, and
 * it predicts held-out points of the task better than the network did. It prints every number
 * in C's exact hexadecimal notation (%a) so that ffi/tests/c_api.rs can rerun the same points
 * through keel-core and demand the same bits.
 *
 * Usage: ntk ASSETS_DIR
 * Output: "point X Y" lines, then "test X MEAN VAR_F VAR_Y NETWORK" lines, then "lml L", then
 *         a summary line.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "keel.h"

#define POINTS 10
#define TESTS 17
#define NOISE 0.01f

static int checks, failures;

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        checks++;                                                                             \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);          \
            failures++;                                                                       \
        }                                                                                     \
    } while (0)

#define TRY(call)                                                                             \
    do {                                                                                      \
        keel_status s_ = (call);                                                              \
        if (s_ != KEEL_STATUS_OK) {                                                           \
            fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call,                     \
                    keel_status_str(s_));                                                     \
            return 1;                                                                         \
        }                                                                                     \
    } while (0)

/* The new task: amplitude, frequency and phase unlike the training task's. */
static float task(float x) { return 1.7f * sinf(1.3f * x + 0.4f); }

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: ntk ASSETS_DIR\n");
        return 2;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/ntk-sine.safetensors", argv[1]);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return 2;
    }
    static _Alignas(8) uint8_t bytes[65536];
    size_t len = fread(bytes, 1, sizeof bytes, f);
    int whole = feof(f);
    fclose(f);
    if (!whole) {
        fprintf(stderr, "%s is larger than this test's buffer\n", path);
        return 2;
    }

    TRY(keel_abi_check(sizeof(keel_model), sizeof(keel_dynamics), sizeof(keel_wiski),
                       sizeof(keel_env), sizeof(keel_ntk)));
    static keel_model model;
    TRY(keel_model_load(&model, bytes, len));

    /* Memory for 10 points and scratch, sized by the library (a firmware would size static
       arrays from these numbers once: 1 730 and 212 floats for this network). */
    size_t memory_len = 0, scratch_len = 0;
    TRY(keel_ntk_sizes(&model, POINTS, &memory_len, &scratch_len));
    CHECK(memory_len == 1730 && scratch_len == 212);
    static float memory[1730], scratch[212];
    static keel_ntk ntk;
    TRY(keel_ntk_init(&ntk, &model, KEEL_NTK_PRIOR_NETWORK, NOISE, memory, memory_len));

    float x[POINTS], y[POINTS];
    for (int i = 0; i < POINTS; i++) {
        x[i] = -4.5f + (float)i;
        y[i] = task(x[i]);
        printf("point %a %a\n", (double)x[i], (double)y[i]);
    }
    /* Before adapting: the prior, whose mean is the network. */
    float net[TESTS], prior_var[TESTS];
    for (int i = 0; i < TESTS; i++) {
        float t = -5.0f + 0.625f * (float)i, vy;
        TRY(keel_ntk_predict(&ntk, &t, 1, scratch, scratch_len, &net[i], &prior_var[i], &vy));
    }
    TRY(keel_ntk_adapt(&ntk, x, POINTS, y, POINTS, scratch, scratch_len));
    size_t count = 0, capacity = 0;
    float lml = 0.0f;
    TRY(keel_ntk_stats(&ntk, &lml, &count, &capacity));
    CHECK(count == POINTS && capacity == POINTS && isfinite(lml));

    /* It fits the points, within a few noise deviations, and its latent variance there is at
       most about the noise's (one point's worth of information; the f32 difference
       ‖J‖² − v·v carries rounding of order 1e-7 ‖J‖², hence the factor 2). */
    for (int i = 0; i < POINTS; i++) {
        float mean, var_f, var_y;
        TRY(keel_ntk_predict(&ntk, &x[i], 1, scratch, scratch_len, &mean, &var_f, &var_y));
        fprintf(stderr, "x = %g: mean %g (y %g), var_f %g, var_y %g\n", x[i], mean, y[i], var_f,
                var_y);
        CHECK(fabsf(mean - y[i]) < 3.0f * sqrtf(NOISE));
        CHECK(var_f >= 0.0f && var_f < 2.0f * NOISE);
        CHECK(var_y == var_f + NOISE);
    }
    /* Held out: the adapted mean is nearer the task than the network. */
    double err_net = 0.0, err_ntk = 0.0;
    for (int i = 0; i < TESTS; i++) {
        float t = -5.0f + 0.625f * (float)i, mean, var_f, var_y;
        TRY(keel_ntk_predict(&ntk, &t, 1, scratch, scratch_len, &mean, &var_f, &var_y));
        CHECK(var_f >= 0.0f && var_f <= prior_var[i] && var_y == var_f + NOISE);
        printf("test %a %a %a %a %a\n", (double)t, (double)mean, (double)var_f, (double)var_y,
               (double)net[i]);
        err_net += pow(net[i] - task(t), 2);
        err_ntk += pow(mean - task(t), 2);
    }
    err_net = sqrt(err_net / TESTS);
    err_ntk = sqrt(err_ntk / TESTS);
    fprintf(stderr, "held-out RMSE: network %.4f, adapted %.4f\n", err_net, err_ntk);
    CHECK(err_ntk < 0.5 * err_net);
    printf("lml %a\n", (double)lml);

    /* More points than the capacity: refused, and the adaptation is back to the prior. */
    float more[POINTS + 1] = {0};
    CHECK(keel_ntk_adapt(&ntk, more, POINTS + 1, more, POINTS + 1, scratch, scratch_len) ==
          KEEL_STATUS_CAPACITY_EXCEEDED);
    TRY(keel_ntk_stats(&ntk, NULL, &count, NULL));
    CHECK(count == 0);

    printf("%d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
