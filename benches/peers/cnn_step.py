#!/usr/bin/env python3
"""PyTorch-CPU and JAX-CPU peers of Keel's conv benches (`benches/benches/conv.rs`).

The same work as the Keel benches, on the same inputs, f32:
  conv2d_fwd      y = conv2d(x, w, b), 3x3, padding 1, x [128, cin, 8, 8] (inference: torch
                  under no_grad, JAX jitted);
  conv2d_fwd_bwd  y and the vector-Jacobian product of a fixed cotangent gy to w, b and (for
                  cin > 1) x (torch: autograd.grad; JAX: jitted jax.vjp);
  cnn_step        one training step of the CNN c32,c32,m2,c64,g + linear 10 on [128, 1, 8, 8]:
                  [conv 3x3 pad 1 with bias -> batch norm (training mode, eps 1e-5, momentum
                  0.1, running statistics updated) -> ReLU] x 2 -> max pool 2 -> [conv -> BN ->
                  ReLU] -> mean over H, W -> linear, mean cross-entropy, gradients, Adam (lr 1e-3,
                  PyTorch's form, as host/engine/src/optim.rs). torch: eager nn.Module +
                  torch.optim.Adam (foreach); JAX: one jitted (params, bn state, adam state, x,
                  y) -> (params, bn state, adam state, loss).

Inputs are the Keel harness's: images x[k] = sqrt(2) sin(0.37 k + 0.1), labels (7 i + 3) mod
10, cotangents gy[k] = cos(0.11 k), weights drawn as Keel's `Init::PyTorchDefault` draws them
(U(+-1/sqrt(fan_in)) from Xoshiro256++ seeded with 0, f64 rounded to f32, in Cnn::new's order).
The losses of the first steps are printed for comparison with the harness's `cnn_step check`.

Timing (as mlp_step.py): after warm-up calls, the median over --repeats timed calls, each
followed by `jax.block_until_ready` (JAX; torch's CPU ops are synchronous). Threads: torch uses
`torch.set_num_threads(--threads)` (default: os.cpu_count(), what rayon uses), XLA its own pool.

  cnn_step.py --framework torch|jax [--threads N] [--repeats R] [--warmup W]  -> JSON on stdout
"""

import argparse
import json
import math
import os
import platform
import statistics
import sys
import time

import numpy as np

BATCH, SIDE, CLASSES = 128, 8, 10
SPEC = "c32,c32,m2,c64,g"
LR, BETA1, BETA2, EPS = 1e-3, 0.9, 0.999, 1e-8
BN_EPS, BN_MOMENTUM = 1e-5, 0.1
SEED = 0
CHECK_STEPS = 5
CONV_CASES = [(1, 32), (32, 64)]
MASK = (1 << 64) - 1


# ------------------------------------------------------------------ Keel's inputs


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


def draw(rng, count, fan_in):
    bound = 1.0 / math.sqrt(fan_in)
    return np.array([(2.0 * rng.uniform() - 1.0) * bound for _ in range(count)],
                    dtype=np.float64).astype(np.float32)


def conv_layer(rng, cin, cout):
    """init::weight(PyTorchDefault, cout, 9 cin) reshaped [cout, cin, 3, 3], then init::bias."""
    w = draw(rng, cout * cin * 9, cin * 9).reshape(cout, cin, 3, 3)
    return w, draw(rng, cout, cin * 9)


def cnn_init():
    """Cnn::new for c32,c32,m2,c64,g + dense 10 on 1x8x8: per conv weight then bias (batch norm
    draws nothing: gamma 1, beta 0, running mean 0, var 1), then the dense layer."""
    rng = Xoshiro256PlusPlus(SEED)
    convs = [conv_layer(rng, 1, 32), conv_layer(rng, 32, 32), conv_layer(rng, 32, 64)]
    dense = (draw(rng, CLASSES * 64, 64).reshape(CLASSES, 64), draw(rng, CLASSES, 64))
    return convs, dense


def images(c):
    k = np.arange(BATCH * c * SIDE * SIDE, dtype=np.float64)
    return (math.sqrt(2.0) * np.sin(0.37 * k + 0.1)).astype(np.float32).reshape(
        BATCH, c, SIDE, SIDE)


def cotangent(c):
    k = np.arange(BATCH * c * SIDE * SIDE, dtype=np.float64)
    return np.cos(0.11 * k).astype(np.float32).reshape(BATCH, c, SIDE, SIDE)


def labels():
    return (7 * np.arange(BATCH) + 3) % CLASSES


