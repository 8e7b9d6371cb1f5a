//! Learned constrained dynamics on the controller: a CHNN or CLNN exported by the host
//! (`keel chnn train --export`) loaded in place and integrated like any other [`Mechanics`].
//!
//! The file carries the learned potential `V(vec x)` (a tanh MLP, `layer{i}.weight`/`.bias` and
//! `keel.config` as for [`Mlp`]), the learned mass parameters `mass.theta` (per body
//! `m = exp θ₀`, `I_k = exp θ_k`) and the constraint graph (`graph.bodies`, `graph.tethers`,
//! `graph.distances`, `graph.linear`; indices stored as exact small floats; an extended body's
//! internal distances are implied by the body and skipped if listed). The model never
//! saw the lengths, so [`load`] measures them on a state of the caller's (they enter only
//! [`Mechanics::project`] and [`Mechanics::violation`], never the vector field).
//!
//! `∇V` is the MLP's input gradient ([`Mlp::input_gradient`]) computed in a stack buffer of `S`
//! scalars per call (checked at load: `S ≥ Mlp::scratch_len()`; a 3 × 256 potential needs
//! 1281, i.e. 5 kB in `f32`). Nothing allocates and nothing recurses.

use super::constraint::Linear;
use super::mechanics::{Mechanics, MechanicsBuilder};
use super::potential::Potential;
use crate::io::SafeTensors;
use crate::nn::Mlp;
use crate::{Error, Real, Result};

/// Which equations the exported model was trained with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// CHNN: the projected Hamiltonian field on `(x, p)` ([`Mechanics::hamiltonian_rate`]).
    Hamiltonian,
    /// CLNN: the constrained Lagrangian field on `(x, v)` ([`Mechanics::lagrangian_rate`],
    /// integrate [`super::Lagrangian`]).
    Lagrangian,
}

/// A learned potential `V(vec x)`: an MLP with one output on the `N·D` node coordinates
/// (node-major), evaluated with a stack scratch of `S` scalars.
#[derive(Clone, Copy, Debug)]
pub struct LearnedPotential<'a, const L: usize, const S: usize> {
    mlp: Mlp<'a, L>,
}

impl<'a, const L: usize, const S: usize> LearnedPotential<'a, L, S> {
    /// Wraps a loaded MLP after checking its shape.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] unless it maps `inputs` coordinates to one output;
    /// [`Error::ScratchTooSmall`] if `S` is below [`Mlp::scratch_len`].
    pub fn new(mlp: Mlp<'a, L>, inputs: usize) -> Result<Self> {
        if mlp.inputs() != inputs {
            return Err(Error::ShapeMismatch {
                what: "potential inputs (nodes × dimensions)",
                expected: inputs,
                got: mlp.inputs(),
            });
        }
        if mlp.outputs() != 1 {
            return Err(Error::ShapeMismatch {
                what: "potential outputs",
                expected: 1,
                got: mlp.outputs(),
            });
        }
        if mlp.scratch_len() > S {
            return Err(Error::ScratchTooSmall {
                needed: mlp.scratch_len(),
                got: S,
            });
        }
        Ok(Self { mlp })
    }

    /// The network.
    pub fn mlp(&self) -> &Mlp<'a, L> {
        &self.mlp
    }
}

impl<T: Real, const N: usize, const D: usize, const L: usize, const S: usize> Potential<T, N, D>
    for LearnedPotential<'_, L, S>
{
    /// `V(x)`; NaN if the network cannot be evaluated (impossible after [`LearnedPotential::new`]'s
    /// checks, with `N·D` equal to the inputs given there).
    fn energy(&self, x: &[[T; D]; N]) -> T {
        let mut scratch = [T::ZERO; S];
        let mut out = [T::ZERO; 1];
        match self.mlp.forward(x.as_flattened(), &mut out, &mut scratch) {
            Ok(()) => out[0],
            Err(_) => T::from_f64(f64::NAN),
        }
    }

    /// Adds `∇V(x)`; NaN in every component if the network cannot be evaluated (as
    /// [`energy`](Potential::energy)), which the integrators report as non-finite.
    fn accumulate_gradient(&self, x: &[[T; D]; N], grad: &mut [[T; D]; N]) {
        let mut scratch = [T::ZERO; S];
        let mut g = [[T::ZERO; D]; N];
        let ok = self
            .mlp
            .input_gradient(
                x.as_flattened(),
                &[T::ONE],
                g.as_flattened_mut(),
                &mut scratch,
            )
            .is_ok();
        for (a, b) in grad.as_flattened_mut().iter_mut().zip(g.as_flattened()) {
            *a = if ok { *a + *b } else { T::from_f64(f64::NAN) };
        }
    }
}

