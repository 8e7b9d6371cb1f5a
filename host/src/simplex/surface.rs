//! The loss over the plane through three vertices of a simplex, as the reference's
//! `simplex/surfaces.py` (`get_basis`: the anchor vertex as origin, the unit edge to the first
//! base vertex, and the edge to the second made orthogonal to it by Gram–Schmidt and
//! normalised), evaluated on a grid that covers the triangle with a margin.

use serde::Serialize;

use super::net::{flatten, unflatten};
use super::{Problem, SimplexModel};
use crate::error::{Error, Result};

/// A grid of training losses over a plane.
#[derive(Clone, Debug, Serialize)]
pub struct Slice {
    /// Component sliced.
    pub component: usize,
    /// The three vertices (anchor, base 1, base 2).
    pub vertices: [usize; 3],
    /// Grid coordinates along the first axis.
    pub xs: Vec<f64>,
    /// Grid coordinates along the second axis.
    pub ys: Vec<f64>,
    /// Mean training cross-entropy, `loss[i][j]` at `(xs[j], ys[i])`.
    pub loss: Vec<Vec<f64>>,
    /// The three vertices' coordinates in the plane.
    pub corners: [[f64; 2]; 3],
    /// The loss at each of them.
    pub corner_loss: [f64; 3],
    /// The loss at the triangle's centroid.
    pub centroid_loss: f64,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The orthonormal basis `(u₁, u₂)` of the plane through `w_a`, `w_b`, `w_c` with origin `w_a`
/// (`get_basis`); `None` when the three are collinear.
pub fn basis(wa: &[f64], wb: &[f64], wc: &[f64]) -> Option<(Vec<f64>, Vec<f64>)> {
    let v1: Vec<f64> = wb.iter().zip(wa).map(|(b, a)| b - a).collect();
    let v2: Vec<f64> = wc.iter().zip(wa).map(|(c, a)| c - a).collect();
    let n1 = dot(&v1, &v1).sqrt();
    if !(n1 > 0.0) {
        return None;
    }
    let u1: Vec<f64> = v1.iter().map(|x| x / n1).collect();
    let proj = dot(&v2, &u1);
    let r: Vec<f64> = v2.iter().zip(&u1).map(|(v, u)| v - proj * u).collect();
    let n2 = dot(&r, &r).sqrt();
    if !(n2 > 1e-12 * n1) {
        return None;
    }
    Some((u1, r.iter().map(|x| x / n2).collect()))
}

/// Training loss of `component` on the plane through its vertices `vertices`, on a
/// `grid × grid` lattice spanning the triangle's bounding box plus `margin` of its size each
/// side.
///
/// # Errors
/// [`Error::InvalidInput`] for a vertex or component out of range, repeated or collinear
/// vertices, a grid under 2; engine errors.
pub fn slice(
    model: &SimplexModel,
    problem: &Problem,
    component: usize,
    vertices: [usize; 3],
    grid: usize,
    margin: f64,
    progress: &mut crate::progress::Observer,
) -> Result<Slice> {
    let n = model.vertices();
    if component >= model.components.len() {
        return Err(Error::invalid(
            "component",
            component,
            format!("the model has {} components", model.components.len()),
        ));
    }
    if n < 3 {
        return Err(Error::invalid(
            "vertices",
            n,
            "a slice needs a simplex of 3 or more vertices",
        ));
    }
    if vertices.iter().any(|&v| v >= n)
        || vertices[0] == vertices[1]
        || vertices[0] == vertices[2]
        || vertices[1] == vertices[2]
    {
        return Err(Error::invalid(
            "vertices",
            format!("{vertices:?}"),
            format!("need three different vertices of 0 … {}", n - 1),
        ));
    }
    if grid < 2 {
        return Err(Error::invalid("grid", grid, "must be at least 2"));
    }
    let flat = |j: usize| flatten(&model.components[component][j]);
    let (wa, wb, wc) = (flat(vertices[0])?, flat(vertices[1])?, flat(vertices[2])?);
    let (u1, u2) = basis(&wa, &wb, &wc).ok_or_else(|| {
        Error::invalid(
            "vertices",
            format!("{vertices:?}"),
            "the three vertices are collinear",
        )
    })?;
    let coords = |w: &[f64]| -> [f64; 2] {
        let d: Vec<f64> = w.iter().zip(&wa).map(|(x, a)| x - a).collect();
        [dot(&d, &u1), dot(&d, &u2)]
    };
    let corners = [[0.0, 0.0], coords(&wb), coords(&wc)];
    let (lo_x, hi_x) = corners
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), c| {
            (l.min(c[0]), h.max(c[0]))
        });
    let (lo_y, hi_y) = corners
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), c| {
            (l.min(c[1]), h.max(c[1]))
        });
    let (px, py) = ((hi_x - lo_x) * margin, (hi_y - lo_y) * margin);
    let axis = |lo: f64, hi: f64| -> Vec<f64> {
        (0..grid)
            .map(|i| lo + (hi - lo) * i as f64 / (grid - 1) as f64)
            .collect()
    };
    let xs = axis(lo_x - px, hi_x + px);
    let ys = axis(lo_y - py, hi_y + py);
    let template = model.net.template();
    let classes = model.net.classes();
    let mut state = model.states[component].clone();
    let d = model.net.inputs();
    let rows = problem.n_train();
    let x = model.net.input(&problem.x_train[..rows * d], rows)?;
    let mut loss_at = |a: f64, b: f64| -> Result<f64> {
        let w: Vec<f64> = wa
            .iter()
            .zip(&u1)
            .zip(&u2)
            .map(|((o, e1), e2)| o + a * e1 + b * e2)
            .collect();
        let p = unflatten(template, &w)?;
        let probs = crate::no_grad(|| -> Result<crate::Tensor> {
            Ok(model
                .net
                .forward(&p, &mut state, &x, false, 0)?
                .softmax(-1)?)
        })?
        .to_vec_f64()?;
        Ok(crate::metrics::nll(&probs, classes, &problem.y_train))
    };
    let mut loss = Vec::with_capacity(grid);
    for (i, &b) in ys.iter().enumerate() {
        loss.push(
            xs.iter()
                .map(|&a| loss_at(a, b))
                .collect::<Result<Vec<_>>>()?,
        );
        progress(&crate::progress::Tick {
            done: i + 1,
            total: grid,
            values: &[],
        });
    }
    let corner_loss = [
        loss_at(corners[0][0], corners[0][1])?,
        loss_at(corners[1][0], corners[1][1])?,
        loss_at(corners[2][0], corners[2][1])?,
    ];
    let cx = (corners[0][0] + corners[1][0] + corners[2][0]) / 3.0;
    let cy = (corners[0][1] + corners[1][1] + corners[2][1]) / 3.0;
    let centroid_loss = loss_at(cx, cy)?;
    Ok(Slice {
        component,
        vertices,
        xs,
        ys,
        loss,
        corners,
        corner_loss,
        centroid_loss,
    })
}
