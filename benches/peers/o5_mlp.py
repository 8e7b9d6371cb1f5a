#!/usr/bin/env python3
"""Peer run: the reference's plain-MLP baseline on O5Synthetic (emlp 1.0.3, objax, JAX CPU).

The set-up of the EMLP paper's data-efficiency study (mfinzi/equivariant-MLP,
experiments/data_efficiency.py with experiments/train_regression.py's makeTrainer and
experiments/trainer/{trainer,model_trainer}.py), rebuilt without the `oil` package:

  * data: emlp.datasets.O5Synthetic(36000) drawn under np.random.seed(seed), split by one random
    permutation into train n_train, val 1000, test 5000 (oil's split_dataset); the
    standardisation statistics are those of all 36000 rows (the splits forward `.stats` to the
    base set);
  * model: emlp.nn.Standardize(emlp.nn.MLP(2V, V⁰, O(5), ch, 3 layers), stats): inputs divided
    by the per-vector RMS, outputs mapped back by the target mean and std, so the loss and the
    reported MSE are in the data's units;
  * Adam (objax defaults) at a constant 3e-3, batch 500, shuffled each epoch, MSE loss;
  * the test MSE reported is the one at the evaluation with the best validation MSE (the
    trainer's early_stop_metric='val_MSE' checkpoint of the logged metrics).

Evaluations happen every max(1, epochs // 100) epochs and after the last (the reference logs on a
timer, ~50 times a run). `--init keel` swaps objax's Linear initialisation (Xavier normal
weights, zero biases) for the one Keel's MLP baseline used before this comparison (He normal
N(0, 2/fan_in) weights, biases U(±1/√fan_in)); `keel-weights` / `keel-biases` swap only one of
the two, `keel-first` only the first layer's weights. Everything else stays the reference's.

Prints one JSON line per seed. Environment: benches/peers/requirements-emlp-mlp.txt in a
git-ignored venv, e.g.
  python3.11 -m venv benches/peers/.venv-emlp
  benches/peers/.venv-emlp/bin/pip install -r benches/peers/requirements-emlp-mlp.txt
  benches/peers/.venv-emlp/bin/python benches/peers/o5_mlp.py --epochs 900 --seeds 0 1 2
"""
import argparse
import json
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-train", type=int, default=1000)
    ap.add_argument("--n-val", type=int, default=1000)
    ap.add_argument("--n-test", type=int, default=5000)
    ap.add_argument("--ndata", type=int, default=36000, help="rows drawn (the study's 30000+5000+1000)")
    ap.add_argument("--epochs", type=int, default=None, help="default min(900000 // n_train, 1000)")
    ap.add_argument("--ch", type=int, default=384)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument(
        "--init",
        choices=["reference", "keel", "keel-weights", "keel-biases", "keel-first"],
        default="reference",
        help="keel-weights / keel-biases / keel-first: only the weights / only the biases / only "
        "the first layer's weights as Keel's old init",
    )
    a = ap.parse_args()

    import numpy as np
    import jax
    import jax.numpy as jnp
    import objax
    import emlp.nn as enn
    from emlp.datasets import O5Synthetic

    epochs = a.epochs if a.epochs is not None else min(900000 // a.n_train, 1000)
    for seed in a.seeds:
        t0 = time.perf_counter()
        np.random.seed(seed)
        objax.random.DEFAULT_GENERATOR.seed(seed)
        ds = O5Synthetic(a.ndata)
        perm = np.random.permutation(a.ndata)
        tr = perm[: a.n_train]
        va = perm[a.n_train : a.n_train + a.n_val]
        te = perm[a.n_train + a.n_val : a.n_train + a.n_val + a.n_test]
        X = ds.X.astype(np.float32)
        Y = ds.Y.astype(np.float32)
        mlp = enn.MLP(ds.rep_in, ds.rep_out, ds.symmetry, ch=a.ch, num_layers=a.layers)
        if a.init != "reference":
            rng = np.random.default_rng(seed)
            layers = [blk[0] for blk in list(mlp.net)[:-1]] + [list(mlp.net)[-1]]
            for k, layer in enumerate(layers):
                nin, nout = layer.w.value.shape
                if a.init in ("keel", "keel-weights") or (a.init == "keel-first" and k == 0):
                    w = rng.normal(0, np.sqrt(2 / nin), (nin, nout))
                    layer.w.assign(jnp.asarray(w, jnp.float32))
                if a.init in ("keel", "keel-biases"):
                    b = 1 / np.sqrt(nin)
                    layer.b.assign(jnp.asarray(rng.uniform(-b, b, nout), jnp.float32))
        model = enn.Standardize(mlp, ds.stats)
        opt = objax.optimizer.Adam(model.vars())

        def loss(x, y):
            return jnp.mean((model(x, training=True) - y) ** 2)

        gv = objax.GradValues(loss, model.vars())

        def train_op(x, y, lr):
            g, v = gv(x, y)
            opt(lr, g)
            return v

        train_op = objax.Jit(train_op, gv.vars() + opt.vars())
        predict = objax.Jit(lambda x: model(x, training=False), model.vars())

        def mse(idx):
            se = 0.0
            for s in range(0, len(idx), 500):
                i = idx[s : s + 500]
                se += float(jnp.sum((predict(X[i]) - Y[i]) ** 2))
            return se / len(idx)

        bs = min(a.batch, a.n_train)
        every = max(1, epochs // 100)
        best = (float("inf"), 0, None, None)
        for ep in range(epochs):
            order = np.random.permutation(tr)
            for s in range(0, len(order), bs):
                i = order[s : s + bs]
                train_op(X[i], Y[i], a.lr)
            if (ep + 1) % every == 0 or ep + 1 == epochs:
                v = mse(va)
                if v < best[0]:
                    best = (v, ep + 1, mse(te), mse(tr))
        print(
            json.dumps(
                {
                    "peer": "emlp 1.0.3 MLP (objax)",
                    "init": a.init,
                    "seed": seed,
                    "n_train": a.n_train,
                    "ch": a.ch,
                    "epochs": epochs,
                    "best_epoch": best[1],
                    "train_mse": best[3],
                    "val_mse": best[0],
                    "test_mse": best[2],
                    "seconds": round(time.perf_counter() - t0, 1),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
