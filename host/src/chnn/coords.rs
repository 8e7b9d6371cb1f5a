//! Generalised coordinates of every system of the paper, for the baselines that work in them
//! (Neural ODE, HNN, DeLaN) — as the reference's `global2bodyCoords` / `body2globalCoords`
//! (`biases/systems/chain_pendulum.py`, `magnet_pendulum.py`, `coupled_pendulum.py`,
//! `rigid_body.py`): link angles of planar chains, the spherical angles of tethered bobs in 3-D
//! (the reference's chart, whose poles lie on the horizontal x axis, away from the hanging
//! states), and the ZXZ Euler angles of a rigid body (with its centre of mass when the body is
//! free). Model predictions go back to Cartesian states before any error is computed.
//!
//! A state in these coordinates is `(q, q̇)`; the first [`Coords::angles`] entries of `q` are
//! angles (embedded as `(cos, sin)` by the models and unwrapped along trajectories), the rest
//! lengths.

use std::f64::consts::PI;

use keel_core::dynamics::rotation::{rigid_body_nodes, sphere_point};

use super::angles::Chain;
use super::model::{Graph, Link};
use crate::error::Error;

/// The systems whose graphs have generalised coordinates here.
pub const SYSTEMS: &str = "chain-pendulum, coupled-pendulum, magnet-pendulum, gyroscope and rotor";

/// Generalised coordinates of a constraint graph.
#[derive(Clone, Debug, PartialEq)]
pub enum Coords {
    /// A planar chain: one angle per link from the downward vertical.
    Chain(Chain),
    /// Bobs in 3-D, each tethered to its own fixed point: `(φ, θ)` per bob.
    Spheres(Spheres),
    /// One rigid body in 3-D: ZXZ Euler angles `(φ, θ, ψ)`, then the centre of mass when the
    /// body is not pinned.
    Rigid(Rigid),
}

/// Tethered bobs in 3-D.
#[derive(Clone, Debug, PartialEq)]
pub struct Spheres {
    /// Per node: its tether's fixed point.
    pub anchors: Vec<[f64; 3]>,
    /// Per node: its tether's length, measured on a state on the constraint manifold.
    pub lengths: Vec<f64>,
}

/// One rigid body (centre of mass and three unit axis points).
#[derive(Clone, Debug, PartialEq)]
pub struct Rigid {
    /// A pin `Σ_k w_k x_k = P`: the weights `(w₀, …, w₃)` and the point, if the body is pinned.
    pub pin: Option<([f64; 4], [f64; 3])>,
}

impl Coords {
    /// The coordinates of `graph`, with lengths and fixed points measured on the velocity-form
    /// state `z = (x, v)`.
    ///
    /// # Errors
    /// A message naming what the graph has that no chart here covers.
    pub fn of(graph: &Graph, z: &[f64]) -> std::result::Result<Coords, String> {
        if z.len() != 2 * graph.n * graph.d {
            return Err(format!(
                "a state of {} numbers for a graph of {} nodes in {}-D",
                z.len(),
                graph.n,
                graph.d
            ));
        }
        if graph.d == 2 {
            return Chain::of(graph, z).map(Coords::Chain);
        }
        if graph.d != 3 {
            return Err(format!("{}-D states", graph.d));
        }
        if graph.bodies.iter().all(|&(_, len)| len == 1) {
            return Spheres::of(graph, z).map(Coords::Spheres);
        }
        Rigid::of(graph, z).map(Coords::Rigid)
    }

    /// Degrees of freedom (the length of `q`).
    pub fn dof(&self) -> usize {
        match self {
            Coords::Chain(c) => c.links(),
            Coords::Spheres(s) => 2 * s.anchors.len(),
            Coords::Rigid(r) => {
                if r.pin.is_some() {
                    3
                } else {
                    6
                }
            }
        }
    }

    /// How many leading entries of `q` are angles.
    pub fn angles(&self) -> usize {
        match self {
            Coords::Chain(c) => c.links(),
            Coords::Spheres(s) => 2 * s.anchors.len(),
            Coords::Rigid(_) => 3,
        }
    }

    /// `(q, q̇)` of the velocity-form Cartesian state `(x, v)`.
    pub fn to_generalized(&self, z: &[f64]) -> Vec<f64> {
        match self {
            Coords::Chain(c) => c.to_angles(z),
            Coords::Spheres(s) => s.to_generalized(z),
            Coords::Rigid(r) => r.to_generalized(z),
        }
    }