/// A loaded learned model: its mechanics (learned masses, the graph, the learned potential) and
/// the form it was trained in.
pub struct Learned<
    'a,
    T,
    const N: usize,
    const D: usize,
    const C: usize,
    const L: usize,
    const S: usize,
> {
    /// The system to integrate: [`Mechanics`] itself for [`Form::Hamiltonian`],
    /// [`super::Lagrangian`] around it for [`Form::Lagrangian`].
    pub mechanics: Mechanics<T, N, D, C, LearnedPotential<'a, L, S>>,
    /// Hamiltonian (CHNN) or Lagrangian (CLNN).
    pub form: Form,
}

/// `keel.kind` of exported CHNN and CLNN models.
pub const KINDS: [&str; 2] = ["chnn", "clnn"];

/// Rows of a float tensor of shape `[rows, width]`, or zero rows if it is absent.
fn table<'a, const MAX: usize>(
    st: &SafeTensors<'a, MAX>,
    name: &'static str,
    width: usize,
) -> Result<(usize, Option<crate::io::TensorView<'a>>)> {
    match st.tensor(name) {
        Err(_) => Ok((0, None)),
        Ok(t) => {
            if t.rank() != 2 || t.shape()[1] != width {
                return Err(Error::TensorShape {
                    role: name,
                    layer: None,
                });
            }
            Ok((t.shape()[0], Some(t)))
        }
    }
}

/// A stored index: a finite non-negative integer below `bound`.
fn index(v: f64, bound: usize, role: &'static str) -> Result<usize> {
    if v >= 0.0 && v < bound as f64 && (v as usize) as f64 == v {
        Ok(v as usize)
    } else {
        Err(Error::InvalidConfig { what: role })
    }
}

fn dist<T: Real, const D: usize>(a: &[T; D], b: &[T; D]) -> T {
    let mut s = T::ZERO;
    for k in 0..D {
        let d = a[k] - b[k];
        s += d * d;
    }
    s.sqrt()
}

/// Loads an exported CHNN/CLNN with `N` nodes in `D` dimensions and `C` constraints, measuring
/// the constraint lengths and offsets on the positions `x0` (a state of the real system).
///
/// # Errors
/// [`Error::InvalidConfig`] if `keel.kind` is not `chnn`/`clnn` or an index is invalid;
/// [`Error::TensorNotFound`]/[`Error::TensorShape`] for missing or misshapen tensors;
/// [`Error::CountMismatch`] if the graph has other than `N` nodes or `C` constraints; as
/// [`Mlp::from_safetensors_of_kind`] and [`LearnedPotential::new`]; as the
/// [`MechanicsBuilder`] (e.g. a non-finite learned mass).
pub fn load<
    'a,
    T: Real,
    const N: usize,
    const D: usize,
    const C: usize,
    const L: usize,
    const S: usize,
    const MAX: usize,
