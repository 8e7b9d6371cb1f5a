#!/usr/bin/env python3
"""JAX-on-the-CPU peer of `benches/benches/bayes.rs` (`leapfrog/f64/digits-mlp64`).

One HMC leapfrog step exactly as `keel bayes hmc` takes it (`bnn_hmc/core/hmc.py`: velocity Verlet,
one gradient per step): p += (eps/2) g; theta += eps p; g = grad log pi(theta); p += (eps/2) g,
where log pi is the reference's sum-over-data tempered log posterior of a 64 -> 64 -> 10 ReLU MLP
(y = x W^T + b, W: [out, in] as in Keel) on the 1617 training digits of Keel's split shape,
categorical likelihood, Gaussian prior sigma = 0.447, T = 1, float64 (Keel's HMC runs in f64).
The data are the digits CSV rows, standardised per column (constant columns centred), so the
arithmetic is the same size and kind; the exact rows of Keel's permutation do not change the cost.

Two forms are timed (median of --repeats calls after warm-up, each followed by
block_until_ready): `step` -- one jitted leapfrog step per call, as Keel's bench measures; and
`trajectory` -- L = 141 steps inside one jitted lax.fori_loop (JAX's best case: no dispatch
between steps), reported per step. With --criterion DIR the Keel median is read from
DIR/leapfrog/f64_digits-mlp64/new/estimates.json and the ratios JAX / Keel printed
(> 1: Keel is faster).
"""

import argparse
import csv
import json
import os
import pathlib
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import cpuinfo  # benches/peers/cpuinfo.py, beside this script

jax.config.update("jax_enable_x64", True)

ROOT = pathlib.Path(__file__).resolve().parents[2]


def data():
    with open(ROOT / "fixtures/data/digits.csv") as fh:
        rows = list(csv.reader(fh))[1:]
    a = np.array(rows, dtype=np.float64)
    x, y = a[:1617, :64], a[:1617, 64].astype(np.int32)
    sd = x.std(axis=0)
    sd[sd <= 1e-12] = 1.0
    return (x - x.mean(axis=0)) / sd, y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--criterion", type=pathlib.Path)
    args = ap.parse_args()
    x, y = map(jnp.asarray, data())
    sizes = [64, 64, 10]
    rng = np.random.default_rng(0)
    params = []
    for i, o in zip(sizes[:-1], sizes[1:]):
        params += [rng.normal(size=(o, i)) / np.sqrt(i), np.zeros(o)]
    theta = [jnp.asarray(p) for p in params]
    lam = 1.0 / 0.447**2

    def log_post(th):
        h = x
        for k in range(0, len(th), 2):
            h = h @ th[k].T + th[k + 1]
            if k + 2 < len(th):
                h = jax.nn.relu(h)
        ll = jnp.take_along_axis(jax.nn.log_softmax(h), y[:, None], axis=1).sum()
        return ll - 0.5 * lam * sum((t * t).sum() for t in th)

    grad = jax.grad(log_post)

    def one(th, p, g, eps):
        p = [pi + 0.5 * eps * gi for pi, gi in zip(p, g)]
        th = [ti + eps * pi for ti, pi in zip(th, p)]
        g = grad(th)
        p = [pi + 0.5 * eps * gi for pi, gi in zip(p, g)]
        return th, p, g

    step = jax.jit(one)

    @jax.jit
    def trajectory(th, p, g, eps):
        return jax.lax.fori_loop(0, 141, lambda _, s: one(*s, eps), (th, p, g))

    p = [jnp.sin(0.37 * jnp.arange(t.size, dtype=jnp.float64)).reshape(t.shape) for t in theta]
    g = grad(theta)

    def timed(f, calls):
        for _ in range(3):
            jax.block_until_ready(f())
        out = []
        for _ in range(calls):
            t0 = time.perf_counter_ns()
            jax.block_until_ready(f())
            out.append(time.perf_counter_ns() - t0)
        return statistics.median(out)

    step_ns = timed(lambda: step(theta, p, g, 5e-3), args.repeats)
    traj_ns = timed(lambda: trajectory(theta, p, g, 5e-3), max(5, args.repeats // 10)) / 141
    result = {
        "jax": jax.__version__, "machine": platform.machine(), **cpuinfo.describe(),
        "leapfrog_step_ns": step_ns, "leapfrog_in_trajectory_ns": traj_ns,
    }
    if args.criterion:
        est = args.criterion / "leapfrog" / "f64_digits-mlp64" / "new" / "estimates.json"
        keel = json.loads(est.read_text())["median"]["point_estimate"]
        result["keel_ns"] = keel
        result["ratio_step"] = step_ns / keel
        result["ratio_trajectory"] = traj_ns / keel
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
