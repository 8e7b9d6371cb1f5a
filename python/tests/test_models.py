"""Every kind `keel.load` reads, from the files the firmware embeds, against an independent
numpy evaluation of the same file or the host engine's own predictions stored beside it.

Tolerances (DESIGN.md): the core's float64 path matches an f64 reference to 1e-9 relative; its
float32 path the f64 one to 1e-4.
"""

import numpy as np
import pytest

import keel
from conftest import asset, read_safetensors

RNG = np.random.default_rng(0)


def close(a, b, rel):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = np.maximum(np.abs(b), 1.0)
    worst = float(np.max(np.abs(a - b) / scale))
    assert worst <= rel, f"worst relative error {worst:.3e} > {rel:.0e}"
    return worst


def mlp_reference(t, x, prefix="", activation="relu", standardize=True):
    """The MLP of DESIGN.md's file contract, in float64 numpy."""
    h = np.asarray(x, dtype=np.float64)
    if standardize:
        h = (h - t["input.mean"]) / t["input.std"]
    layers = sorted(int(k[len(prefix) + 5:].split(".")[0]) for k in t
                    if k.startswith(prefix + "layer") and k.endswith(".weight"))
    act = {"relu": lambda v: np.maximum(v, 0.0), "tanh": np.tanh}[activation]
    for i in layers:
        h = h @ t[f"{prefix}layer{i}.weight"].astype(np.float64).T + t[f"{prefix}layer{i}.bias"]
        if i != layers[-1]:
            h = act(h)
    return h


def digits():
    t, _ = read_safetensors(asset("digits-samples"))
    return t["x"].astype(np.float64), t["label"].astype(np.int64)


def test_mlp_matches_numpy_in_both_precisions_and_classifies_the_digits():
    m = keel.load(asset("digits-mlp"))
    assert isinstance(m, keel.Mlp) and (m.inputs, m.outputs, m.kind) == (64, 10, "mlp")
    t, meta = read_safetensors(asset("digits-mlp"))
    assert m.metadata["keel.config"] == meta["keel.config"]
    x, labels = digits()
    ref = mlp_reference(t, x)
    out = m(x)
    assert out.dtype == np.float64 and out.shape == (16, 10)
    close(out, ref, 1e-9)
    out32 = m(x.astype(np.float32))
    assert out32.dtype == np.float32
    close(out32, ref, 1e-4)
    assert np.array_equal(m.predict_class(x), ref.argmax(axis=1))
    assert np.mean(m.predict_class(x) == labels) >= 0.9
    # One row in, one row out; a row of a batch is evaluated alone the same way.
    assert m(x[3]).shape == (10,)
    assert np.array_equal(m(x[3]), out[3])


def test_strided_and_fortran_arrays_are_copied_once_and_give_the_same_numbers():
    m = keel.load(asset("digits-mlp"))
    x, _ = digits()
    wide = np.zeros((16, 128))
    wide[:, ::2] = x
    assert np.array_equal(m(wide[:, ::2]), m(x))
    assert np.array_equal(m(np.asfortranarray(x)), m(x))
    assert np.array_equal(m(x[::-1]), m(x)[::-1])


def test_emlp_matches_the_host_engine_and_is_o5_invariant():
    # emlp-o5-samples holds inputs x, the same inputs under a random O(5) element (xg), and the
    # host engine's predictions y (written by `keel emlp train` for the firmware check).
    m = keel.load(asset("emlp-o5"))
    assert isinstance(m, keel.Emlp) and (m.inputs, m.outputs, m.blocks) == (10, 1, 2)
    t, _ = read_safetensors(asset("emlp-o5-samples"))
    x, xg, y = (t[k].astype(np.float64) for k in ("x", "xg", "y"))
    close(m(x), y, 1e-4)
    close(m(x.astype(np.float32)), y, 1e-4)
    close(m(xg), m(x), 1e-4)
    # And under a fresh orthogonal matrix acting on both 5-vectors.
    q, _ = np.linalg.qr(RNG.standard_normal((5, 5)))
    x2 = RNG.standard_normal((20, 10))
    rotated = np.concatenate([x2[:, :5] @ q.T, x2[:, 5:] @ q.T], axis=1)
    close(m(rotated), m(x2), 1e-9)


