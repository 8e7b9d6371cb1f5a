#!/usr/bin/env python3
"""Peer benchmark: forward pass of the reference EMLP (emlp 1.0.3, objax, JAX on the CPU).

  model = emlp.nn.EMLP(2*V, Scalar, O(5), ch=384, num_layers=3)   # the O5Synthetic model
  x     = np.random.randn(512, 10) as float32 (np.random.seed(0) before building the model)
  f     = objax.Jit(lambda x: model(x, training=False), model.vars())

After --warmup calls (compilation included), each of --repeats calls is followed by
jax.block_until_ready before the clock is read; the median is reported (wall time; also
median_cpu_s, the CPU time of the whole process, all threads, which is less affected when other
jobs share the machine). Prints one JSON line
and, with --out, writes it to a file.

Environment: the venv of fixtures/gen/requirements-emlp.txt (same pins as
benches/peers/requirements-emlp.txt):
  fixtures/gen/.venv-emlp/bin/python benches/peers/emlp_forward.py \
      --out benches/peers/emlp_forward_results.json
"""
import argparse
import json
import os
import platform
import statistics
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--ch", type=int, default=384)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--out")
    a = ap.parse_args()

    load_start = os.getloadavg()
    t0 = time.perf_counter()
    import numpy as np
    import jax
    import objax
    from emlp.groups import O
    from emlp.reps import V, Scalar
    import emlp.nn as enn
    import_s = time.perf_counter() - t0

    np.random.seed(0)
    t0 = time.perf_counter()
    model = enn.EMLP(2 * V, Scalar, O(5), ch=a.ch, num_layers=a.layers)
    build_s = time.perf_counter() - t0
    n_params = int(sum(np.prod(v.value.shape) for v in model.vars().values()))
    hidden = str(model.network[0].nonlinearity.rep)  # uniform_rep(ch, O(5)), pre-gating
    gated_sizes = [int(blk.linear.b.value.shape[0]) for blk in list(model.network)[:-1]]

    x = jax.device_put(np.random.randn(a.batch, 10).astype(np.float32))
    f = objax.Jit(lambda x: model(x, training=False), model.vars())

    t0 = time.perf_counter()
    y = jax.block_until_ready(f(x))
    first_s = time.perf_counter() - t0
    for _ in range(a.warmup - 1):
        jax.block_until_ready(f(x))
    times, cpu = [], []
    for _ in range(a.repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        y = jax.block_until_ready(f(x))
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)

    import importlib.metadata as md
    rec = {
        "case": f"EMLP(2*V -> Scalar, O(5), ch={a.ch}, num_layers={a.layers}) forward, "
                f"batch {a.batch}, objax.Jit",
        "median_s": statistics.median(times),
        "min_s": min(times),
        "max_s": max(times),
        "repeats": a.repeats,
        "all_s": [round(t, 4) for t in times],
        "median_cpu_s": statistics.median(cpu),
        "first_call_s": first_s,
        "model_build_s": build_s,
        "import_s": import_s,
        "n_params": n_params,
        "hidden_rep": hidden,
        "gated_hidden_sizes": gated_sizes,
        "out_shape": list(y.shape),
        "out_mean": float(np.mean(np.asarray(y))),
        "versions": {p: md.version(p) for p in ["emlp", "jax", "jaxlib", "objax", "numpy"]},
        "loadavg_1_5_15_start": [round(x, 2) for x in load_start],
        "loadavg_1_5_15_end": [round(x, 2) for x in os.getloadavg()],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (os.cpu_count), "
                   f"{platform.platform()}; JAX on the CPU, float32",
    }
    print(json.dumps(rec), flush=True)
    if a.out:
        with open(a.out, "w") as fo:
            json.dump(rec, fo, indent=1)
            fo.write("\n")


if __name__ == "__main__":
    main()