    /// The velocity-form Cartesian state of `(q, q̇)`.
    pub fn to_cartesian(&self, s: &[f64]) -> Vec<f64> {
        match self {
            Coords::Chain(c) => c.to_cartesian(s),
            Coords::Spheres(sp) => sp.to_cartesian(s),
            Coords::Rigid(r) => r.to_cartesian(s),
        }
    }

    /// Generalised states of consecutive samples with the angles unwrapped (continuous).
    pub fn unwrapped(&self, zs: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let a = self.angles();
        let mut out: Vec<Vec<f64>> = Vec::with_capacity(zs.len());
        for z in zs {
            let mut s = self.to_generalized(z);
            if let Some(prev) = out.last() {
                for i in 0..a {
                    let turns = ((prev[i] - s[i]) / (2.0 * PI)).round();
                    s[i] += 2.0 * PI * turns;
                }
            }
            out.push(s);
        }
        out
    }
}

impl Spheres {
    fn of(graph: &Graph, z: &[f64]) -> std::result::Result<Spheres, String> {
        let n = graph.n;
        let mut anchors: Vec<Option<[f64; 3]>> = vec![None; n];
        for link in &graph.links {
            match link {
                Link::Tether { node, anchor } if anchor.len() == 3 && *node < n => {
                    if anchors[*node]
                        .replace([anchor[0], anchor[1], anchor[2]])
                        .is_some()
                    {
                        return Err("a bob with two tethers".into());
                    }
                }
                Link::Tether { .. } => return Err("a malformed tether".into()),
                Link::Distance { .. } => return Err("bobs linked to each other by rods".into()),
                Link::Linear { .. } => return Err("joints between point masses".into()),
            }
        }
        let anchors: Vec<[f64; 3]> = anchors
            .into_iter()
            .map(|a| a.ok_or_else(|| String::from("a free bob")))
            .collect::<std::result::Result<_, _>>()?;
        let lengths = anchors
            .iter()
            .enumerate()
            .map(|(i, a)| norm3(sub3(&z[3 * i..3 * i + 3], a)))
            .collect();
        Ok(Spheres { anchors, lengths })
    }

    fn to_generalized(&self, z: &[f64]) -> Vec<f64> {
        let b = self.anchors.len();
        let (x, v) = z.split_at(3 * b);
        let mut out = vec![0.0; 4 * b];
        for i in 0..b {
            let l = self.lengths[i];
            let r = sub3(&x[3 * i..3 * i + 3], &self.anchors[i]);
            let u = [r[0] / l, r[1] / l, r[2] / l];
            let du = [v[3 * i] / l, v[3 * i + 1] / l, v[3 * i + 2] / l];
            // u = (−cos θ, sin φ sin θ, cos φ sin θ) (`sphere_point`).
            let st = u[1].hypot(u[2]);
            let th = st.atan2(-u[0]);
            let ph = u[1].atan2(u[2]);
            let (sp, cp, ct) = (ph.sin(), ph.cos(), th.cos());
            // θ̇ along e_θ = (sin θ, sin φ cos θ, cos φ cos θ); φ̇ sin θ along e_φ = (0, cos φ, −sin φ).
            out[2 * i] = ph;
            out[2 * i + 1] = th;
            out[2 * b + 2 * i] = (cp * du[1] - sp * du[2]) / st;
            out[2 * b + 2 * i + 1] = st * du[0] + ct * (sp * du[1] + cp * du[2]);
        }
        out
    }

    fn to_cartesian(&self, s: &[f64]) -> Vec<f64> {
        let b = self.anchors.len();
        let mut out = vec![0.0; 6 * b];
        for i in 0..b {
            let (p, dp) = sphere_point(
                s[2 * i],
                s[2 * i + 1],
                s[2 * b + 2 * i],
                s[2 * b + 2 * i + 1],
            );
            let l = self.lengths[i];
            for d in 0..3 {
                out[3 * i + d] = self.anchors[i][d] + l * p[d];
                out[3 * b + 3 * i + d] = l * dp[d];
            }
        }
        out
    }
}

