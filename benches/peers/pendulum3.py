#!/usr/bin/env python3
"""numpy/scipy peer of Keel's 3-pendulum benches (`rk4/f64/chain-pendulum-3`,
`dopri5/f64/chain-pendulum-3`).

The vector field is the one Keel evaluates (core/src/dynamics/mechanics.rs, `hamiltonian_rate`):
Cartesian coordinates with explicit constraints, z = (x, p), x, p in R^{3x2},

    v = M^-1 p,  dV = g m e_y,
    G_c = dPhi_c/dx,  Gd_c = dPhidot_c/dx   (Phi = |x_i - x_{i-1}|^2 - l_i^2, x_{-1} = 0),
    K = [[0, S], [-S, A]],  S_ij = G_i.M^-1 G_j,  A_ij = Gd_i.M^-1 G_j - M^-1 G_i.Gd_j,
    rhs = (G_i.v, Gd_i.v - M^-1 G_i.dV),  lam = solve(K, rhs),
    xdot = v - sum_c lamdot_c M^-1 G_c,  pdot = -dV + sum_c (lam_c G_c + lamdot_c Gd_c).

It times
  (a) a classic RK4 loop, dt = 0.01: median over repeats of a 1000-step loop, per step;
  (b) scipy solve_ivp(RK45, rtol = atol = 1e-8) over t in [0, 10]: per accepted step and per
      function evaluation;
checks the RK4 result against `keel simulate` (same initial state, same steps), and prints a
JSON summary. With --criterion DIR it also reads Keel's criterion medians for the two matching
benches and reports the ratios (run.sh does this).
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import scipy
from scipy.integrate import solve_ivp

# The paper 3-pendulum (ChainPendulum::<f64, 3>::paper()).
MASSES = np.array([1.0822107008573152, 1.1721514930979355, 1.0390508031418597])
LENGTHS = np.array([1.1167152904533248, 0.9389238394711238, 1.0359065463975174])
GRAVITY = 9.81
N, D = 3, 2
C = 3

THETA = np.array([0.3, -0.2, 1.1])
OMEGA = np.array([0.0, 0.5, -0.3])

DT = 0.01
STEPS = 1000
T_END = 10.0

REPO = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def initial_state(theta=THETA, omega=OMEGA):
    """Flat z0 = (x, p) for absolute link angles from the downward vertical."""
    s, c = np.sin(theta), np.cos(theta)
    x = np.cumsum(LENGTHS[:, None] * np.stack([s, -c], axis=1), axis=0)
    v = np.cumsum(np.stack([LENGTHS * c * omega, LENGTHS * s * omega], axis=1), axis=0)
    p = MASSES[:, None] * v
    return np.concatenate([x.ravel(), p.ravel()])


def make_field():
    """f(t, z) for the flat state z (length 2ND = 12), closures over the constants."""
    inv_m = (1.0 / MASSES)[:, None]  # M^-1 applied per node, as Keel does (p * (1/m))
    grad_v = np.zeros(N * D)
    grad_v[D - 1::D] = GRAVITY * MASSES  # gravity along -y: dV/dy_i = g m_i
    # Constraint c: Phi_c = |x_c - x_{c-1}|^2 - l_c^2 (x_{-1} = the pivot at the origin), so
    # G_c = 2 (e_c on node c, -e_c on node c-1) with e_c = x_c - x_{c-1}; Gd_c likewise with v.
    two_b = 2.0 * (np.eye(C, N) - np.eye(C, N, k=-1))

    def f(t, z):
        x = z[: N * D].reshape(N, D)
        v = z[N * D:].reshape(N, D) * inv_m
        e = x.copy()
        e[1:] -= x[:-1]
        ed = v.copy()
        ed[1:] -= v[:-1]
        g = two_b[:, :, None] * e[:, None, :]
        gd = two_b[:, :, None] * ed[:, None, :]
        mg = (g * inv_m).reshape(C, -1)
        g, gd = g.reshape(C, -1), gd.reshape(C, -1)
        v = v.ravel()
        s = g @ mg.T
        a = gd @ mg.T
        k = np.zeros((2 * C, 2 * C))
        k[:C, C:] = s
        k[C:, :C] = -s
        k[C:, C:] = a - a.T
        rhs = np.concatenate([g @ v, gd @ v - mg @ grad_v])
        lam = np.linalg.solve(k, rhs)
        l0, l1 = lam[:C], lam[C:]
        return np.concatenate([v - l1 @ mg, l0 @ g + l1 @ gd - grad_v])

    return f


def rk4_step(f, z, h):
    hh = h * 0.5
    k1 = f(0.0, z)
    k2 = f(0.0, z + hh * k1)
    k3 = f(0.0, z + hh * k2)
    k4 = f(0.0, z + h * k3)
    return z + (h / 6.0) * (k1 + 2.0 * (k2 + k3) + k4)


def rk4_loop(f, z, h, steps):
    for _ in range(steps):
        z = rk4_step(f, z, h)
    return z


def keel_step_sizes():
    """The step sizes `keel simulate --dt 0.01 --t-end 10` takes: t_{k+1} - t_k with t_k = k/100
    (host/src/simulate/config.rs `output_times`, run.rs `w[1] - w[0]`)."""
    t = np.arange(STEPS + 1) / 100.0
    return np.diff(t)


def keel_reference(args):
    """Last row of x and v from the Keel CLI (same initial state, RK4, dt = 0.01, 1000 steps)."""
    if args.keel_json:
        with open(args.keel_json) as fh:
            out = json.load(fh)
    else:
        cmd = ["cargo", "run", "--quiet", "--release", "-p", "keel", "--", "simulate",
               "chain-pendulum", "--links", "3", "--angles", "0.3,-0.2,1.1",
               "--angular-velocities", "0,0.5,-0.3", "--integrator", "rk4", "--dt", str(DT),
               "--t-end", str(T_END), "--json"]
        res = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True)
        out = json.loads(res.stdout)
    return out


def last_row(a):
    a = np.asarray(a, dtype=float)
    return a[-1].reshape(-1)


def check_against_keel(f, z0, args):
    out = keel_reference(args)
    x_k = last_row(out["x"])
    v_k = last_row(out["v"])
    x0_k, v0_k = np.asarray(out["x"][0], float).ravel(), np.asarray(out["v"][0], float).ravel()
    v0 = (z0[N * D:].reshape(N, D) / MASSES[:, None]).ravel()
    init = max(np.max(np.abs(x0_k - z0[: N * D])), np.max(np.abs(v0_k - v0)))

    def compare(steps_h):
        z = z0.copy()
        for h in steps_h:
            z = rk4_step(f, z, h)
        x = z[: N * D]
        v = (z[N * D:].reshape(N, D) / MASSES[:, None]).ravel()
        return float(max(np.max(np.abs(x - x_k)), np.max(np.abs(v - v_k)))), z

    # Exactly Keel's steps (t_{k+1} - t_k) and the nominal fixed 0.01 of the timing loop.
    same_steps, _ = compare(keel_step_sizes())
    fixed_dt, z_fixed = compare(np.full(STEPS, DT))
    return {
        "initial_state_max_abs_diff": float(init),
        "final_max_abs_diff_same_steps": same_steps,
        "final_max_abs_diff_fixed_dt": fixed_dt,
        "keel_final_x": x_k.tolist(),
        "numpy_final_x": z_fixed[: N * D].tolist(),
    }


def divergence_growth(f, z0):
    """How fast two RK4 runs from states 1e-15 apart separate (the flow's sensitivity), to read
    the Keel/numpy difference against."""
    za, zb = z0.copy(), z0.copy()
    zb[0] += 1e-15
    marks = {}
    for k in range(1, STEPS + 1):
        za, zb = rk4_step(f, za, DT), rk4_step(f, zb, DT)
        if k in (10, 100, 250, 500, 1000):
            marks[str(k)] = float(np.max(np.abs(za - zb)))
    return marks


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), float(min(times)), float(max(times))


def criterion_median_ns(criterion_dir, bench_id):
    path = os.path.join(criterion_dir, bench_id.replace("/", "_"), "new", "estimates.json")
    with open(path) as fh:
        return float(json.load(fh)["median"]["point_estimate"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=9, help="timed repeats (>= 7)")
    ap.add_argument("--no-check", action="store_true", help="skip the comparison with Keel")
    ap.add_argument("--keel-json", help="a saved `keel simulate ... --json` output to compare")
    ap.add_argument("--criterion", help="criterion output dir (target/criterion) for ratios")
    args = ap.parse_args()
    repeats = max(args.repeats, 7)

    f = make_field()
    z0 = initial_state()

    # (a) numpy RK4 loop.
    rk4_loop(f, z0, DT, 200)  # warm-up
    med, lo, hi = median_time(lambda: rk4_loop(f, z0, DT, STEPS), repeats)
    rk4 = {
        "steps_per_repeat": STEPS,
        "dt": DT,
        "repeats": repeats,
        "median_ns_per_step": med / STEPS * 1e9,
        "min_ns_per_step": lo / STEPS * 1e9,
        "max_ns_per_step": hi / STEPS * 1e9,
        "median_ns_per_evaluation": med / (4 * STEPS) * 1e9,
    }

    # (b) scipy solve_ivp RK45.
    def ivp():
        return solve_ivp(f, (0.0, T_END), z0, method="RK45", rtol=1e-8, atol=1e-8)

    sol = ivp()  # warm-up, and the step/evaluation counts (deterministic)
    assert sol.success, sol.message
    n_steps = len(sol.t) - 1
    med, lo, hi = median_time(ivp, repeats)
    scipy_rk45 = {
        "t_span": [0.0, T_END],
        "rtol": 1e-8,
        "atol": 1e-8,
        "repeats": repeats,
        "accepted_steps": n_steps,
        "nfev": int(sol.nfev),
        "median_s_per_solve": med,
        "median_ns_per_step": med / n_steps * 1e9,
        "min_ns_per_step": lo / n_steps * 1e9,
        "max_ns_per_step": hi / n_steps * 1e9,
        "median_ns_per_evaluation": med / sol.nfev * 1e9,
    }

    summary = {
        "peer": "numpy/scipy, chain-pendulum-3 (paper), f64",
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numpy_rk4": rk4,
        "scipy_rk45": scipy_rk45,
    }
    if not args.no_check:
        summary["check_vs_keel"] = check_against_keel(f, z0, args)
        summary["check_vs_keel"]["sensitivity_1e-15_perturbation"] = divergence_growth(f, z0)
    if args.criterion:
        keel_rk4 = criterion_median_ns(args.criterion, "rk4/f64/chain-pendulum-3")
        keel_dp5 = criterion_median_ns(args.criterion, "dopri5/f64/chain-pendulum-3")
        summary["keel_criterion_median_ns"] = {
            "rk4/f64/chain-pendulum-3": keel_rk4,
            "dopri5/f64/chain-pendulum-3": keel_dp5,
        }
        summary["ratios"] = {
            "numpy_rk4_step_over_keel_rk4_step": rk4["median_ns_per_step"] / keel_rk4,
            "scipy_rk45_step_over_keel_dopri5_step": scipy_rk45["median_ns_per_step"] / keel_dp5,
        }
    json.dump(summary, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
