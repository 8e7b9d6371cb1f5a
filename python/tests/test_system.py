"""keel.ChainPendulum: the core's chain pendulum and integrators stepped from Python, against an
independent numpy integration of the pendulum's angle equation, the README's numbers and the
integrators' own invariants; bad input raises."""

import numpy as np
import pytest

import keel

G = 9.81


def angle_rk4(theta, omega, length, dt, steps):
    """θ'' = −(g/l) sin θ by classic RK4 in numpy: the single pendulum in its angle, the
    formulation the core's Cartesian-with-constraints one must agree with."""

    def f(s):
        return np.array([s[1], -G / length * np.sin(s[0])])

    s = np.array([theta, omega], dtype=np.float64)
    for _ in range(steps):
        k1 = f(s)
        k2 = f(s + 0.5 * dt * k1)
        k3 = f(s + 0.5 * dt * k2)
        k4 = f(s + dt * k3)
        s = s + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return s


def test_one_link_follows_the_angle_equation():
    p = keel.ChainPendulum(1)
    z0 = p.state_from_angles(np.array([1.2]), np.array([-0.4]))
    assert z0.shape == (4,) and z0.dtype == np.float64
    length = np.hypot(z0[0], z0[1])
    states = p.rollout(z0, steps=2000, dt=1e-3)
    assert states.shape == (2001, 4)
    theta, _ = angle_rk4(1.2, -0.4, length, 1e-4, 20000)
    x, y = states[-1, 0], states[-1, 1]
    # Both integrations converge (RK4: error ~ dt⁴); the positions agree far below either step.
    assert abs(x - length * np.sin(theta)) < 1e-9 and abs(y + length * np.cos(theta)) < 1e-9
    # The constraint holds: the bob stays on its circle.
    assert np.abs(np.hypot(states[:, 0], states[:, 1]) - length).max() < 1e-9


def test_three_links_in_float32_give_the_readme_energies_and_rattle_bounds_the_drift():
    p = keel.ChainPendulum(3)
    z0 = p.state_from_angles(np.array([0.3, -0.2, 1.1], dtype=np.float32),
                             np.array([0.0, 0.5, -0.3], dtype=np.float32))
    assert z0.dtype == np.float32 and z0.shape == (12,)
    states = p.rollout(z0, steps=1000, dt=0.01)
    assert states.dtype == np.float32
    # The README's Rust and C examples run the same core code in f32: −58.96516 → −58.96524.
    assert p.energy(states[0]) == pytest.approx(-58.96516, abs=5e-6)
    assert p.energy(states[-1]) == pytest.approx(-58.96524, abs=5e-6)
    # float64 agrees with float32 to its precision over the 10 s.
    z64 = p.state_from_angles(np.array([0.3, -0.2, 1.1]), np.array([0.0, 0.5, -0.3]))
    s64 = p.rollout(z64, steps=1000, dt=0.01)
    assert np.abs(s64[-1] - states[-1]).max() < 1e-3
    # RATTLE is symplectic on the constraint manifold and second order: over 100 s its energy
    # error does not grow (the second half's largest is no larger than the first half's) and
    # shrinks four-fold when the step halves (measured: 1.04e-2, 2.50e-3, 6.24e-4).
    e0 = p.energy(z64)
    worst = []
    for dt in (0.01, 0.005):
        e = p.energy(p.rollout(z64, steps=round(100 / dt), dt=dt, method="leapfrog")) - e0
        assert e.shape == (round(100 / dt) + 1,)
        half = len(e) // 2
        assert np.abs(e[half:]).max() <= 1.05 * np.abs(e[:half]).max()
        worst.append(np.abs(e).max())
    assert 3.5 < worst[0] / worst[1] < 4.5


def test_bad_input_raises():
    with pytest.raises(ValueError, match="1 to 6 links"):
        keel.ChainPendulum(7)
    p = keel.ChainPendulum(2)
    z0 = p.state_from_angles(np.array([0.1, 0.2]), np.array([0.0, 0.0]))
    with pytest.raises(ValueError, match="rates"):
        p.state_from_angles(np.array([0.1, 0.2]), np.array([0.0]))
    with pytest.raises(ValueError, match="same dtype"):
        p.state_from_angles(np.array([0.1, 0.2]), np.array([0.0, 0.0], dtype=np.float32))
    with pytest.raises(ValueError, match="dt"):
        p.rollout(z0, steps=10, dt=0.0)
    with pytest.raises(ValueError, match="dt"):
        p.rollout(z0, steps=10, dt=float("nan"))
    with pytest.raises(ValueError, match="method"):
        p.rollout(z0, steps=10, dt=0.01, method="euler")
    with pytest.raises(ValueError, match="z0"):
        p.rollout(z0[:7], steps=10, dt=0.01)
    with pytest.raises(ValueError):
        p.rollout(np.full(8, np.nan), steps=10, dt=0.01)
    with pytest.raises(TypeError, match="float32 or float64"):
        p.rollout(z0.astype(np.int64), steps=10, dt=0.01)
    with pytest.raises(ValueError, match="10,000,000"):
        p.rollout(z0, steps=10**8, dt=0.01)
    # A step far too large for RATTLE's constraint solve fails as a run, not a crash.
    with pytest.raises(RuntimeError, match="rollout failed"):
        p.rollout(p.state_from_angles(np.array([3.0, -3.0]), np.array([40.0, -40.0])),
                  steps=50, dt=5.0, method="leapfrog")
