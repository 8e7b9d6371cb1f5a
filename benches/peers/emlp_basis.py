#!/usr/bin/env python3
"""Peer benchmark: how long the reference package (emlp 1.0.3, JAX, CPU, unpatched) takes to
solve equivariant bases, for comparison with Keel's basis solver.

Environment (the same venv as the fixture generator; requirements-emlp.txt here has the same pins):
  python3.11 -m venv fixtures/gen/.venv-emlp
  fixtures/gen/.venv-emlp/bin/pip install -r benches/peers/requirements-emlp.txt
  fixtures/gen/.venv-emlp/bin/python benches/peers/emlp_basis.py \
      --out benches/peers/emlp_basis_results.json

For every case of CASES:
  cold  a fresh Python process (subprocess) imports emlp, builds the rep, and solves once.
        cold_solve_s: from just before `rep.equivariant_basis()` to after the basis is dense
        (np.asarray of the array, or .to_dense() of emlp's lazy operator for sum/product reps);
        it includes JAX's compilation. cold_process_s: wall time of the whole subprocess
        (interpreter start, `import emlp`, rep construction, solve, exit).
  warm  one process for all cases (a separate subprocess, so the cold runs stay cold). After a
        first solve of the case, emlp's solution cache (`Rep.solcache`, a class-level dict keyed
        by canonical rep) is cleared and the same rep is solved again, --repeats times;
        warm_s is the median. JAX's compiled SVD is reused then, so warm_s is the solve itself.
        (With the cache left in place a repeat only looks the answer up: cached_s, ~1e-4 s.)
emlp picks its solver per canonical summand: dense SVD of the constraint matrix when it has
<= 3e7 entries, otherwise its iterative (gradient-descent) solver; `solver` says which ran.
*_cpu_s: process CPU time (all threads) over the same interval, less affected by other jobs.
np.random.seed(0) before every solve (the iterative solver draws its start from np.random).

Each result is printed as one JSON line on stdout:
  {"case", "cold_solve_s", "cold_process_s", "warm_s", "dim", ...}
and, with --out, written with the machine description to a JSON file.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

# (case label, group, rep_in, rep_out) in emlp's Python notation
CASES = [
    ("SO(3) V**2->V", "SO(3)", "V**2", "V"),
    ("O(3) 5*Scalar+5*V->V**2", "O(3)", "5*Scalar+5*V", "V**2"),
    ("O(5) V**2->Scalar", "O(5)", "V**2", "Scalar"),
    ("SO13p() V**4->Scalar", "SO13p()", "V**4", "Scalar"),
    ("O13() V**4->Scalar", "O13()", "V**4", "Scalar"),
    ("S(6) V**2->V**2", "S(6)", "V**2", "V**2"),
    ("S(5) T(5)->Scalar", "S(5)", "T(5)", "Scalar"),
    ("Z(6) V->V", "Z(6)", "V", "V"),
    ("RubiksCube() V->V", "RubiksCube()", "V", "V"),
    ("SO(4) 3*V+V**2->((V.T+Scalar)>>(Scalar+V**2+V))", "SO(4)", "3*V+V**2",
     "(V.T+Scalar)>>(Scalar+V**2+V)"),
]


def _setup():
    """Import emlp; returns (namespace for eval, representation module, import seconds)."""
    t0 = time.perf_counter()
    import emlp.groups
    import emlp.reps.representation as representation
    from emlp.reps import V, T, Scalar
    dt = time.perf_counter() - t0
    ns = {n: getattr(emlp.groups, n) for n in dir(emlp.groups) if not n.startswith("_")}
    ns.update(V=V, T=T, Scalar=Scalar)
    calls = [0]
    orig = representation.krylov_constraint_solve

    def counting(*a, **k):  # pass-through: notes whether the iterative solver ran
        calls[0] += 1
        return orig(*a, **k)

    representation.krylov_constraint_solve = counting
    return ns, representation, calls, dt


def _solve(ns, case):
    import numpy as np
    _, group, rin, rout = case
    rep = (eval(rin, ns) >> eval(rout, ns))(eval(group, ns))
    np.random.seed(0)
    c0 = time.process_time()
    t0 = time.perf_counter()
    Q = rep.equivariant_basis()
    Q = np.asarray(Q.to_dense() if hasattr(Q, "to_dense") else Q)
    dt = time.perf_counter() - t0
    _solve.cpu = time.process_time() - c0  # CPU time of the process, all threads
    return rep, Q, dt


def child_cold(i):
    ns, rep_mod, calls, import_s = _setup()
    rep, Q, dt = _solve(ns, CASES[i])
    print(json.dumps({"cold_solve_s": dt, "cold_solve_cpu_s": _solve.cpu, "import_s": import_s, "dim": int(Q.shape[1]),
                      "n_w": int(Q.shape[0]),
                      "solver": "iterative" if calls[0] else "dense"}))


def child_warm(repeats):
    ns, rep_mod, calls, _ = _setup()
    for case in CASES:
        rep, Q, first = _solve(ns, case)  # first solve: compilation, fills the cache
        t0 = time.perf_counter()
        Qc = rep.equivariant_basis()
        Qc = Qc.to_dense() if hasattr(Qc, "to_dense") else Qc
        cached = time.perf_counter() - t0
        times, cpu = [], []
        for _ in range(repeats):
            rep_mod.Rep.solcache.clear()
            _, Q, dt = _solve(ns, case)
            times.append(dt)
            cpu.append(_solve.cpu)
        print(json.dumps({"case": case[0], "first_s": first, "warm_s": statistics.median(times),
                          "warm_all_s": times,
                          "warm_cpu_s": statistics.median(cpu), "cached_s": cached, "dim": int(Q.shape[1])}),
              flush=True)


def run_child(args, timeout):
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, os.path.abspath(__file__)] + args, capture_output=True,
                       text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{p.stderr[-3000:]}")
    return [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")], wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--child-cold", type=int)
    ap.add_argument("--child-warm", action="store_true")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--only", help="substring filter on case labels")
    ap.add_argument("--out")
    a = ap.parse_args()
    if a.child_cold is not None:
        return child_cold(a.child_cold)
    if a.child_warm:
        global CASES
        if a.only:
            CASES = [c for c in CASES if a.only in c[0]]
        return child_warm(a.repeats)

    load_start = os.getloadavg()
    idx = [i for i, c in enumerate(CASES) if not a.only or a.only in c[0]]
    results = []
    cold = {}
    for i in idx:
        (r,), wall = run_child(["--child-cold", str(i)], timeout=3600)
        cold[CASES[i][0]] = (r, wall)
        print(f"cold {CASES[i][0]}: solve {r['cold_solve_s']:.3f} s, process {wall:.2f} s",
              file=sys.stderr)
    warm_args = ["--child-warm", "--repeats", str(a.repeats)] + (["--only", a.only] if a.only else [])
    warm, _ = run_child(warm_args, timeout=7200)
    warm = {w["case"]: w for w in warm}
    for i in idx:
        label = CASES[i][0]
        r, wall = cold[label]
        w = warm[label]
        assert w["dim"] == r["dim"]
        rec = {"case": label, "cold_solve_s": round(r["cold_solve_s"], 4),
               "cold_solve_cpu_s": round(r["cold_solve_cpu_s"], 4),
               "cold_process_s": round(wall, 3), "warm_s": round(w["warm_s"], 4),
               "dim": r["dim"], "n_w": r["n_w"], "solver": r["solver"],
               "import_s": round(r["import_s"], 3), "warm_first_s": round(w["first_s"], 4),
               "warm_all_s": [round(t, 4) for t in w["warm_all_s"]],
               "warm_cpu_s": round(w["warm_cpu_s"], 4),
               "cached_s": float(f"{w['cached_s']:.3g}")}
        print(json.dumps(rec), flush=True)
        results.append(rec)
    if a.out:
        import importlib.metadata as md
        vers = {p: md.version(p) for p in ["emlp", "jax", "jaxlib", "numpy", "scipy", "optax"]}
        doc = {"generator": "benches/peers/emlp_basis.py",
               "versions": vers, "python": platform.python_version(),
               "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores (os.cpu_count), "
                          f"{platform.platform()}; JAX on the CPU, float32",
               "repeats": a.repeats,
               "loadavg_1_5_15_start": [round(x, 2) for x in load_start],
               "loadavg_1_5_15_end": [round(x, 2) for x in os.getloadavg()],
               "definitions": "cold_solve_s: first solve in a fresh process (JIT included); "
                              "cold_process_s: wall time of that whole process incl. import; "
                              "warm_s: median over repeats of a re-solve after clearing "
                              "Rep.solcache in a process that already solved the case; "
                              "cached_s: a repeat with the cache in place; *_cpu_s: the "
                              "process CPU time (all threads) over the same interval, less "
                              "affected by other jobs on the machine",
               "results": results}
        with open(a.out, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main()