def median_ns(call, repeats, warmup):
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        call()
        times.append(time.perf_counter_ns() - t0)
    return statistics.median(times), min(times), max(times)


def conv_id(what, cin, cout):
    return f"{what}/f32/{cin}-{cout}/{SIDE}x{SIDE}/b{BATCH}"


STEP_ID = f"cnn_step/f32/{SPEC}/b{BATCH}"


# ------------------------------------------------------------------ PyTorch


def run_torch(args):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    res = {}
    for cin, cout in CONV_CASES:
        w, b = conv_layer(Xoshiro256PlusPlus(SEED), cin, cout)
        x = torch.from_numpy(images(cin))
        gy = torch.from_numpy(cotangent(cout))
        w, b = torch.from_numpy(w), torch.from_numpy(b)

        def fwd():
            with torch.no_grad():
                return F.conv2d(x, w, b, padding=1)

        xv, wv, bv = (t.clone().requires_grad_(True) for t in (x, w, b))
        wrt = [wv, bv] + ([xv] if cin > 1 else [])

        def fwd_bwd():
            y = F.conv2d(xv if cin > 1 else x, wv, bv, padding=1)
            return torch.autograd.grad(y, wrt, gy)

        res[conv_id("conv2d_fwd", cin, cout)] = median_ns(fwd, args.repeats, args.warmup)
        res[conv_id("conv2d_fwd_bwd", cin, cout)] = median_ns(fwd_bwd, args.repeats,
                                                              args.warmup)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            convs, (dw, db) = cnn_init()
            self.convs = torch.nn.ModuleList()
            self.bns = torch.nn.ModuleList()
            for w, b in convs:
                conv = torch.nn.Conv2d(w.shape[1], w.shape[0], 3, padding=1)
                conv.weight.data.copy_(torch.from_numpy(w))
                conv.bias.data.copy_(torch.from_numpy(b))
                self.convs.append(conv)
                self.bns.append(torch.nn.BatchNorm2d(w.shape[0], eps=BN_EPS,
                                                     momentum=BN_MOMENTUM))
            self.dense = torch.nn.Linear(64, CLASSES)
            self.dense.weight.data.copy_(torch.from_numpy(dw))
            self.dense.bias.data.copy_(torch.from_numpy(db))

        def forward(self, x):
            for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
                x = F.relu(bn(conv(x)))
                if i == 1:
                    x = F.max_pool2d(x, 2)
            return self.dense(x.mean(dim=(2, 3)))

    x = torch.from_numpy(images(1))
    y = torch.from_numpy(labels())

    def make():
        net = Net().train()
        opt = torch.optim.Adam(net.parameters(), lr=LR, betas=(BETA1, BETA2), eps=EPS)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(net(x), y)
            loss.backward()
            opt.step()
            return loss.item()
        return step

    check = make()
    losses = [check() for _ in range(CHECK_STEPS)]
    res[STEP_ID] = median_ns(make(), args.repeats, args.warmup)
    versions = {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
                "torch_interop_threads": torch.get_num_interop_threads()}
    return res, losses, versions


# ------------------------------------------------------------------ JAX