def test_bma_matches_numpy_averaging_softmax_over_the_samples():
    m = keel.load(asset("digits-bma"))
    assert isinstance(m, keel.Bma) and (m.inputs, m.outputs, m.count) == (64, 10, 10)
    t, _ = read_safetensors(asset("digits-bma"))
    sizes = t["sizes"].astype(int)
    x, _ = digits()
    h0 = (x - t["input.mean"]) / t["input.std"]
    probs = np.zeros((len(x), sizes[-1]))
    for theta in t["samples"].astype(np.float64):
        h, at = h0, 0
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            w = theta[at:at + n_out * n_in].reshape(n_out, n_in)
            at += n_out * n_in
            b = theta[at:at + n_out]
            at += n_out
            h = h @ w.T + b
            if i < len(sizes) - 2:
                h = np.maximum(h, 0.0)
        e = np.exp(h - h.max(axis=1, keepdims=True))
        probs += e / e.sum(axis=1, keepdims=True)
    probs /= len(t["samples"])
    out = m(x)
    close(out, probs, 1e-9)
    close(out.sum(axis=1), np.ones(len(x)), 1e-12)
    close(m(x.astype(np.float32)), probs, 1e-4)


def test_policy_is_tanh_of_the_trunk_and_commands_stay_within_the_limits():
    p = keel.load(asset("pendulum-policy"))
    assert isinstance(p, keel.Policy) and (p.observations, p.actions) == (3, 1)
    t, _ = read_safetensors(asset("pendulum-policy"))
    obs = np.column_stack([np.cos(a := RNG.uniform(-np.pi, np.pi, 50)), np.sin(a),
                           RNG.uniform(-8, 8, 50)])
    ref = np.tanh(mlp_reference(t, obs)[:, :1])
    close(p(obs), ref, 1e-9)
    close(p(obs.astype(np.float32)), ref, 1e-4)
    (low, high), = p.limits
    assert (low, high) == (float(t["policy.action_low"][0]), float(t["policy.action_high"][0]))
    u = p.to_actuator(p(obs))
    close(u, low + (p(obs) + 1.0) * (high - low) / 2.0, 1e-12)


def test_value_model_in_both_precisions_and_row_by_row():
    v = keel.load(asset("pendulum-value"))
    assert isinstance(v, keel.ValueModel)
    assert (v.observations, v.actions, v.horizon) == (3, 1, 2) and 0.0 < v.gamma <= 1.0
    a = RNG.uniform(-np.pi, np.pi, 20)
    obs = np.column_stack([np.cos(a), np.sin(a), RNG.uniform(-8, 8, 20)])
    values = v(obs)
    assert values.shape == (20,) and np.all(np.isfinite(values))
    assert isinstance(v(obs[0]), float) and v(obs[0]) == values[0]
    close(v(obs.astype(np.float32)), values, 1e-4)
    # Upright and still is worth more than hanging down (rewards are −cost, largest upright).
    assert v(np.array([1.0, 0.0, 0.0])) > v(np.array([-1.0, 0.0, 0.0]))


def test_learned_dynamics_follow_the_true_pendulum_and_agree_across_precisions(cli):
    d = keel.load(asset("chnn-pend2"))
    assert isinstance(d, keel.LearnedDynamics)
    assert (d.kind, d.system, d.nodes, d.dim, d.constraints) == ("chnn", "chain-pendulum", 2, 2, 2)
    # A state of the paper's 2-pendulum and its true motion, from `keel simulate` (the binary).
    status, truth, err = cli("simulate", "chain-pendulum", "--links", "2", "--seed", "4",
                             "--t-end", "0.3", "--dt", str(d.dt), "--json")
    assert status == 0, err
    x, v = np.array(truth["x"]), np.array(truth["v"])
    z0 = np.concatenate([x[0].ravel(), v[0].ravel()])
    steps = len(truth["t"]) - 1
    roll = d.rollout(z0, steps)
    assert roll.shape == (steps + 1, 8)
    close(roll[0], z0, 1e-12)
    true_states = np.concatenate([x.reshape(steps + 1, -1), v.reshape(steps + 1, -1)], axis=1)
    rel = np.linalg.norm(roll - true_states, axis=1) / np.linalg.norm(true_states, axis=1)
    assert rel.max() < 1e-3, rel  # 5.5e-5 at the last step when written
    assert np.linalg.norm(roll[-1] - z0) > 0.05  # it moved
    close(d.rollout(z0.astype(np.float32), steps), roll, 1e-4)


def test_the_passthrough_evaluates_exported_dynamics_as_the_binary_does(cli):
    args = dict(model=asset("chnn-pend2"), n_test=3)
    mine = keel.chnn.eval(**args)
    status, theirs, err = cli("chnn", "eval", "--model", asset("chnn-pend2"), "--n-test", "3",
                              "--json")
    assert status == 0, err
    assert mine == theirs
