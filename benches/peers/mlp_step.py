#!/usr/bin/env python3
"""JAX-on-the-CPU peer of Keel's engine benches (`benches/benches/engine.rs`).

The same work as the Keel benches, jitted:
  mlp_step     one training step of an MLP 64->256->256->10 (ReLU) on a batch of 128, f32:
               forward (y = x W^T + b per layer, W: [out, in] as in Keel), mean cross-entropy
               against fixed labels, gradients, Adam (lr 1e-3, betas (0.9, 0.999), eps 1e-8,
               bias correction, PyTorch's form -- the update of host/src/optim.rs):
               (params, adam state, x, y) -> (new params, new state, loss);
  mlp_forward  forward + loss;
  mlp_grad     forward + loss + gradients (value_and_grad), no optimizer;
  adam         the optimizer update alone, on fixed gradients;
  matmul       a @ b of two n x n matrices (f32 128, f64 128, f32 1024).

Inputs are those of the Keel harness, bit for bit: the weights are drawn as Keel's
`Init::PyTorchDefault` draws them (U(-1/sqrt(in), 1/sqrt(in)) from Xoshiro256++ seeded with 0
through SplitMix64, f64 rounded to f32, in the order layer0.weight, layer0.bias, layer1.weight,
...), the batch is x[i][j] = sqrt(2) sin(0.37 (64 i + j) + 0.1), the labels (7 i + 3) mod 10.
The losses of the first steps are printed so they can be compared with the Keel harness's
`mlp_step check` line (run_engine.sh does).

Timing (python-references recipe): every call is followed by `jax.block_until_ready` before the
clock is read; after warm-up calls (compilation included), the median over --repeats timed
calls is reported. A steady-state step feeds its outputs into the next call, as a training loop
does. `pipelined_step_ns` additionally times --repeats steps dispatched back to back with one
block at the end (JAX's asynchronous dispatch may overlap Python and XLA work there), and
`jax_dispatch_ns` the floor of any jitted call (a one-element add).

With --criterion DIR the Keel criterion medians of the same cases are read from DIR
(<target>/criterion) and the ratios JAX / Keel are reported (> 1: Keel is faster).
"""

import argparse
import json
import math
import os
import platform
import re
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import jaxlib
import numpy as np

import cpuinfo  # benches/peers/cpuinfo.py, beside this script

jax.config.update("jax_enable_x64", True)  # only for the f64 matmul; everything else is f32

SIZES = [64, 256, 256, 10]
BATCH = 128
LR = 1e-3
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8
SEED = 0
CHECK_STEPS = 5
CASE = "-".join(map(str, SIZES)) + f"/b{BATCH}"
MASK = (1 << 64) - 1


# ------------------------------------------------------------------ Keel's seeded initialisation


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return state, z ^ (z >> 31)


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & MASK


class Xoshiro256PlusPlus:
    """core/src/random.rs: Xoshiro256PlusPlus::seed_from_u64."""

    def __init__(self, seed):
        sm, self.s = seed, []
        for _ in range(4):
            sm, v = splitmix64(sm)
            self.s.append(v)

    def next_u64(self):
        s = self.s
        result = (rotl((s[0] + s[3]) & MASK, 23) + s[0]) & MASK
        t = (s[1] << 17) & MASK
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def uniform(self):
        return (self.next_u64() >> 11) * (1.0 / (1 << 53))


def keel_init(sizes, seed):
    """host/src/init.rs `weight(Init::PyTorchDefault)` then `bias`, per layer, as Mlp::new."""
    rng = Xoshiro256PlusPlus(seed)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / math.sqrt(fan_in)
        w = [(2.0 * rng.uniform() - 1.0) * bound for _ in range(fan_out * fan_in)]
        b = [(2.0 * rng.uniform() - 1.0) * bound for _ in range(fan_out)]
        params.append((
            jnp.asarray(np.array(w, dtype=np.float64).astype(np.float32).reshape(fan_out, fan_in)),
            jnp.asarray(np.array(b, dtype=np.float64).astype(np.float32)),
        ))
    return params


def batch():
    k = np.arange(BATCH * SIZES[0], dtype=np.float64)
    x = (math.sqrt(2.0) * np.sin(0.37 * k + 0.1)).astype(np.float32).reshape(BATCH, SIZES[0])
    y = (7 * np.arange(BATCH) + 3) % SIZES[-1]
    return jnp.asarray(x), jnp.asarray(y, dtype=jnp.int32)


# ------------------------------------------------------------------ the model and Adam