def run_jax(args):
    import jax
    import jax.numpy as jnp
    import jaxlib

    dn = ("NCHW", "OIHW", "NCHW")

    def conv(x, w, b):
        y = jax.lax.conv_general_dilated(x, w, (1, 1), ((1, 1), (1, 1)), dimension_numbers=dn)
        return y + b[None, :, None, None]

    res = {}
    for cin, cout in CONV_CASES:
        w, b = (jnp.asarray(a) for a in conv_layer(Xoshiro256PlusPlus(SEED), cin, cout))
        x, gy = jnp.asarray(images(cin)), jnp.asarray(cotangent(cout))
        fwd = jax.jit(conv)
        if cin > 1:
            @jax.jit
            def fwd_bwd(x, w, b, gy):
                _, vjp = jax.vjp(conv, x, w, b)
                return vjp(gy)
        else:
            @jax.jit
            def fwd_bwd(x, w, b, gy):
                _, vjp = jax.vjp(lambda w, b: conv(x, w, b), w, b)
                return vjp(gy)
        res[conv_id("conv2d_fwd", cin, cout)] = median_ns(
            lambda: jax.block_until_ready(fwd(x, w, b)), args.repeats, args.warmup)
        res[conv_id("conv2d_fwd_bwd", cin, cout)] = median_ns(
            lambda: jax.block_until_ready(fwd_bwd(x, w, b, gy)), args.repeats, args.warmup)

    def bn_train(z, gamma, beta):
        mean = z.mean(axis=(0, 2, 3), keepdims=True)
        var = ((z - mean) ** 2).mean(axis=(0, 2, 3), keepdims=True)
        y = (z - mean) / jnp.sqrt(var + BN_EPS) * gamma[None, :, None, None] \
            + beta[None, :, None, None]
        count = z.size // z.shape[1]
        return y, mean.reshape(-1), var.reshape(-1) * (count / (count - 1))

    def maxpool2(x):
        return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2),
                                     "VALID")

    def forward(params, x):
        stats = []
        for i, (w, b, gamma, beta) in enumerate(params["convs"]):
            x, m, v = bn_train(conv(x, w, b), gamma, beta)
            stats.append((m, v))
            x = jax.nn.relu(x)
            if i == 1:
                x = maxpool2(x)
        dw, db = params["dense"]
        return x.mean(axis=(2, 3)) @ dw.T + db, stats

    def loss_fn(params, x, y):
        out, stats = forward(params, x)
        logp = jax.nn.log_softmax(out, axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1)), stats

    def adam_update(params, grads, state):
        t, m, v = state
        t = t + 1
        tf = t.astype(jnp.float32)
        step_size = jnp.float32(LR) / (1.0 - jnp.float32(BETA1) ** tf)
        inv_sqrt_bc2 = 1.0 / jnp.sqrt(1.0 - jnp.float32(BETA2) ** tf)
        tm = jax.tree_util.tree_map
        m = tm(lambda m, g: BETA1 * m + (1.0 - BETA1) * g, m, grads)
        v = tm(lambda v, g: BETA2 * v + (1.0 - BETA2) * g * g, v, grads)
        params = tm(lambda p, m, v: p - step_size * m / (jnp.sqrt(v) * inv_sqrt_bc2 + EPS),
                    params, m, v)
        return params, (t, m, v)

    @jax.jit
    def train_step(params, running, state, x, y):
        (loss, stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, x, y)
        running = [((1 - BN_MOMENTUM) * rm + BN_MOMENTUM * m, (1 - BN_MOMENTUM) * rv
                    + BN_MOMENTUM * v) for (rm, rv), (m, v) in zip(running, stats)]
        params, state = adam_update(params, grads, state)
        return params, running, state, loss

    def init():
        convs, (dw, db) = cnn_init()
        params = {
            "convs": [(jnp.asarray(w), jnp.asarray(b), jnp.ones(w.shape[0], jnp.float32),
                       jnp.zeros(w.shape[0], jnp.float32)) for w, b in convs],
            "dense": (jnp.asarray(dw), jnp.asarray(db)),
        }
        running = [(jnp.zeros(w.shape[0], jnp.float32), jnp.ones(w.shape[0], jnp.float32))
                   for w, _ in convs]
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        return {"p": params, "r": running,
                "s": (jnp.zeros((), jnp.int32), zeros, jax.tree_util.tree_map(jnp.zeros_like,
                                                                              params))}

    x, y = jnp.asarray(images(1)), jnp.asarray(labels(), dtype=jnp.int32)
    st = init()
    losses = []
    for _ in range(CHECK_STEPS):
        st["p"], st["r"], st["s"], loss = train_step(st["p"], st["r"], st["s"], x, y)
        losses.append(float(loss))
    st = init()

    def one_step():
        st["p"], st["r"], st["s"], loss = train_step(st["p"], st["r"], st["s"], x, y)
        jax.block_until_ready((st["p"], st["r"], st["s"], loss))

    res[STEP_ID] = median_ns(one_step, args.repeats, args.warmup)
    versions = {"jax": jax.__version__, "jaxlib": jaxlib.__version__,
                "jax_devices": [str(d) for d in jax.devices()]}
    return res, losses, versions


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--framework", choices=["torch", "jax"], required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="torch.set_num_threads (default: the CPU count, as rayon)")
    ap.add_argument("--repeats", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=10)
    args = ap.parse_args()
    run = run_torch if args.framework == "torch" else run_jax
    res, losses, versions = run(args)
    json.dump({
        "framework": args.framework,
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version(),
                    "numpy": np.__version__, **versions},
        "repeats": args.repeats,
        "warmup": args.warmup,
        "median_ns": {k: v[0] for k, v in res.items()},
        "min_ns": {k: v[1] for k, v in res.items()},
        "max_ns": {k: v[2] for k, v in res.items()},
        "losses_first_steps": losses,
    }, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
