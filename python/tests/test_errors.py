"""Bad input at every boundary is a Python exception naming what is wrong — never a crash:
unreadable, corrupt, truncated and mutated files, files of other kinds, arrays of the wrong
dtype, shape or values."""

import numpy as np
import pytest

import keel
from conftest import ASSETS, asset

MODELS = ["digits-mlp", "emlp-o5", "digits-bma", "pendulum-policy", "pendulum-value",
          "chnn-pend2"]


def test_unreadable_files_are_os_errors_naming_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        keel.load(tmp_path / "missing.safetensors")
    with pytest.raises(IsADirectoryError):
        keel.load(tmp_path)


@pytest.mark.parametrize("data, needle", [
    (b"", "safetensors|header|short|truncated|length"),
    (b"\x00" * 7, ""),
    (b"\xff" * 64, ""),
    (b"not a safetensors file at all", ""),
])
def test_garbage_is_a_value_error(data, needle):
    with pytest.raises(ValueError, match=needle or None):
        keel.load_bytes(data, "junk.safetensors")


def test_files_of_other_kinds_are_refused_with_the_kind(tmp_path):
    with pytest.raises(ValueError, match="`samples`"):
        keel.load(ASSETS / "digits-samples.safetensors")
    with pytest.raises(ValueError, match="keel.kind"):
        keel.load_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}", "empty-header")


@pytest.mark.parametrize("name", MODELS)
def test_truncated_and_mutated_model_files_raise_or_load_never_crash(name):
    good = asset(name).read_bytes()
    rng = np.random.default_rng(len(good))
    cuts = sorted(set(rng.integers(0, len(good), 12)) | {0, 8, 9, len(good) - 1})
    for cut in cuts:
        with pytest.raises(ValueError):
            keel.load_bytes(good[:cut], f"{name}[:{cut}]")
    # Flipped bytes in the header and in the data: refused, or loaded and still evaluable.
    for _ in range(40):
        bad = bytearray(good)
        for i in rng.integers(0, min(len(bad), 600), 3):
            bad[i] ^= 1 << int(rng.integers(0, 8))
        try:
            m = keel.load_bytes(bytes(bad), name)
        except ValueError:
            continue
        width = getattr(m, "inputs", getattr(m, "observations", None))
        if width is not None:
            try:
                m(np.zeros((2, width)))
            except ValueError:
                pass


@pytest.mark.parametrize("name", ["digits-mlp", "emlp-o5", "digits-bma", "pendulum-policy",
                                  "pendulum-value"])
def test_arrays_of_the_wrong_kind_shape_or_values(name):
    m = keel.load(asset(name))
    width = getattr(m, "inputs", getattr(m, "observations", None))
    with pytest.raises(TypeError, match="float32 or float64"):
        m(np.zeros((2, width), dtype=np.int64))
    with pytest.raises(TypeError, match="float32 or float64"):
        m([[0.0] * width])
    with pytest.raises(TypeError, match="float32 or float64"):
        m(np.zeros((2, width), dtype=np.complex128))
    with pytest.raises(ValueError, match=f"columns.*{width}"):
        m(np.zeros((2, width + 1)))
    with pytest.raises(ValueError, match="1-D .* or 2-D"):
        m(np.zeros((2, 2, width)))
    with pytest.raises(ValueError, match="1-D .* or 2-D"):
        m(np.array(1.0))
    with pytest.raises(TypeError, match="not a float64"):
        m(np.float64(1.0))
    x = np.zeros((3, width))
    x[2, width - 1] = np.nan
    with pytest.raises(ValueError, match=rf"\[2, {width - 1}\] is NaN"):
        m(x)
    x[2, width - 1] = -np.inf
    with pytest.raises(ValueError, match="finite"):
        m(x.astype(np.float32))
    assert m(np.zeros((0, width))).shape[0] == 0


def test_learned_dynamics_refuse_bad_states_and_steps():
    d = keel.load(asset("chnn-pend2"))
    z0 = np.array([0.0, -1.0, 0.0, -2.0, 0.1, 0.0, 0.2, 0.0])
    with pytest.raises(ValueError, match="columns"):
        d.rollout(z0[:6], 3)
    with pytest.raises(ValueError, match="one state"):
        d.rollout(np.stack([z0, z0]), 3)
    with pytest.raises(ValueError, match="dt"):
        d.rollout(z0, 3, dt=0.0)
    with pytest.raises(ValueError, match="dt"):
        d.rollout(z0, 3, dt=float("nan"))
    with pytest.raises(ValueError, match="NaN"):
        d.rollout(np.full(8, np.nan), 3)
    with pytest.raises(ValueError, match="steps"):
        d.rollout(z0, 10**9)
    with pytest.raises(OverflowError):
        d.rollout(z0, -1)
    # Two nodes on top of each other: no constraint length to measure; the core says so.
    with pytest.raises(ValueError):
        d.rollout(np.zeros(8), 3)
