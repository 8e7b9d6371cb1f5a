//! Generalized coordinates of planar chain pendulums — the angle of each link from the downward
//! vertical and its rate — for the baselines that work in them (Neural ODE), and back to
//! Cartesian states before any error is computed (as the reference's `global2bodyCoords` /
//! `body2globalCoords`).

use super::model::{Graph, Link};

/// A planar chain (or tree) of links, each node hanging from its parent or from an anchor.
#[derive(Clone, Debug, PartialEq)]
pub struct Chain {
    /// Per node: the parent node, or `None` for the anchor.
    pub parent: Vec<Option<usize>>,
    /// The anchor of the tethered node(s).
    pub anchor: [f64; 2],
    /// Link lengths, measured from a state on the constraint manifold.
    pub lengths: Vec<f64>,
}

impl Chain {
    /// The chain of a planar graph of tethers and distance links whose every node hangs from
    /// exactly one earlier node or the anchor; link lengths measured on the velocity-form state
    /// `z = (x, v)`.
    ///
    /// # Errors
    /// What the graph has that a planar chain has not (bodies, joints, a node with two parents).
    pub fn of(graph: &Graph, z: &[f64]) -> std::result::Result<Chain, String> {
        let unsupported = |why: &str| format!("{why} (not a planar chain)");
        if graph.d != 2 {
            return Err(unsupported("3-D states"));
        }
        let n = graph.n;
        let mut parent: Vec<Option<Option<usize>>> = vec![None; n];
        let mut anchor = [0.0; 2];
        for link in &graph.links {
            let (child, par) = match link {
                Link::Tether { node, anchor: a } => {
                    anchor = [a[0], a[1]];
                    (*node, None)
                }
                Link::Distance { a, b } => (*a.max(b), Some(*a.min(b))),
                Link::Linear { .. } => return Err(unsupported("joints")),
            };
            if parent[child].replace(par).is_some() {
                return Err(unsupported("a node with two parents"));
            }
        }
        let parent: Vec<Option<usize>> = parent
            .into_iter()
            .map(|p| p.ok_or_else(|| unsupported("a free node")))
            .collect::<std::result::Result<_, _>>()?;
        let mut c = Chain {
            parent,
            anchor,
            lengths: vec![0.0; n],
        };
        for i in 0..n {
            let r = c.rel(&z[..2 * n], i);
            c.lengths[i] = r[0].hypot(r[1]);
        }
        Ok(c)
    }

    fn base(&self, x: &[f64], i: usize) -> [f64; 2] {
        self.parent[i].map_or(self.anchor, |p| [x[2 * p], x[2 * p + 1]])
    }

    fn rel(&self, x: &[f64], i: usize) -> [f64; 2] {
        let b = self.base(x, i);
        [x[2 * i] - b[0], x[2 * i + 1] - b[1]]
    }

    /// Links.
    pub fn links(&self) -> usize {
        self.parent.len()
    }

    /// `(θ, ω)` of the velocity-form state `(x, v)`; `θ` from the downward vertical.
    pub fn to_angles(&self, z: &[f64]) -> Vec<f64> {
        let n = self.links();
        let (x, v) = z.split_at(2 * n);
        let mut out = vec![0.0; 2 * n];
        for i in 0..n {
            let r = self.rel(x, i);
            let vb = self.parent[i].map_or([0.0, 0.0], |p| [v[2 * p], v[2 * p + 1]]);
            let dv = [v[2 * i] - vb[0], v[2 * i + 1] - vb[1]];
            out[i] = r[0].atan2(-r[1]);
            out[n + i] = (r[0] * dv[1] - r[1] * dv[0]) / (r[0] * r[0] + r[1] * r[1]);
        }
        out
    }

    /// The velocity-form Cartesian state of `(θ, ω)` (parents before children).
    pub fn to_cartesian(&self, s: &[f64]) -> Vec<f64> {
        let n = self.links();
        let mut x = vec![0.0; 2 * n];
        let mut v = vec![0.0; 2 * n];
        for i in 0..n {
            let (th, om, l) = (s[i], s[n + i], self.lengths[i]);
            let b = self.base(&x, i);
            let vb = self.parent[i].map_or([0.0, 0.0], |p| [v[2 * p], v[2 * p + 1]]);
            x[2 * i] = b[0] + l * th.sin();
            x[2 * i + 1] = b[1] - l * th.cos();
            v[2 * i] = vb[0] + l * om * th.cos();
            v[2 * i + 1] = vb[1] + l * om * th.sin();
        }
        x.extend(v);
        x
    }
}