def forward(params, x):
    h = x
    for i, (w, b) in enumerate(params):
        h = h @ w.T + b
        if i + 1 < len(params):
            h = jax.nn.relu(h)
    return h


def loss_fn(params, x, y):
    logp = jax.nn.log_softmax(forward(params, x), axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))


def adam_init(params):
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    return (jnp.zeros((), jnp.int32), zeros, jax.tree_util.tree_map(jnp.zeros_like, params))


def adam_update(params, grads, state):
    """PyTorch's Adam as host/src/optim.rs writes it:
    m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2,
    p <- p - (lr / bc1) m / (sqrt(v) / sqrt(bc2) + eps), bc_i = 1 - b_i^t."""
    t, m, v = state
    t = t + 1
    tf = t.astype(jnp.float32)
    bc1 = 1.0 - jnp.float32(BETA1) ** tf
    bc2 = 1.0 - jnp.float32(BETA2) ** tf
    step_size = jnp.float32(LR) / bc1
    inv_sqrt_bc2 = 1.0 / jnp.sqrt(bc2)
    m = jax.tree_util.tree_map(lambda m, g: BETA1 * m + (1.0 - BETA1) * g, m, grads)
    v = jax.tree_util.tree_map(lambda v, g: BETA2 * v + (1.0 - BETA2) * g * g, v, grads)
    params = jax.tree_util.tree_map(
        lambda p, m, v: p - step_size * m / (jnp.sqrt(v) * inv_sqrt_bc2 + EPS), params, m, v)
    return params, (t, m, v)


@jax.jit
def train_step(params, state, x, y):
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    params, state = adam_update(params, grads, state)
    return params, state, loss


forward_loss = jax.jit(loss_fn)
grad_step = jax.jit(jax.value_and_grad(loss_fn))
adam_step = jax.jit(adam_update)
matmul = jax.jit(lambda a, b: a @ b)


# ------------------------------------------------------------------ timing


