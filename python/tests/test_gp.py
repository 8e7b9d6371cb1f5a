"""`keel.Wiski`, the core's online GP, against `keel gp regress --method wiski` (the binary) on
the same CSV files and settings, and its refusals."""

import numpy as np
import pytest

import keel


def write_csv(path, columns, header):
    np.savetxt(path, np.column_stack(columns), delimiter=",", header=",".join(header),
               comments="", fmt="%.17g")
    return path


@pytest.mark.parametrize("dim", [1, 2])
def test_online_updates_give_the_commands_wiski_posterior(tmp_path, cli, dim):
    rng = np.random.default_rng(dim)
    x = rng.uniform(-3, 3, (300, dim))
    y = np.sin(3 * x[:, 0]) + 0.3 * x.sum(axis=1) + 0.1 * rng.standard_normal(300)
    xt = rng.uniform(-3, 3, (40, dim))
    names = [f"x{k}" for k in range(dim)]
    train = write_csv(tmp_path / "train.csv", [*x.T, y], names + ["y"])
    test = write_csv(tmp_path / "test.csv", list(xt.T), names)
    size, noise, ls = (48, 0.02, 0.6) if dim == 1 else (12, 0.05, 0.9)
    status, report, err = cli("gp", "regress", "--train", train, "--test", test, "--method",
                              "wiski", "--grid-size", size, "--grid-bounds", "-3.5,3.5",
                              "--noise", noise, "--lengthscale", ls, "--json")
    assert status == 0, err
    gp = keel.Wiski([-3.5] * dim, [3.5] * dim, grid_size=size, noise=noise, lengthscale=ls)
    assert (gp.dim, gp.nodes, len(gp)) == (dim, size ** dim, 0)
    for i in range(0, 300, 100):  # in three batches: the same stream of rank-1 updates
        gp.update(x[i:i + 100], y[i:i + 100])
    assert len(gp) == 300
    mean, var = gp.predict(xt)
    np.testing.assert_allclose(mean, report["mean"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(var, report["var_f"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gp.log_marginal_likelihood, report["log_marginal_likelihood"],
                               rtol=1e-9)
    # The same through the passthrough.
    again = keel.gp.regress(train=train, test=test, method="wiski", grid_size=size,
                            grid_bounds=[-3.5, 3.5], noise=noise, lengthscale=ls)
    assert again["mean"] == report["mean"] and again["var_f"] == report["var_f"]
    # Refactorising from the statistics changes nothing but rounding.
    gp.refactorize()
    np.testing.assert_allclose(gp.predict(xt)[0], mean, rtol=1e-8, atol=1e-10)


def test_one_point_at_a_time_and_scalars():
    gp = keel.Wiski(0.0, 1.0, grid_size=16, noise=1e-4, lengthscale=0.3)
    prior_mean, prior_var = gp.predict(np.array([0.5]))
    assert prior_mean == 0.0 and prior_var == pytest.approx(1.0, rel=1e-3)
    gp.update(np.array([0.5]), 2.0)
    mean, var = gp.predict(np.array([0.5]))
    assert isinstance(mean, float) and mean == pytest.approx(2.0, rel=1e-3) and var < 1e-3


@pytest.mark.parametrize("kwargs, needle", [
    (dict(grid_size=2), "grid_size"),
    (dict(noise=0.0), "noise"),
    (dict(noise=float("nan")), "noise"),
    (dict(lengthscale=[1.0, 2.0]), "lengthscale"),
    (dict(kernel="cosine"), "kernel"),
    (dict(convention="middle"), "convention"),
    (dict(grid_size=100000), "grid_size"),
    (dict(dim=4), "1 to 3"),
])
def test_bad_settings_raise_value_errors_naming_them(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        keel.Wiski(-1.0, 1.0, **kwargs)


def test_bad_observations_raise_and_leave_the_model_usable():
    gp = keel.Wiski(-1.0, 1.0, grid_size=16)
    with pytest.raises(ValueError, match="columns"):
        gp.update(np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="one y per row"):
        gp.update(np.zeros((3, 1)), np.zeros(2))
    with pytest.raises(ValueError, match="finite"):
        gp.update(np.zeros((2, 1)), np.array([0.0, np.inf]))
    with pytest.raises(ValueError, match="finite"):
        gp.predict(np.array([[np.nan]]))
    with pytest.raises(TypeError, match="float32 or float64"):
        gp.update(np.zeros((2, 1), dtype=np.int64), np.zeros(2))
    # Off the grid (no clamp): the core's error, naming the row; rows before it stay absorbed.
    with pytest.raises(ValueError, match="x row 1"):
        gp.update(np.array([[0.5], [7.0]]), np.array([1.0, 1.0]))
    assert len(gp) == 1
    clamped = keel.Wiski(-1.0, 1.0, grid_size=16, clamp=True)
    clamped.update(np.array([[7.0]]), 1.0)
    assert len(clamped) == 1
