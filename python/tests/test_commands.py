"""The training entry points run the `keel` command in process: the same reports (timings
aside) and the same files as the binary on the same data and seed, the binary's error lines as
exceptions, and the GIL released while they run."""

import threading
import time

import numpy as np
import pytest

import keel
from conftest import DIGITS, ROOT, without

FIT = dict(data=DIGITS, target="label", task="classify", hidden=[32, 16], epochs=4,
           batch_size=64, seed=3, device="cpu")


def test_fit_reports_and_exports_what_the_binary_does(tmp_path, cli):
    mine = keel.fit(**FIT, export=tmp_path / "py.safetensors")
    status, theirs, err = cli("fit", "--data", DIGITS, "--target", "label", "--task", "classify",
                              "--hidden", "32,16", "--epochs", "4", "--batch-size", "64",
                              "--seed", "3", "--device", "cpu",
                              "--export", tmp_path / "cli.safetensors", "--json")
    assert status == 0, err
    assert without(mine, "train_seconds") == without(theirs, "train_seconds")
    assert mine["test_accuracy"] > 0.5 and mine["rows"] == [1294, 144, 359]
    # Byte for byte the same model, and the core reads it back.
    py, bin_ = (tmp_path / "py.safetensors").read_bytes(), (tmp_path / "cli.safetensors").read_bytes()
    assert py == bin_
    model = keel.load(tmp_path / "py.safetensors")
    assert (model.inputs, model.outputs) == (64, 10)


def test_a_different_seed_gives_a_different_run():
    a = keel.fit(**{**FIT, "epochs": 2})
    b = keel.fit(**{**FIT, "epochs": 2, "seed": 4})
    assert without(a, "train_seconds") != without(b, "train_seconds")


def test_simulate_and_the_emlp_basis_match_the_binary(cli):
    mine = keel.simulate("chain-pendulum", links=2, seed=7, t_end=0.5, integrator="rk4",
                         dt=0.01)
    status, theirs, err = cli("simulate", "chain-pendulum", "--links", "2", "--seed", "7",
                              "--t-end", "0.5", "--integrator", "rk4", "--dt", "0.01", "--json")
    assert status == 0, err
    assert mine == theirs and len(mine["t"]) == 51
    basis = keel.emlp.basis(group="SO(3)", rep_in="V**2", rep_out="V")
    status, theirs, err = cli("emlp", "basis", "--group", "SO(3)", "--rep-in", "V**2",
                              "--rep-out", "V", "--json")
    assert status == 0, err
    assert without(basis, "seconds") == without(theirs, "seconds") and basis["dim"] == 1


def test_negative_values_and_bare_flags_reach_the_command(cli):
    # `--lengths=-1` would be a flag after a space; the passthrough always writes --flag=value.
    with pytest.raises(ValueError, match="lengths"):
        keel.simulate("chain-pendulum", links=1, lengths=[-1.0])
    mine = keel.simulate("chain-pendulum", links=1, t_end=0.05, integrator="rk4", dt=0.01,
                         dtype="f32")
    assert mine["nodes"] == 1 and len(mine["t"]) == 6


def test_bad_input_is_the_binarys_error_line_as_a_value_error(cli):
    cases = [
        ["fit", "--data", DIGITS, "--target", "nope", "--task", "classify"],
        ["fit", "--data", DIGITS, "--target", "label", "--task", "classify", "--hidden", "0"],
        ["fit", "--data", ROOT, "--target", "label", "--task", "classify"],
        ["chnn", "train", "--system", "chain-pendulum", "--epochs", "0"],
        ["gp", "regress", "--train", ROOT / "missing.csv", "--test", ROOT / "missing.csv"],
    ]
    for args in cases:
        status, _, err = cli(*args)
        assert status == 2, (args, err)
        line = [l for l in err.splitlines() if l.startswith("error: ")]
        assert len(line) == 1, err
        with pytest.raises(ValueError) as e:
            keel.run(*args, "--json")
        assert str(e.value) == line[0][len("error: "):]
    with pytest.raises(ValueError, match="unexpected argument"):
        keel.fit(**FIT, no_such_flag=3)
    with pytest.raises(TypeError, match="positional"):
        keel.fit("digits.csv")
    with pytest.raises(TypeError, match="flag value"):
        keel.fit(**{**FIT, "seed": object()})


def test_a_run_that_fails_on_valid_input_is_a_runtime_error(tmp_path):
    with pytest.raises(RuntimeError, match="diverged.*--lr"):
        keel.fit(**{**FIT, "epochs": 3, "lr": 1e6, "optimizer": "sgd",
                    "export": tmp_path / "m.safetensors"})
    assert not (tmp_path / "m.safetensors").exists()