def median_ns(call, repeats, warmup):
    """Median wall time of `call()` (which must block until its result is ready)."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times), min(times), max(times)


def check_dtypes(tree, dtype):
    for leaf in jax.tree_util.tree_leaves(tree):
        if leaf.dtype != dtype and leaf.dtype != jnp.int32:
            sys.exit(f"unexpected dtype {leaf.dtype} (expected {dtype})")


def criterion_median_ns(root, full_id, since=0.0):
    """Median of the criterion bench whose `full_id` is `full_id`, from <root>/**/new/, if it
    was written after `since` (seconds since the epoch)."""
    for dirpath, _, files in os.walk(root):
        if os.path.basename(dirpath) != "new" or "benchmark.json" not in files:
            continue
        with open(os.path.join(dirpath, "benchmark.json")) as fh:
            if json.load(fh).get("full_id") != full_id:
                continue
        path = os.path.join(dirpath, "estimates.json")
        if os.path.getmtime(path) < since:
            return None
        with open(path) as fh:
            return json.load(fh)["median"]["point_estimate"]
    return None


def fmt(ns):
    if ns is None:
        return "-"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e3:.1f} us"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=300, help="timed calls per case (>= 200)")
    ap.add_argument("--repeats-large", type=int, default=30, help="timed 1024 matmuls")
    ap.add_argument("--warmup", type=int, default=50, help="untimed calls before timing")
    ap.add_argument("--criterion", help="criterion output dir (<target>/criterion) for ratios")
    ap.add_argument("--since", type=float, default=0.0,
                    help="ignore criterion results older than this (seconds since the epoch)")
    ap.add_argument("--keel-log", help="stderr of the Keel engine bench, for the loss check")
    args = ap.parse_args()

    x, y = batch()
    params0 = keel_init(SIZES, SEED)
    check_dtypes(params0, jnp.float32)

    # Losses of the first steps from the initial parameters (cross-check with Keel).
    p, s = params0, adam_init(params0)
    losses = []
    for _ in range(CHECK_STEPS):
        p, s, loss = train_step(p, s, x, y)
        losses.append(float(loss))
    check_dtypes((p, s), jnp.float32)

    res = {}

    # Steady state: every timed step continues the same training run.
    state = {"p": params0, "s": adam_init(params0)}

    def one_step():
        state["p"], state["s"], loss = train_step(state["p"], state["s"], x, y)
        jax.block_until_ready((state["p"], state["s"], loss))

    res["mlp_step"] = median_ns(one_step, args.repeats, args.warmup)

    def pipelined():
        p, s = state["p"], state["s"]
        for _ in range(args.repeats):
            p, s, loss = train_step(p, s, x, y)
        jax.block_until_ready((p, s, loss))
        state["p"], state["s"] = p, s

    pipelined()
    t0 = time.perf_counter_ns()
    pipelined()
    pipelined_ns = (time.perf_counter_ns() - t0) / args.repeats

    params = state["p"]
    res["mlp_forward"] = median_ns(
        lambda: jax.block_until_ready(forward_loss(params, x, y)), args.repeats, args.warmup)
    res["mlp_grad"] = median_ns(
        lambda: jax.block_until_ready(grad_step(params, x, y)), args.repeats, args.warmup)
    _, grads = grad_step(params, x, y)
    adam_state = {"p": params, "s": adam_init(params)}

    def one_adam():
        adam_state["p"], adam_state["s"] = adam_step(adam_state["p"], grads, adam_state["s"])
        jax.block_until_ready((adam_state["p"], adam_state["s"]))

    res["adam"] = median_ns(one_adam, args.repeats, args.warmup)

    rng = np.random.default_rng(SEED)
    for dt, n in [(np.float32, 128), (np.float64, 128), (np.float32, 1024)]:
        a = jnp.asarray(rng.uniform(-1, 1, (n, n)).astype(dt))
        b = jnp.asarray(rng.uniform(-1, 1, (n, n)).astype(dt))
        assert matmul(a, b).dtype == dt
        reps = args.repeats if n < 1024 else args.repeats_large
        res[f"matmul/{np.dtype(dt).name[:1]}{np.dtype(dt).itemsize * 8}/{n}"] = median_ns(
            lambda: jax.block_until_ready(matmul(a, b)), reps, min(args.warmup, 5))

    # The floor of any jitted call: a one-element add, dispatched and awaited.
    one = jnp.ones((1,), jnp.float32)
    add_one = jax.jit(lambda a: a + 1.0)
    dispatch_ns = median_ns(lambda: jax.block_until_ready(add_one(one)), args.repeats,
                            args.warmup)[0]

    ids = {k: (k if k.startswith("matmul") else f"{k}/f32/{CASE}") for k in res}
    summary = {
        "machine": {
            **cpuinfo.describe(),
            "python": platform.python_version(),
            "jax": jax.__version__,
            "jaxlib": jaxlib.__version__,
            "numpy": np.__version__,
            "jax_devices": [str(d) for d in jax.devices()],
        },
        "repeats": args.repeats,
        "warmup": args.warmup,
        "jax_median_ns": {ids[k]: v[0] for k, v in res.items()},
        "jax_min_ns": {ids[k]: v[1] for k, v in res.items()},
        "jax_max_ns": {ids[k]: v[2] for k, v in res.items()},
        "jax_pipelined_step_ns": pipelined_ns,
        "jax_dispatch_ns": dispatch_ns,
        "jax_losses_first_steps": losses,
    }

    if args.keel_log:
        with open(args.keel_log) as fh:
            m = re.search(r"mlp_step check: .*\[([^\]]*)\]", fh.read())
        if m:
            keel_losses = [float(v) for v in m.group(1).split(",")]
            summary["keel_losses_first_steps"] = keel_losses
            summary["losses_max_abs_difference"] = max(
                abs(a - b) for a, b in zip(keel_losses, losses))

    if args.criterion:
        keel = {i: criterion_median_ns(args.criterion, i, args.since) for i in ids.values()}
        summary["keel_criterion_median_ns"] = keel
        summary["ratio_jax_over_keel"] = {
            i: (summary["jax_median_ns"][i] / keel[i] if keel[i] else None) for i in ids.values()}

        print(cpuinfo.line(), file=sys.stderr)
        print(f"{'case':<36} {'Keel':>10} {'JAX':>10} {'JAX/Keel':>9}", file=sys.stderr)
        for i in ids.values():
            r = summary["ratio_jax_over_keel"][i]
            print(f"{i:<36} {fmt(keel[i]):>10} {fmt(summary['jax_median_ns'][i]):>10} "
                  f"{(f'{r:.2f}x' if r else '-'):>9}", file=sys.stderr)
        print(f"{'(JAX step, pipelined dispatch)':<36} {'':>10} {fmt(pipelined_ns):>10}",
              file=sys.stderr)
        print(f"{'(JAX one-element jitted add)':<36} {'':>10} {fmt(dispatch_ns):>10}",
              file=sys.stderr)
        if "losses_max_abs_difference" in summary:
            print(f"losses of the first {CHECK_STEPS} steps agree to "
                  f"{summary['losses_max_abs_difference']:.1e}", file=sys.stderr)

    json.dump(summary, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
