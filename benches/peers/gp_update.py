#!/usr/bin/env python3
"""numpy/scipy peer of Keel's exact online GP update (rank-1 Cholesky extension) and exact
prediction, float64, on the CPU.

Environment (the shared peers venv; requirements.txt pins numpy==1.26.4, scipy==1.12.0):
  python3 -m venv benches/peers/.venv
  benches/peers/.venv/bin/pip install -r benches/peers/requirements.txt
  benches/peers/.venv/bin/python benches/peers/gp_update.py
(writes benches/peers/gp_update_results.json next to this script; --out to change it).

Model: 1-D inputs, RBF kernel k(a, b) = 1.3 exp(-(a - b)^2 / (2 * 0.7^2)), noise variance 0.04.
State for n training points: the lower Cholesky factor L of K + 0.04 I, kept in a preallocated
(N_max x N_max) C-ordered float64 array (N_max = max n + 1, so nothing is reallocated while
timing), and z = L^-1 y. The state is built untimed (scipy.linalg.cholesky of the n x n block).

  update  (adds point n+1 = (x, y)):
            k = kernel(X[:n], x)                       (vectorised numpy)
            l = solve_triangular(L[:n, :n], k, lower=True, check_finite=False)
            diag = sqrt(k(x, x) + noise - l.l)
            L[n, :n] = l; L[n, n] = diag
            z[n] = (y - l.z[:n]) / diag
  predict (at x*):
            ks = kernel(X[:n], x*)
            v = solve_triangular(L[:n, :n], ks, lower=True, check_finite=False)
            mean = v.z[:n]; var_f = 1.3 - v.v

Each timed update is the same n -> n+1 update, repeated (n is never incremented, so every
repetition overwrites row n of L and z[n] with the same values: no copy of the state, no growth).
Each call is timed alone with time.perf_counter_ns, after 5 untimed warm-up calls, for
max(--min-reps, as many as fit in --min-seconds) repetitions; median, p10, p90 (and min) in us.

Two layouts are timed (same code, same scipy call):
  update_us / predict_us         L[:n, :n] is a strided view of the N_max x N_max buffer, as
                                 specified. LAPACK's trtrs through scipy's f2py wrapper needs a
                                 contiguous matrix, so every call first copies the n x n block
                                 (O(n^2) memory traffic, ~8x the solve itself at n = 4000 here).
  update_contig_us /             the solve reads a contiguous n x n copy of L[:n, :n] (made
  predict_contig_us              untimed; row n is written to a preallocated row buffer), so no
                                 copy is made per call: the best this scipy call can do, but a
                                 growing model would have to re-lay L out on every append.
Both are checked (untimed) against a fresh Cholesky of the n+1 points and a direct solve.

BLAS threading is left at its defaults (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS are recorded, not
set). The 1-minute load average is recorded before and after, as the machine may be shared.
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time

import numpy as np
import scipy
import scipy.linalg
from scipy.linalg import solve_triangular

OUTPUTSCALE = 1.3
LENGTHSCALE = 0.7
NOISE = 0.04
GAMMA = 0.5 / (LENGTHSCALE * LENGTHSCALE)
X_STAR = 0.3137  # prediction point
WARMUP = 5


def kernel_vec(xs, x):
    d = xs - x
    return OUTPUTSCALE * np.exp(-GAMMA * (d * d))


def make_data(n_total, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-5.0, 5.0, n_total)
    y = np.sin(2.0 * x) + 0.2 * rng.standard_normal(n_total)
    return x, y


def build_state(X, Y, n, n_max):
    """Untimed: L (n_max x n_max buffer, leading n x n block filled) and z (length n_max)."""
    K = OUTPUTSCALE * np.exp(-GAMMA * (X[:n, None] - X[None, :n]) ** 2)
    K[np.diag_indices(n)] += NOISE
    L = np.zeros((n_max, n_max))
    L[:n, :n] = scipy.linalg.cholesky(K, lower=True)
    z = np.zeros(n_max)
    z[:n] = solve_triangular(L[:n, :n], Y[:n], lower=True, check_finite=False)
    return L, z


def update(L, z, X, n, x, y):
    """Rank-1 Cholesky extension: adds (x, y) as point n+1. X[:n] are the current inputs."""
    k = kernel_vec(X[:n], x)
    l = solve_triangular(L[:n, :n], k, lower=True, check_finite=False)
    diag = np.sqrt(OUTPUTSCALE + NOISE - l @ l)
    L[n, :n] = l
    L[n, n] = diag
    z[n] = (y - l @ z[:n]) / diag


def predict(L, z, X, n, xs):
    ks = kernel_vec(X[:n], xs)
    v = solve_triangular(L[:n, :n], ks, lower=True, check_finite=False)
    return v @ z[:n], OUTPUTSCALE - v @ v


def update_contig(Lc, row, z, X, n, x, y):
    """Same update; Lc is a contiguous n x n array, row n goes to a preallocated row buffer."""
    k = kernel_vec(X[:n], x)
    l = solve_triangular(Lc, k, lower=True, check_finite=False)
    diag = np.sqrt(OUTPUTSCALE + NOISE - l @ l)
    row[:n] = l
    row[n] = diag
    z[n] = (y - l @ z[:n]) / diag


def predict_contig(Lc, z, X, n, xs):
    ks = kernel_vec(X[:n], xs)
    v = solve_triangular(Lc, ks, lower=True, check_finite=False)
    return v @ z[:n], OUTPUTSCALE - v @ v


def time_calls(fn, min_reps, min_seconds):
    for _ in range(WARMUP):
        fn()
    ts = []
    deadline = time.perf_counter_ns() + int(min_seconds * 1e9)
    while len(ts) < min_reps or time.perf_counter_ns() < deadline:
        t0 = time.perf_counter_ns()
        fn()
        ts.append(time.perf_counter_ns() - t0)
    us = np.asarray(ts, dtype=np.float64) / 1e3
    return {"median": round(float(np.median(us)), 3),
            "p10": round(float(np.percentile(us, 10)), 3),
            "p90": round(float(np.percentile(us, 90)), 3),
            "min": round(float(us.min()), 3),
            "reps": int(us.size)}


def check(X, Y, n, L, z, row=None):
    """Untimed: the extended factor against a fresh Cholesky of n+1 points; the prediction
    against a direct solve with K^-1. Returns the max abs differences."""
    Lref, zref = build_state(X, Y, n + 1, n + 1)
    new_row = L[n, :n + 1] if row is None else row[:n + 1]
    d_row = float(np.max(np.abs(new_row - Lref[n, :n + 1])))
    d_z = float(abs(z[n] - zref[n]))
    mean, var = predict(L, z, X, n, X_STAR)
    K = OUTPUTSCALE * np.exp(-GAMMA * (X[:n, None] - X[None, :n]) ** 2) + NOISE * np.eye(n)
    ks = kernel_vec(X[:n], X_STAR)
    a = np.linalg.solve(K, ks)
    d_mean = float(abs(mean - a @ Y[:n]))
    d_var = float(abs(var - (OUTPUTSCALE - ks @ a)))
    return {"row_max_abs": d_row, "z_abs": d_z, "mean_abs": d_mean, "var_abs": d_var}


def blas_info():
    info = {}
    try:
        cfg = np.show_config(mode="dicts")
        deps = cfg.get("Build Dependencies", {})
        for key in ("blas", "lapack"):
            if key in deps:
                info[key] = {k: deps[key].get(k) for k in ("name", "version", "openblas configuration")
                             if deps[key].get(k) is not None}
    except Exception as e:  # older numpy: no mode="dicts"
        info["show_config_error"] = repr(e)
    try:
        import threadpoolctl
        info["threadpoolctl"] = [
            {k: p.get(k) for k in ("user_api", "internal_api", "prefix", "version",
                                   "num_threads", "threading_layer", "architecture")}
            for p in threadpoolctl.threadpool_info()]
    except Exception as e:
        info["threadpoolctl"] = f"unavailable ({type(e).__name__})"
    return info


def machine_info():
    cpu_model = None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"processor": platform.processor(), "machine": platform.machine(),
            "cpu_model": cpu_model, "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "env": {k: os.environ.get(k) for k in
                    ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ns", type=int, nargs="+", default=[100, 1000, 4000])
    ap.add_argument("--min-reps", type=int, default=200)
    ap.add_argument("--min-seconds", type=float, default=2.0)
    ap.add_argument("--out", default=os.path.join(here, "gp_update_results.json"))
    a = ap.parse_args()

    load_start = os.getloadavg()
    n_max = max(a.ns) + 1
    X, Y = make_data(n_max)
    results = []
    for n in a.ns:
        L, z = build_state(X, Y, n, n_max)
        x_new, y_new = float(X[n]), float(Y[n])
        r = {"n": n}
        r["update_us"] = time_calls(lambda: update(L, z, X, n, x_new, y_new),
                                    a.min_reps, a.min_seconds)
        r["predict_us"] = time_calls(lambda: predict(L, z, X, n, X_STAR),
                                     a.min_reps, a.min_seconds)
        r["check"] = check(X, Y, n, L, z)

        Lc = np.ascontiguousarray(L[:n, :n])
        row = np.zeros(n_max)
        zc = z.copy()
        r["update_contig_us"] = time_calls(lambda: update_contig(Lc, row, zc, X, n, x_new, y_new),
                                           a.min_reps, a.min_seconds)
        r["predict_contig_us"] = time_calls(lambda: predict_contig(Lc, zc, X, n, X_STAR),
                                            a.min_reps, a.min_seconds)
        r["check_contig"] = check(X, Y, n, L, zc, row)
        results.append(r)
        del L, Lc

    load_end = os.getloadavg()
    doc = {"peer": "numpy rank-1 Cholesky extension",
           "generator": "benches/peers/gp_update.py",
           "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "versions": {"python": platform.python_version(), "numpy": np.__version__,
                        "scipy": scipy.__version__, "blas": blas_info()},
           "machine": {**machine_info(),
                       "loadavg_1_5_15_start": [round(x, 2) for x in load_start],
                       "loadavg_1_5_15_end": [round(x, 2) for x in load_end]},
           "settings": {"kernel": "rbf", "outputscale": OUTPUTSCALE, "lengthscale": LENGTHSCALE,
                        "noise": NOISE, "dtype": "float64", "x_star": X_STAR,
                        "data": "x ~ U(-5, 5), y = sin(2x) + 0.2 N(0, 1), default_rng(0)",
                        "n_max": n_max, "warmup": WARMUP, "min_reps": a.min_reps,
                        "min_seconds": a.min_seconds, "clock": "time.perf_counter_ns per call"},
           "definitions": "update_us/predict_us: solve_triangular on L[:n,:n], a strided view "
                          "of the preallocated n_max x n_max buffer (scipy copies it to a "
                          "contiguous array on every call); *_contig_us: the same on a "
                          "contiguous n x n copy of L made untimed (no per-call copy). "
                          "check*: max abs differences against a fresh Cholesky of n+1 points "
                          "and a direct solve (untimed).",
           "results": results}
    with open(a.out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")

    print(f"numpy {np.__version__}, scipy {scipy.__version__}, python {platform.python_version()}, "
          f"{os.cpu_count()} cpus, loadavg {load_start[0]:.2f} -> {load_end[0]:.2f}")
    hdr = f"{'n':>6} {'variant':>8} {'update med':>11} {'p10':>9} {'p90':>9} {'reps':>6}" \
          f" {'predict med':>12} {'p10':>9} {'p90':>9} {'reps':>6}   (us)"
    print(hdr)
    for r in results:
        for tag, u, p in (("view", r["update_us"], r["predict_us"]),
                          ("contig", r["update_contig_us"], r["predict_contig_us"])):
            print(f"{r['n']:>6} {tag:>8} {u['median']:>11.1f} {u['p10']:>9.1f} {u['p90']:>9.1f}"
                  f" {u['reps']:>6} {p['median']:>12.1f} {p['p10']:>9.1f} {p['p90']:>9.1f}"
                  f" {p['reps']:>6}")
    print(f"wrote {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