def test_training_releases_the_gil():
    ticks = 0
    done = threading.Event()

    def train():
        keel.fit(**{**FIT, "epochs": 40, "patience": 0, "hidden": [128, 128]})
        done.set()

    t = threading.Thread(target=train)
    start = time.perf_counter()
    t.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    t.join()
    seconds = time.perf_counter() - start
    # The loop ran throughout the training (a held GIL would leave it at one or two ticks).
    assert seconds > 0.1 and ticks >= 10, (ticks, seconds)


def test_every_command_group_is_there():
    for group, subs in [(keel.chnn, ["train", "eval"]), (keel.emlp, ["basis", "train"]),
                        (keel.gp, ["regress", "stream", "online", "classify", "bo", "active"]),
                        (keel.bayes, ["hmc", "sgd", "ensemble", "sgld", "sghmc", "vi",
                                      "compare", "export", "shift"]),
                        (keel.rl, ["train", "eval", "curves"]), (keel.firmware, ["check"])]:
        for s in subs:
            assert callable(getattr(group, s)), (group, s)
    assert keel.info()["cpu"]["threads"] >= 1


def same_run(cli, python_call, cli_args, timing=("train_seconds",)):
    """`python_call()` and the binary on `cli_args`: equal reports, timings aside."""
    mine = python_call()
    status, theirs, err = cli(*cli_args, "--json")
    assert status == 0, err
    assert without(mine, *timing) == without(theirs, *timing)
    return mine


def test_small_trainings_of_each_method_match_the_binary(tmp_path, cli):
    logistic = ROOT / "fixtures" / "bayes" / "logistic.csv"
    h = same_run(cli, lambda: keel.bayes.hmc(
        data=logistic, target="label", model="mlp:8", samples=10, burn_in=5, step_size=0.01,
        trajectory_length=0.2, seed=0, device="cpu", quiet=True),
        ["bayes", "hmc", "--data", logistic, "--target", "label", "--model", "mlp:8",
         "--samples", "10", "--burn-in", "5", "--step-size", "0.01", "--trajectory-length",
         "0.2", "--seed", "0", "--device", "cpu", "--quiet"])
    assert h["n_samples"] == 10

    c = same_run(cli, lambda: keel.chnn.train(
        system="chain-pendulum", links=2, n_train=10, n_test=2, epochs=3, batch=10, hidden=16,
        layers=1, quiet=True, export=tmp_path / "py.chnn"),
        ["chnn", "train", "--system", "chain-pendulum", "--links", "2", "--n-train", "10",
         "--n-test", "2", "--epochs", "3", "--batch", "10", "--hidden", "16", "--layers", "1",
         "--quiet", "--export", tmp_path / "cli.chnn"])
    assert c["epochs"] == 3
    assert (tmp_path / "py.chnn").read_bytes() == (tmp_path / "cli.chnn").read_bytes()
    assert keel.load(tmp_path / "py.chnn").rollout(
        np.array([0.0, -1.0, 0.0, -2.0, 0.1, 0.0, 0.2, 0.0]), 5).shape == (6, 8)

    r = same_run(cli, lambda: keel.rl.train(
        env="pendulum", steps=200, seed_steps=100, hidden=16, batch=16, eval_every=200,
        eval_episodes=1, quiet=True, export=tmp_path / "py.policy"),
        ["rl", "train", "--env", "pendulum", "--steps", "200", "--seed-steps", "100",
         "--hidden", "16", "--batch", "16", "--eval-every", "200", "--eval-episodes", "1",
         "--quiet", "--export", tmp_path / "cli.policy"],
        timing=("train_seconds", "update_seconds", "export"))
    assert r["steps"] == 200
    assert (tmp_path / "py.policy").read_bytes() == (tmp_path / "cli.policy").read_bytes()
    policy = keel.load(tmp_path / "py.policy")
    assert policy(np.array([1.0, 0.0, 0.0])).shape == (1,)
    same_run(cli, lambda: keel.rl.eval(env="pendulum", policy=tmp_path / "py.policy",
                                       episodes=2),
             ["rl", "eval", "--env", "pendulum", "--policy", tmp_path / "py.policy",
              "--episodes", "2"], timing=())

    e = same_run(cli, lambda: keel.emlp.train(
        dataset="o5-synthetic", n_train=50, n_val=20, n_test=20, epochs=2, ch=24, layers=1,
        device="cpu", quiet=True),
        ["emlp", "train", "--dataset", "o5-synthetic", "--n-train", "50", "--n-val", "20",
         "--n-test", "20", "--epochs", "2", "--ch", "24", "--layers", "1", "--device", "cpu",
         "--quiet"])
    assert e["epochs_run"] == 2


def test_a_panic_would_be_a_runtime_error_and_the_interpreter_goes_on():
    with pytest.raises(RuntimeError, match="internal error in keel.*deliberate panic"):
        keel._keel.panic_for_test()
    assert keel.load(ROOT / "firmware" / "assets" / "digits-mlp.safetensors").inputs == 64
    assert np.isfinite(keel.Wiski(0.0, 1.0).predict(np.array([0.5]))[1])