>(
    st: &SafeTensors<'a, MAX>,
    x0: &[[T; D]; N],
) -> Result<Learned<'a, T, N, D, C, L, S>> {
    let form = match st.metadata("keel.kind") {
        Some(k) if k == "chnn" => Form::Hamiltonian,
        Some(k) if k == "clnn" => Form::Lagrangian,
        _ => return Err(Error::InvalidConfig {
            what:
                "`keel.kind` is not `chnn` or `clnn` (only the constrained models run on the core)",
        }),
    };
    let kind = match form {
        Form::Hamiltonian => KINDS[0],
        Form::Lagrangian => KINDS[1],
    };
    let mlp = Mlp::<L>::from_safetensors_of_kind(st, kind)?;
    let potential = LearnedPotential::<L, S>::new(mlp, N * D)?;

    let theta = st.tensor("mass.theta").map_err(|_| Error::TensorNotFound {
        role: "mass.theta",
        layer: None,
    })?;
    let (nb, bodies) = table(st, "graph.bodies", 2)?;
    let bodies = bodies.ok_or(Error::TensorNotFound {
        role: "graph.bodies",
        layer: None,
    })?;
    let mut b = MechanicsBuilder::<T, N, D, C>::new();
    let mut atom = 0usize;
    for r in 0..nb {
        let count = index(bodies.get_f64(2 * r + 1)?, 5, "a body has 1 to 4 nodes")?;
        let start = index(bodies.get_f64(2 * r)?, N, "a body starts at a node")?;
        if count == 0 || start != b.mass().assigned() {
            return Err(Error::InvalidConfig {
                what: "`graph.bodies` must list consecutive bodies from node 0",
            });
        }
        let exp = |i: usize| -> Result<T> { Ok(theta.get::<T>(atom + i)?.libm_exp()) };
        let m = exp(0)?;
        let mut moments = [T::ZERO; 3];
        for (k, slot) in moments.iter_mut().enumerate().take(count - 1) {
            *slot = exp(k + 1)?;
        }
        if count == 1 {
            b.point_mass(m)?;
        } else {
            // cannot fail: count ∈ 2..=4 here (index() bounds it by 5, 0 is refused above).
            b.body(m, &moments[..count - 1])?;
        }
        atom += count;
    }
    if theta.len() != atom {
        return Err(Error::TensorShape {
            role: "mass.theta",
            layer: None,
        });
    }
    if !b.mass().is_complete() {
        return Err(Error::CountMismatch {
            what: "nodes",
            expected: N,
            got: b.mass().assigned(),
        });
    }
    let (nt, tethers) = table(st, "graph.tethers", 1 + D)?;
    if let Some(t) = tethers {
        for r in 0..nt {
            let node = index(
                t.get_f64(r * (1 + D))?,
                N,
                "a tether's node is out of range",
            )?;
            let mut anchor = [T::ZERO; D];
            for (k, a) in anchor.iter_mut().enumerate() {
                *a = t.get::<T>(r * (1 + D) + 1 + k)?;
            }
            b.tether(node, anchor, dist(&x0[node], &anchor))?;
        }
    }
    let (nd, distances) = table(st, "graph.distances", 2)?;
    if let Some(t) = distances {
        for r in 0..nd {
            let i = index(t.get_f64(2 * r)?, N, "a distance's node is out of range")?;
            let j = index(
                t.get_f64(2 * r + 1)?,
                N,
                "a distance's node is out of range",
            )?;
            // An extended body's internal distances come with the body itself.
            let (start, len) = b.mass().body_of(i);
            if len > 1 && (start..start + len).contains(&j) {
                continue;
            }
            b.distance(i, j, dist(&x0[i], &x0[j]))?;
        }
    }
    let (nl, linear) = table(st, "graph.linear", 1 + N)?;
    if let Some(t) = linear {
        for r in 0..nl {
            let axis = index(
                t.get_f64(r * (1 + N))?,
                D,
                "a linear constraint's axis is out of range",
            )?;
            let mut offset = T::ZERO;
            for (node, x) in x0.iter().enumerate() {
                offset += t.get::<T>(r * (1 + N) + 1 + node)? * x[axis];
            }
            let mut lin = Linear::new(axis, offset);
            for node in 0..N {
                let w = t.get::<T>(r * (1 + N) + 1 + node)?;
                if w != T::ZERO {
                    lin.push(node, w)?;
                }
            }
            b.linear(lin)?;
        }
    }
    Ok(Learned {
        mechanics: b.build(potential)?,
        form,
    })
}