impl Rigid {
    fn of(graph: &Graph, z: &[f64]) -> std::result::Result<Rigid, String> {
        if graph.n != 4 || graph.bodies != [(0, 4)] {
            return Err("several bodies, or a body with fewer than three axes".into());
        }
        let mut pins: Vec<(usize, Vec<(usize, f64)>)> = Vec::new();
        for link in &graph.links {
            match link {
                Link::Distance { a, b } if *a < 4 && *b < 4 => {}
                Link::Linear { axis, terms } => pins.push((*axis, terms.clone())),
                Link::Distance { .. } | Link::Tether { .. } => {
                    return Err("a rigid body tethered by a rod".into())
                }
            }
        }
        if pins.is_empty() {
            return Ok(Rigid { pin: None });
        }
        let same = pins.len() == 3
            && (0..3).all(|a| pins.iter().any(|(axis, _)| *axis == a))
            && pins.iter().all(|(_, t)| *t == pins[0].1);
        if !same {
            return Err("joints other than one pinned point".into());
        }
        let mut w = [0.0; 4];
        for &(node, weight) in &pins[0].1 {
            if node >= 4 {
                return Err("a joint to another body".into());
            }
            w[node] += weight;
        }
        if (w.iter().sum::<f64>() - 1.0).abs() > 1e-9 {
            return Err("a pin whose weights are not barycentric".into());
        }
        let mut p = [0.0; 3];
        for (k, wk) in w.iter().enumerate() {
            for (d, pd) in p.iter_mut().enumerate() {
                *pd += wk * z[3 * k + d];
            }
        }
        Ok(Rigid { pin: Some((w, p)) })
    }

    fn to_generalized(&self, z: &[f64]) -> Vec<f64> {
        let (x, v) = z.split_at(12);
        // R's columns are the unit axes x_k − x₀; Ṙ's their velocities.
        let (mut r, mut dr) = ([[0.0; 3]; 3], [[0.0; 3]; 3]);
        for k in 0..3 {
            for d in 0..3 {
                r[d][k] = x[3 * (k + 1) + d] - x[d];
                dr[d][k] = v[3 * (k + 1) + d] - v[d];
            }
        }
        // R = Rz(φ)Rx(θ)Rz(ψ): R₀₂ = sin φ sin θ, R₁₂ = −cos φ sin θ, R₂₂ = cos θ,
        // R₂₀ = sin θ sin ψ, R₂₁ = sin θ cos ψ.
        let st = r[0][2].hypot(r[1][2]);
        let th = st.atan2(r[2][2]);
        let ph = r[0][2].atan2(-r[1][2]);
        let ps = r[2][0].atan2(r[2][1]);
        // Body angular velocity from [ω]× = RᵀṘ (its antisymmetric part).
        let w = |a: usize, b: usize| (0..3).map(|d| r[d][a] * dr[d][b]).sum::<f64>();
        let om = [
            0.5 * (w(2, 1) - w(1, 2)),
            0.5 * (w(0, 2) - w(2, 0)),
            0.5 * (w(1, 0) - w(0, 1)),
        ];
        // Inverts ω = (φ̇ sθ sψ + θ̇ cψ, φ̇ sθ cψ − θ̇ sψ, φ̇ cθ + ψ̇).
        let (sp, cp) = (ps.sin(), ps.cos());
        let dph = (om[0] * sp + om[1] * cp) / st;
        let dth = om[0] * cp - om[1] * sp;
        let dps = om[2] - dph * th.cos();
        match self.pin {
            Some(_) => vec![ph, th, ps, dph, dth, dps],
            None => vec![
                ph, th, ps, x[0], x[1], x[2], dph, dth, dps, v[0], v[1], v[2],
            ],
        }
    }

    fn to_cartesian(&self, s: &[f64]) -> Vec<f64> {
        let (euler, com, rates, dcom) = match self.pin {
            Some(_) => ([s[0], s[1], s[2]], [0.0; 3], [s[3], s[4], s[5]], [0.0; 3]),
            None => (
                [s[0], s[1], s[2]],
                [s[3], s[4], s[5]],
                [s[6], s[7], s[8]],
                [s[9], s[10], s[11]],
            ),
        };
        let (mut x, mut v) = rigid_body_nodes(com, dcom, euler, rates);
        if let Some((w, p)) = self.pin {
            // Shift the body so the pinned point sits at P, at rest (weights sum to 1).
            for d in 0..3 {
                let at: f64 = (0..4).map(|k| w[k] * x[k][d]).sum();
                let vel: f64 = (0..4).map(|k| w[k] * v[k][d]).sum();
                for k in 0..4 {
                    x[k][d] += p[d] - at;
                    v[k][d] -= vel;
                }
            }
        }
        x.iter().chain(&v).flatten().copied().collect()
    }
}

