"""Shared fixtures: the repository's files, the `keel` binary the CLI comparisons run, and a
reader of safetensors files in numpy (the independent side of the model comparisons)."""

import json
import os
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "firmware" / "assets"
DIGITS = ROOT / "fixtures" / "data" / "digits.csv"


def asset(name):
    return ASSETS / f"{name}.safetensors"


def read_safetensors(path):
    """(tensors as float64/int arrays, metadata) of a safetensors file, by the format's spec."""
    raw = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = raw[8 + n:]
    dtypes = {"F32": "<f4", "F64": "<f8", "U32": "<u4", "I64": "<i8"}
    tensors = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        tensors[name] = np.frombuffer(data[a:b], dtype=dtypes[t["dtype"]]).reshape(t["shape"])
    return tensors, meta


@pytest.fixture(scope="session")
def keel_binary():
    """The `keel` binary built by `cargo test`/`cargo build` (KEEL_BINARY, else target/debug)."""
    path = Path(os.environ.get("KEEL_BINARY", ROOT / "target" / "debug" / "keel"))
    if not path.exists():
        pytest.fail(f"no keel binary at {path}: build it (cargo build -p keel-cli) or set KEEL_BINARY")
    return path


@pytest.fixture(scope="session")
def cli(keel_binary):
    """Runs the binary: (exit status, parsed stdout JSON or None, stderr)."""
    def run(*args):
        o = subprocess.run([str(keel_binary), *map(str, args)], capture_output=True, text=True)
        out = json.loads(o.stdout) if o.returncode == 0 and o.stdout.strip() else None
        return o.returncode, out, o.stderr
    return run


def without(report, *keys):
    """`report` without the keys that measure time (they differ between two runs)."""
    if isinstance(report, dict):
        return {k: without(v, *keys) for k, v in report.items() if k not in keys}
    if isinstance(report, list):
        return [without(v, *keys) for v in report]
    return report
