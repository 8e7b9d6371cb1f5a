#include <stdio.h>
#include "keel.h"

int main(void) {
    static keel_dynamics pendulum;                   /* caller-owned storage, no heap */
    const float angles[3] = {0.3f, -0.2f, 1.1f}, rates[3] = {0.0f, 0.5f, -0.3f};
    float z[12], e0, e1;
    keel_status s = keel_dynamics_chain_pendulum_paper(&pendulum, 3);
    if (s == KEEL_STATUS_OK) s = keel_dynamics_state_from_angles(&pendulum, angles, rates, 3, 0, z, 12);
    if (s == KEEL_STATUS_OK) s = keel_dynamics_energy(&pendulum, z, 12, &e0);
    for (int k = 0; k < 1000 && s == KEEL_STATUS_OK; k++)
        s = keel_rk4_step(&pendulum, 0.01f, 0.01f * k, z, 12);
    if (s == KEEL_STATUS_OK) s = keel_dynamics_energy(&pendulum, z, 12, &e1);
    if (s != KEEL_STATUS_OK) {
        fprintf(stderr, "keel: %s\n", keel_status_str(s));
        return 1;
    }
    printf("10 s of the 3-pendulum: energy %.6f -> %.6f\n", e0, e1);
    /* Bad input is a status code, never a crash: */
    printf("dt = 0: %s\n", keel_status_str(keel_rk4_step(&pendulum, 0.0f, 0.0f, z, 12)));
    printf("state of 11 floats: %s\n", keel_status_str(keel_rk4_step(&pendulum, 0.01f, 0.0f, z, 11)));
    return 0;
}