fn sub3(a: &[f64], b: &[f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn norm3(a: [f64; 3]) -> f64 {
    (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt()
}

/// The message for a graph without generalised coordinates.
pub fn unsupported(model: &str, why: &str) -> Error {
    Error::invalid(
        "model",
        model,
        format!(
            "the baselines in generalised coordinates cover the graphs of {SYSTEMS}; this one has {why} (chnn and clnn apply to any graph)"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chnn::data::{generate, SystemSpec};
    use crate::chnn::truth::truth;
    use crate::simulate::SystemKind;

    fn specs() -> Vec<SystemSpec> {
        let s = |kind, size| SystemSpec { kind, size };
        vec![
            s(SystemKind::ChainPendulum, Some(2)),
            s(SystemKind::CoupledPendulum, Some(3)),
            s(SystemKind::MagnetPendulum, None),
            s(SystemKind::Gyroscope, None),
            s(SystemKind::Rotor, None),
        ]
    }

    #[test]
    fn round_trips_every_system_on_its_data() {
        for spec in specs() {
            let data = generate(spec, 4, 0).unwrap();
            let graph = truth(spec).unwrap().graph();
            let c = Coords::of(&graph, &data.chunks[0].z[0]).unwrap();
            for traj in &data.trajectories {
                for k in [0, 37, 99] {
                    let z: Vec<f64> = traj.x[k].iter().chain(&traj.v[k]).copied().collect();
                    let s = c.to_generalized(&z);
                    assert_eq!(s.len(), 2 * c.dof(), "{spec:?}");
                    let back = c.to_cartesian(&s);
                    // The data sit on the manifold to dopri5's tolerance, not exactly.
                    for (a, b) in z.iter().zip(&back) {
                        assert!((a - b).abs() < 1e-4, "{spec:?} sample {k}: {a} vs {b}");
                    }
                }
            }
        }
    }

    #[test]
    fn generalised_states_inside_the_charts_round_trip_exactly() {
        let cases: [(SystemSpec, Vec<f64>); 3] = [
            (
                specs()[2],
                vec![2.9, 1.7, 0.4, -0.3], // (φ, θ, φ̇, θ̇)
            ),
            (
                specs()[3],
                vec![0.4, 0.9, -2.5, 1.5, 0.1, 10.0], // Euler angles and rates
            ),
            (
                specs()[4],
                vec![
                    -1.0, 2.2, 0.3, 0.1, -0.2, 0.05, 0.7, -0.4, 2.0, 0.01, 0.02, -0.03,
                ],
            ),
        ];
        for (spec, s) in cases {
            let data = generate(spec, 1, 0).unwrap();
            let graph = truth(spec).unwrap().graph();
            let c = Coords::of(&graph, &data.chunks[0].z[0]).unwrap();
            let back = c.to_generalized(&c.to_cartesian(&s));
            for (a, b) in back.iter().zip(&s) {
                assert!((a - b).abs() < 1e-12, "{spec:?}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn rates_are_time_derivatives_of_the_coordinates() {
        for spec in specs() {
            let data = generate(spec, 2, 3).unwrap();
            let graph = truth(spec).unwrap().graph();
            let c = Coords::of(&graph, &data.chunks[0].z[0]).unwrap();
            let tr = &data.trajectories[1];
            let zs: Vec<Vec<f64>> = (40..43)
                .map(|k| tr.x[k].iter().chain(&tr.v[k]).copied().collect())
                .collect();
            let s = c.unwrapped(&zs);
            let dt = tr.t[41] - tr.t[40];
            let d = c.dof();
            for i in 0..d {
                let fd = (s[2][i] - s[0][i]) / (2.0 * dt);
                let tol = 0.05 * (1.0 + s[1][d + i].abs());
                assert!(
                    (fd - s[1][d + i]).abs() < tol,
                    "{spec:?} q{i}: {fd} vs {}",
                    s[1][d + i]
                );
            }
        }
    }

    #[test]
    fn other_graphs_are_named() {
        let graph = Graph {
            n: 2,
            d: 3,
            links: vec![Link::Distance { a: 0, b: 1 }],
            bodies: vec![(0, 1), (1, 1)],
        };
        let e = Coords::of(&graph, &[0.0; 12]).unwrap_err();
        assert!(e.contains("rods"), "{e}");
        let e = unsupported("hnn", &e).to_string();
        assert!(
            e.contains("hnn") && e.contains("gyroscope") && e.contains("chnn"),
            "{e}"
        );
    }
}
