"""Keel from Python.

- ``keel.load(path)`` reads a model Keel exported with the controller core's own loader (the
  code the firmware runs) and returns a callable: ``Mlp``, ``Emlp``, ``Bma``, ``Policy``,
  ``ValueModel``, or ``LearnedDynamics`` (CHNN/CLNN, with ``rollout``). ``model(x)`` takes a
  float32 or float64 numpy array, one row (1-D) or rows (2-D), borrowed without a copy when it
  is C-contiguous, and returns a new array of the same dtype.
- ``keel.ChainPendulum(links)`` is the CHNN paper's chain pendulum stepped by the core's RK4 or
  RATTLE integrators (``state_from_angles``, ``energy``, ``rollout``).
- ``keel.Wiski`` is the core's online Gaussian process: ``update(x, y)`` in constant time,
  ``predict(x)`` -> ``(mean, var)``.
- The ``keel`` command's jobs run in this process with the GIL released: ``keel.fit``,
  ``keel.simulate``, ``keel.info``, ``keel.chnn.train``, ``keel.emlp.train``,
  ``keel.gp.regress``, ``keel.bayes.hmc``, ``keel.rl.train`` … Keyword arguments are the
  command's flags (``n_train=800`` is ``--n-train 800``, ``True`` a bare flag, a list a
  comma-separated value); each returns the command's ``--json`` report as a dict. Bad input
  raises ``ValueError`` with the command's one-line message (exit status 2), a run that failed
  on valid input ``RuntimeError`` (exit status 1). ``keel <command> --help`` lists the flags.
"""

import json as _json
import os as _os

from . import _keel
from ._keel import (Bma, ChainPendulum, Emlp, LearnedDynamics, Mlp, Policy, ValueModel, Wiski,
                    load_bytes)
from ._keel import load as _load

__all__ = [
    "load", "load_bytes", "run", "fit", "simulate", "info", "bayes", "chnn", "emlp", "gp",
    "rl", "firmware", "Mlp", "Emlp", "Bma", "Policy", "ValueModel", "LearnedDynamics", "Wiski",
    "ChainPendulum",
]


def load(path):
    """Reads the model exported to ``path`` with the core's loader for its ``keel.kind``.

    Returns an ``Mlp``, ``Emlp``, ``Bma``, ``Policy``, ``ValueModel`` or ``LearnedDynamics``.
    Raises ``OSError`` if the file cannot be read and ``ValueError`` for a file that is not
    such a model (a corrupt file, another kind), naming what is wrong.
    """
    return _load(_os.fspath(path))


def _value(flag, v):
    if isinstance(v, (list, tuple)):
        return ",".join(_value(flag, x) for x in v)
    if isinstance(v, bool):
        raise TypeError(f"{flag}: a list of booleans is not a flag value")
    if isinstance(v, (int, float, str)) or isinstance(v, _os.PathLike):
        return _os.fspath(v) if isinstance(v, _os.PathLike) else str(v)
    if hasattr(v, "item"):  # a numpy scalar
        return str(v.item())
    raise TypeError(f"{flag}: {type(v).__name__} is not a flag value (give a number, a string, "
                    f"a path or a list of them)")


def _flags(kwargs):
    """Keyword arguments as flags: ``n_train=800`` -> ``--n-train=800``; ``True`` -> ``--name``;
    ``False`` and ``None`` -> nothing; a list -> comma-separated."""
    args = []
    for name, v in kwargs.items():
        flag = "--" + name.replace("_", "-")
        if v is None or v is False:
            continue
        if v is True:
            args.append(flag)
        else:
            args.append(f"{flag}={_value(flag, v)}")
    return args


def run(*args):
    """Runs ``keel ARGS…`` in this process and returns its ``--json`` report (``None`` if the
    command gave none: pass ``--json``). ``ValueError`` for bad input, ``RuntimeError`` for a
    run that failed."""
    return _json.loads(_keel.run([_os.fspath(a) for a in args]))


def _command(words, positional=(), doc=""):
    def call(*pos, **kwargs):
        if len(pos) > len(positional) and positional[-1:] != ("*",):
            raise TypeError(f"keel {' '.join(words)} takes {len(positional)} positional "
                            f"argument(s) ({', '.join(positional) or 'none'}), not {len(pos)}")
        kwargs.setdefault("json", True)
        return run(*words, *[_os.fspath(p) if isinstance(p, _os.PathLike) else str(p)
                             for p in pos], *_flags(kwargs))
    call.__name__ = words[-1]
    call.__qualname__ = ".".join(words)
    call.__doc__ = (f"``keel {' '.join(words)}`` in process: {doc}\n\nKeyword arguments are "
                    f"its flags (``keel {' '.join(words)} --help``); returns its JSON report "
                    f"as a dict.")
    return call


class _Group:
    """The subcommands of one ``keel`` command."""

    def __init__(self, name, doc, **subcommands):
        self.__doc__ = doc
        self._name = name
        for sub, (positional, sdoc) in subcommands.items():
            setattr(self, sub, _command((name, sub), positional, sdoc))

    def __repr__(self):
        subs = sorted(k for k in vars(self) if not k.startswith("_"))
        return f"<keel.{self._name}: {', '.join(subs)}>"


fit = _command(("fit",), (), "train an MLP on a CSV table and export it for the core.")
simulate = _command(("simulate",), ("system",),
                    "simulate a system of the CHNN paper (or `paper`: all of them).")
info = _command(("info",), (), "the compute backends of this machine.")

chnn = _Group("chnn", "Learned constrained dynamics (CHNN/CLNN).",
              train=((), "train on a system of the paper and report the rollout error."),
              eval=((), "evaluate a saved model on test trajectories."))
emlp = _Group("emlp", "Equivariant MLPs.",
              basis=((), "the basis of equivariant maps between two representations."),
              train=((), "train an EMLP (or an MLP baseline) on one of the data sets."))
gp = _Group("gp", "Gaussian processes.",
            regress=((), "exact, SKI or WISKI regression on CSV files."),
            stream=((), "online learning on a stream."),
            online=((), "online regression on a data file's rows."),
            classify=((), "online Dirichlet-GP classification of a data file's rows "
                          "(or the banana stream)."),
            bo=((), "Bayesian optimisation of a test function."),
            active=((), "qNIPV active learning on a generated 2-D field."))
gp.Wiski = Wiski
bayes = _Group("bayes", "Bayesian neural networks.",
               hmc=((), "full-batch HMC."), sgd=((), "SGD (one member)."),
               ensemble=((), "deep ensembles."), sgld=((), "SGLD."), sghmc=((), "SGHMC."),
               vi=((), "mean-field variational inference."),
               compare=((), "compare sample sets with a reference."),
               export=((), "export the model average for the core."),
               shift=((), "sample sets on corrupted test images."))
rl = _Group("rl", "Model-based reinforcement learning (SAC-SVG(H)).",
            train=((), "train a policy on an environment of the core."),
            eval=((), "evaluate an exported policy with the core's code."),
            curves=(("*",), "average learning curves of `rl train --json` runs."))
firmware = _Group("firmware", "The Cortex-M4F firmware.",
                  check=(("log",), "compare the firmware's output with the host."))
